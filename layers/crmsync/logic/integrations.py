"""F1: connect, list and disconnect provider accounts; check that a grant still works."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crmsync.dal.connections import ConnectionStore, StoredConnection
from crmsync.dal.oauth_states import OAuthStateStore
from crmsync.domain import Connection, ConnectionStatus, Counter, NoCounter, PendingAuthorization, Principal
from crmsync.errors import (
    AuthorizationDenied,
    CrmSyncError,
    InvalidRequest,
    NotFound,
    OAuthStateError,
    ProviderError,
    ReauthorizationRequired,
    TokenExchangeFailed,
)
from crmsync.messaging.messages import ConnectionCheck
from crmsync.messaging.queue import SyncQueue
from crmsync.providers.google.oauth import GoogleOAuth
from crmsync.providers.google.scopes import FEATURE_SCOPES, scopes_for
from crmsync.security.secrets import new_pkce_verifier, new_secret, sha256_hex
from crmsync.security.tokens import TokenCipher, TokenContext, TokenDecryptionError

log = logging.getLogger(__name__)

GOOGLE = "google"


@dataclass(frozen=True)
class AuthorizationStart:
    authorization_url: str
    #: The browser-binding value to set as an HttpOnly cookie (a new or the reused one).
    binding: str
    expires_at: datetime


def connection_id_for(principal: Principal, provider: str, subject: str) -> str:
    """Stable per (user, provider account): the same account connected again is the same
    connection; the provider's account id is not exposed."""
    digest = sha256_hex(f"{principal.tenant_id}\n{principal.user_id}\n{provider}\n{subject}")
    return f"{provider[0]}{digest[:31]}"


def _valid_binding(value: str | None) -> bool:
    return bool(value) and 32 <= len(value or "") <= 128 and (value or "").isascii()


