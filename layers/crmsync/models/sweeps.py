"""The sparse ``sweeps`` index (template.yaml): the items a scheduled sweep visits, by their
``<job>#<slot>`` (:mod:`crmsync.domain.sweeps`)."""

from __future__ import annotations

from typing import TypeVar

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

_M = TypeVar("_M", bound=Model)

INDEX_NAME = "sweeps"
#: What the index carries besides its keys: what the jobs queue a message with.
PROJECTED = ("tenant_id", "user_id", "connection_id")


class SweepsIndex(GlobalSecondaryIndex[_M]):
    """The ``sweeps`` index; each kind of item it lists subclasses it (PynamoDB binds an
    index to one model, and each sweep's partitions hold one kind of item only)."""

    class Meta:
        index_name = INDEX_NAME
        projection = IncludeProjection(list(PROJECTED))

    sweep = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
