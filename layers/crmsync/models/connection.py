"""A connected provider account (one per Google account per CRM user)."""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from crmsync.models.base import OwnedItem

CONNECTION_SK_PREFIX = "CONN#"


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
    #: KMS ciphertext; encryption context names tenant, user and connection.
    refresh_token_ciphertext = BinaryAttribute(legacy_encoding=False)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    last_checked_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()
