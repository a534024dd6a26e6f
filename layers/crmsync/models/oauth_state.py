"""A pending OAuth authorization: single use, short-lived, bound to a user and a browser."""

from __future__ import annotations

from pynamodb.attributes import TTLAttribute, UnicodeAttribute, UnicodeSetAttribute, UTCDateTimeAttribute
from pynamodb.models import Model


class OAuthStateItem(Model):
    """pk = ``STATE#<sha256 of the state>``: the state itself is never stored."""

    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    provider = UnicodeAttribute()
    #: sha256 of the browser-binding cookie the flow was started with.
    binding_hash = UnicodeAttribute()
    #: PKCE verifier. Useless without the authorization code, deleted on use, expires with
    #: the record (10 minutes).
    code_verifier = UnicodeAttribute()
    scopes = UnicodeSetAttribute(null=True)
    #: What the flow is for beyond connecting (e.g. ``contacts_sync``); absent: only connect.
    intent = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    #: DynamoDB TTL purges late; expiry is also checked on read.
    expires_at = TTLAttribute()
