"""Deletions a sync held back for the user's confirmation (the mass-deletion guard)."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from crmsync.models.base import ConnectionsTableItem

PENDING_DELETIONS_SK_PREFIX = "HELD#"


def pending_deletions_sk(kind: str, connection_id: str, resource_id: str = "") -> str:
    """``HELD#<kind>#<connection>#<resource id>``; connection ids never contain ``#``."""
    return f"{PENDING_DELETIONS_SK_PREFIX}{kind}#{connection_id}#{resource_id}"


class PendingDeletionsItem(ConnectionsTableItem):
    """At most one per synced resource, in the user's partition. Written by the resource's
    sync (its FIFO group serialises them) and by the user's answer, conditionally (version)."""

    kind = UnicodeAttribute()
    connection_id = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    deletions = NumberAttribute()
    mirrored = NumberAttribute()
    complete = BooleanAttribute(default=False)
    detected_at = UTCDateTimeAttribute()
    #: ``apply`` or ``ignore`` once the user answered; carried out by the next sync.
    decision = UnicodeAttribute(null=True)
    decided_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()
