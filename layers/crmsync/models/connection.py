"""A connected provider account (one per provider account per CRM user)."""

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
    version = VersionAttribute()
