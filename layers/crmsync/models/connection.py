"""A connected provider account (one per provider account per CRM user)."""

from __future__ import annotations

import zlib

from pynamodb.attributes import (
    BinaryAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection

from crmsync.models.base import OwnedItem
from crmsync.models.sweeps import SweepsIndex

CONNECTION_SK_PREFIX = "CONN#"
#: ``poll_shard`` values: the calendar poll reads this many shards of ``polled_connections``.
POLL_SHARDS = 8
POLL_SHARD_PREFIX = "POLL#"


def poll_shard(tenant_id: str, user_id: str, connection_id: str) -> str:
    """The ``poll_shard`` of a polled connection: spread over the shards by its key, so no
    index partition is hot however many accounts are polled."""
    return f"{POLL_SHARD_PREFIX}{zlib.crc32(f'{tenant_id}#{user_id}#{connection_id}'.encode()) % POLL_SHARDS}"


class PolledConnections(GlobalSecondaryIndex["ConnectionItem"]):
    """The connections whose calendars are polled (sparse: only they carry ``poll_shard``),
    with what the scheduled poll needs: read instead of scanning the whole table."""

    class Meta:
        index_name = "polled_connections"
        projection = IncludeProjection(["tenant_id", "user_id", "connection_id", "provider", "status"])

    poll_shard = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ConnectionSweeps(SweepsIndex["ConnectionItem"]):
    """Connections by their health-check slot."""


class ConnectionItem(OwnedItem):
    """pk = ``T#<tenant>#U#<user>``, sk = ``CONN#<connection id>``."""

    connection_id = UnicodeAttribute()
    provider = UnicodeAttribute()
    #: The provider's stable account id (Google ``sub``).
    subject = UnicodeAttribute()
    email = UnicodeAttribute()
    display_name = UnicodeAttribute(null=True)
    scopes = UnicodeSetAttribute(null=True)
    status = UnicodeAttribute()
    status_reason = UnicodeAttribute(null=True)
    #: KMS ciphertext of the credential (an OAuth refresh token, or an app-specific
    #: password); the encryption context names tenant, user and connection. Stored under its
    #: first name, so connections written before credential kinds existed read unchanged.
    credential_ciphertext = BinaryAttribute(attr_name="refresh_token_ciphertext", legacy_encoding=False)
    #: A :class:`crmsync.domain.CredentialKind`; absent on connections stored before kinds
    #: were recorded, which all hold OAuth tokens.
    credential_kind = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    last_checked_at = UTCDateTimeAttribute(null=True)
    #: Set on connections whose calendars are polled (app-specific passwords: CalDAV; OAuth
    #: connections of a polled provider; none today: Microsoft's were, before Graph subscriptions).
    poll_shard = UnicodeAttribute(null=True)
    polled_connections = PolledConnections()
    #: The health check's slot (:mod:`crmsync.domain.sweeps`); set on every save.
    sweep = UnicodeAttribute(null=True)
    sweeps = ConnectionSweeps()
    version = VersionAttribute()
