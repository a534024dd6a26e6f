"""Updating a versioned item without reading it first.

PynamoDB's ``Model.update`` on an item built from its keys alone (no version read) sets the
version to 1: a writer holding a copy read earlier at version 1 could then save its stale copy
over the update. :func:`update_unread` moves the version instead, so every optimistic writer
that read before it fails its check and re-reads.
"""

from __future__ import annotations

from typing import Any

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action


def update_unread(
    model: Any, hash_key: str, range_key: str, actions: list[Action], condition: Condition | None = None
) -> None:
    """Apply ``actions`` (and ``condition``) to one item of ``model``, adding 1 to its version.
    Raises PynamoDB's ``UpdateError`` like ``Model.update``."""
    model._get_connection().update_item(
        hash_key, range_key, actions=[*actions, model.version.add(1)], condition=condition
    )