class Integrations:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        states: OAuthStateStore,
        cipher: TokenCipher,
        google: GoogleOAuth,
        queue: SyncQueue,
        enabled_features: Sequence[str],
        state_ttl: timedelta = timedelta(minutes=10),
        counter: Counter | None = None,
        mirrors: Sequence[Callable[[Principal, str], None]] = (),
        before_revoke: Sequence[Callable[[Principal, str, str], None]] = (),
    ) -> None:
        """``mirrors``: what deletes the data mirrored from a connection when it is
        disconnected (its calendars, later its events, mail and contacts); ``before_revoke``:
        what must still use the grant before it is revoked (stopping push channels), called
        with the principal, the connection id and its refresh token."""
        self._connections = connections
        self._states = states
        self._cipher = cipher
        self._google = google
        self._queue = queue
        self._features = tuple(enabled_features)
        self._state_ttl = state_ttl
        self._counter = counter or NoCounter()
        self._mirrors = tuple(mirrors)
        self._before_revoke = tuple(before_revoke)

    # ------------------------------------------------------------------ connect
    def start_google_connect(
        self,
        principal: Principal,
        *,
        features: Sequence[str] | None = None,
        binding: str | None = None,
        login_hint: str | None = None,
    ) -> AuthorizationStart:
        wanted = tuple(features) if features else self._features
        unknown = [f for f in wanted if f not in FEATURE_SCOPES]
        if unknown:
            raise InvalidRequest(f"Unknown feature(s): {', '.join(unknown)}.")
        disabled = [f for f in wanted if f not in self._features]
        if disabled:
            raise InvalidRequest(f"Feature(s) not enabled here: {', '.join(disabled)}.")
        binding = binding if binding and _valid_binding(binding) else new_secret(32)
        state = new_secret(32)
        verifier = new_pkce_verifier()
        scopes = tuple(scopes_for(wanted))
        now = datetime.now(UTC)
        pending = PendingAuthorization(
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            provider=GOOGLE,
            binding_hash=sha256_hex(binding),
            code_verifier=verifier,
            scopes=scopes,
            created_at=now,
            expires_at=now + self._state_ttl,
        )
        self._states.put(state, pending)
        url = self._google.authorization_url(state=state, code_verifier=verifier, scopes=scopes, login_hint=login_hint)
        self._counter.count("OAuthStarted")
        return AuthorizationStart(authorization_url=url, binding=binding, expires_at=pending.expires_at)

    def complete_google_connect(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        binding: str | None,
    ) -> Connection:
        """The callback: consume the state, exchange the code, verify the identity, store.

        Every refusal raises before anything is written (the state is consumed so that a
        leaked callback URL cannot be replayed) and is counted as ``OAuthRefused``.
        """
        try:
            return self._complete_google_connect(state=state, code=code, error=error, binding=binding)
        except CrmSyncError:
            self._counter.count("OAuthRefused")
            raise

    def _complete_google_connect(
        self, *, state: str | None, code: str | None, error: str | None, binding: str | None
    ) -> Connection:
        if not state:
            raise OAuthStateError(OAuthStateError.MISSING, "The sign-in response has no state.")
        pending = self._states.consume(state, binding_hash=sha256_hex(binding or ""), provider=GOOGLE)
        principal = pending.principal
        if error:
            raise AuthorizationDenied(error[:64])
        if not code:
            raise InvalidRequest("The sign-in response has no authorization code.")
        grant = self._google.exchange_code(code=code, code_verifier=pending.code_verifier, scopes=pending.scopes)
        if not grant.id_token:
            raise TokenExchangeFailed("Google returned no id_token.", retryable=False)
        identity = self._google.verify_id_token(grant.id_token)
        connection_id = connection_id_for(principal, GOOGLE, identity.subject)
        ciphertext = (
            self._cipher.encrypt(
                grant.refresh_token,
                TokenContext(principal.tenant_id, principal.user_id, connection_id),
            )
            if grant.refresh_token
            else None
        )
        connection = self._connections.upsert(
            principal,
            connection_id=connection_id,
            provider=GOOGLE,
            subject=identity.subject,
            email=identity.email,
            display_name=identity.name,
            scopes=grant.scopes,
            refresh_token_ciphertext=ciphertext,
        )
        self._counter.count("ConnectionConnected")
        self._enqueue_check(connection, reason="connected", occasion=connection.updated_at.isoformat())
        return connection

    def _enqueue_check(self, connection: Connection, *, reason: str, occasion: str) -> None:
        try:
            self._queue.send(
                ConnectionCheck(
                    tenant_id=connection.tenant_id,
                    user_id=connection.user_id,
                    connection_id=connection.connection_id,
                    reason=reason,
                    occasion=occasion,
                )
            )
        except Exception:  # the connection is stored; the scheduled sweep will check it
            log.exception("could not enqueue the connection check")
            self._counter.count("EnqueueFailed")

    # ------------------------------------------------------------------ list / disconnect
    def list_connections(self, principal: Principal) -> list[Connection]:
        return self._connections.list(principal)

    def disconnect(self, principal: Principal, connection_id: str) -> None:
        """Revoke at Google, then delete tokens and the connection — even if revoke fails
        (the user asked to disconnect; a failed revoke is logged and metered)."""
        stored = self._connections.get_stored(principal, connection_id)
        if stored is None:
            raise NotFound(f"No integration with id {connection_id!r}.")
        try:
            token = self._refresh_token(stored)
            for cleanup in self._before_revoke:
                cleanup(principal, connection_id, token)
            self._google.revoke(token)
        except (ProviderError, TokenDecryptionError) as exc:
            log.warning(
                "revoke failed; deleting the connection anyway",
                extra={"connection_id": connection_id, "error": type(exc).__name__, "detail": exc.detail},
            )
            self._counter.count("RevokeFailed")
        for forget in self._mirrors:
            forget(principal, connection_id)
        self._connections.delete(principal, connection_id)
        self._counter.count("ConnectionDisconnected")

    def _refresh_token(self, stored: StoredConnection) -> str:
        c = stored.connection
        return self._cipher.decrypt(
            stored.refresh_token_ciphertext, TokenContext(c.tenant_id, c.user_id, c.connection_id)
        )

    # ------------------------------------------------------------------ health
    def check_connection(self, message: ConnectionCheck) -> ConnectionStatus | None:
        """Refresh the access token to learn whether the grant still works.

        ``invalid_grant`` marks the connection needs_reauth and is final (no retry until the
        user reconnects). A retryable provider failure raises so the queue retries. ``None``:
        the connection is gone, or changed while we checked (its newer state stands).
        """
        principal = Principal(message.tenant_id, message.user_id)
        stored = self._connections.get_stored(principal, message.connection_id)
        if stored is None:
            return None
        try:
            self._google.refresh(self._refresh_token(stored))
        except ReauthorizationRequired:
            self._counter.count("ConnectionNeedsReauth")
            return self._record(stored, ConnectionStatus.NEEDS_REAUTH, "invalid_grant")
        except TokenDecryptionError:
            return self._record(stored, ConnectionStatus.ERROR, "token_unreadable")
        except ProviderError as exc:
            if exc.retryable:
                raise
            return self._record(stored, ConnectionStatus.ERROR, "provider_refused")
        return self._record(stored, ConnectionStatus.CONNECTED, None)

    def _record(
        self, stored: StoredConnection, status: ConnectionStatus, reason: str | None
    ) -> ConnectionStatus | None:
        c = stored.connection
        updated = self._connections.set_status(c.principal, c.connection_id, status, reason, version=stored.version)
        return status if updated else None

    def enqueue_health_checks(self, occasion: str) -> int:
        """Scheduled sweep: one check per connection of every tenant."""
        sent = 0
        for principal, connection_id in self._connections.all_keys():
            self._queue.send(
                ConnectionCheck(
                    tenant_id=principal.tenant_id,
                    user_id=principal.user_id,
                    connection_id=connection_id,
                    reason="scheduled",
                    occasion=occasion,
                )
            )
            sent += 1
        return sent
