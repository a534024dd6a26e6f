"""Pending OAuth authorizations: put once, consumed once."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DeleteError, DoesNotExist

from crmsync.domain import PendingAuthorization
from crmsync.errors import OAuthStateError
from crmsync.models.oauth_state import OAuthStateItem
from crmsync.security.secrets import same, sha256_hex


def _key(state: str) -> str:
    return "STATE#" + sha256_hex(state)


class OAuthStateStore:
    def put(self, state: str, pending: PendingAuthorization) -> None:
        OAuthStateItem(
            _key(state),
            tenant_id=pending.tenant_id,
            user_id=pending.user_id,
            provider=pending.provider,
            binding_hash=pending.binding_hash,
            code_verifier=pending.code_verifier,
            scopes=set(pending.scopes) or None,
            intent=pending.intent,
            created_at=pending.created_at,
            expires_at=pending.expires_at,
        ).save(condition=OAuthStateItem.pk.does_not_exist())

    def consume(self, state: str, *, binding_hash: str, provider: str) -> PendingAuthorization:
        """Return the pending authorization and delete it, exactly once.

        A state presented from another browser (binding mismatch) is refused and left in
        place, so a forged callback cannot burn the real user's flow. The conditional
        delete makes two concurrent callbacks with the same state end with one winner.
        """
        key = _key(state)
        try:
            item = OAuthStateItem.get(key, consistent_read=True)
        except DoesNotExist:
            raise OAuthStateError(OAuthStateError.UNKNOWN, "The sign-in link is unknown or was already used.") from None
        if item.provider != provider or not same(item.binding_hash, binding_hash):
            raise OAuthStateError(OAuthStateError.MISMATCH, "The sign-in was started in another browser session.")
        try:
            item.delete(condition=OAuthStateItem.pk.exists())
        except DeleteError:
            raise OAuthStateError(OAuthStateError.UNKNOWN, "The sign-in link is unknown or was already used.") from None
        expires_at = item.expires_at
        if expires_at <= datetime.now(UTC):
            raise OAuthStateError(OAuthStateError.EXPIRED, "The sign-in took too long; start again.")
        return PendingAuthorization(
            tenant_id=item.tenant_id,
            user_id=item.user_id,
            provider=item.provider,
            binding_hash=item.binding_hash,
            code_verifier=item.code_verifier,
            scopes=tuple(sorted(item.scopes or ())),
            created_at=item.created_at,
            expires_at=expires_at,
            intent=item.intent,
        )
