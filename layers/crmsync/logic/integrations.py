"""F1: connect, list and disconnect provider accounts; check that a grant still works."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crmsync.dal.connections import ConnectionStore
from crmsync.dal.oauth_states import OAuthStateStore
from crmsync.domain import (
    Connection,
    ConnectionStatus,
    Counter,
    CredentialKind,
    NoCounter,
    PendingAuthorization,
    Principal,
    StoredConnection,
)
from crmsync.errors import (
    AuthorizationDenied,
    CredentialsRefused,
    CrmSyncError,
    InvalidRequest,
    NotFound,
    OAuthStateError,
    ProviderError,
)
from crmsync.messaging.messages import ConnectionCheck
from crmsync.messaging.queue import SyncQueue
from crmsync.ports.accounts import AccountAccess
from crmsync.ports.errors import AuthRevoked, ProviderNotFound
from crmsync.security.secrets import new_pkce_verifier, new_secret, sha256_hex
from crmsync.security.tokens import TokenCipher, TokenContext, TokenDecryptionError
from crmsync.security.urls import UnsafeServerUrl, check_server_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectOutcome:
    """A completed sign-in: the stored connection, and the intent it carried (if any)."""

    connection: Connection
    intent: str | None = None


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


#: Apple's app-specific passwords: four groups of four lowercase letters (shown with hyphens).
APP_SPECIFIC_PASSWORD = re.compile(r"^[a-z]{4}-?[a-z]{4}-?[a-z]{4}-?[a-z]{4}$")
MAX_USERNAME = 320
MAX_PASSWORD = 256


def _plain_text(value: str, field: str, limit: int) -> str:
    if not value or len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidRequest(f"'{field}' must be 1 to {limit} characters without control characters.")
    return value


def _valid_binding(value: str | None) -> bool:
    return bool(value) and 32 <= len(value or "") <= 128 and (value or "").isascii()


class Integrations:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        states: OAuthStateStore,
        cipher: TokenCipher,
        accounts: AccountAccess,
        queue: SyncQueue,
        enabled_features: Mapping[str, Sequence[str]],
        state_ttl: timedelta = timedelta(minutes=10),
        counter: Counter | None = None,
        mirrors: Sequence[Callable[[Principal, str], None]] = (),
        before_revoke: Sequence[Callable[[Principal, StoredConnection], None]] = (),
        after_connect: Mapping[str, Callable[[Principal, Connection], None]] | None = None,
        on_request: Sequence[str] = (),
        password_providers: Sequence[str] = (),
        private_servers: bool = False,
        polled: Collection[str] = (),
    ) -> None:
        """``accounts``: every provider's OAuth client and the credential of a stored
        connection; ``enabled_features``: per provider users may connect, the features they
        may ask for (all of them when a request names none). ``mirrors``: what deletes the
        data mirrored from a connection when it is disconnected (its calendars, later its
        events, mail and contacts); ``before_revoke``: what must still use the grant before
        it is revoked (stopping push channels), called with the principal and the stored
        connection. ``after_connect``: per intent a flow may carry (``start_connect(intent=)``),
        what completes it once the account is stored; it may refuse with a
        :class:`CrmSyncError` (the connection stays, the callback reports the refusal).
        ``on_request``: enabled features asked for only when a request names them (not by a
        plain sign-in: least privilege, e.g. contacts). ``password_providers``: the providers
        users connect with an account name and password (iCloud); ``private_servers``: whether
        a server URL they give may be on a loopback or private address (the local stack only:
        in production that would let a user make the backend call its own network).
        ``polled``: the providers whose calendars the scheduled poll syncs (no push channel):
        their OAuth connections are stored as polled."""
        self._connections = connections
        self._states = states
        self._cipher = cipher
        self._accounts = accounts
        self._queue = queue
        self._features = {provider: tuple(features) for provider, features in enabled_features.items()}
        self._state_ttl = state_ttl
        self._counter = counter or NoCounter()
        self._mirrors = tuple(mirrors)
        self._before_revoke = tuple(before_revoke)
        self._after_connect = dict(after_connect or {})
        self._on_request = frozenset(on_request)
        self._password_providers = tuple(password_providers)
        self._private_servers = private_servers
        self._polled = frozenset(polled)

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers users may connect here."""
        return (*self._features, *self._password_providers)

    # ------------------------------------------------------------------ connect with a password
    def connect_with_password(
        self, provider: str, principal: Principal, *, username: str, password: str, server_url: str | None = None
    ) -> Connection:
        """Connect an account that signs in with a name and password (iCloud: the Apple ID and an
        app-specific password). The provider must accept them (a CalDAV discovery) before
        anything is stored; the credential is stored KMS-encrypted only. Connecting the same
        account again updates it (a new password after the old one was revoked).

        ``CredentialsRefused`` (422) when the provider refuses them; ``InvalidRequest`` for a
        malformed name, password or server URL; a ``ProviderError`` (502) when the server
        cannot be reached or has no calendars service."""
        if provider not in self._password_providers:
            raise InvalidRequest(f"Connecting {provider!r} with a password is not offered here.")
        username = _plain_text(username.strip(), "username", MAX_USERNAME)
        password = _plain_text(password.strip(), "password", MAX_PASSWORD)
        if server_url is not None and server_url.strip():
            try:
                server_url = check_server_url(server_url.strip(), private=self._private_servers)
            except UnsafeServerUrl as exc:
                raise InvalidRequest(exc.reason) from None
        else:
            server_url = None
        login = self._accounts.password_login(provider)
        try:
            account = login.verify(username, password, server_url)
        except AuthRevoked:
            self._counter.count("PasswordRefused")
            log.info("password sign-in refused", extra={"provider": provider})
            raise CredentialsRefused(self._refusal(provider, password, server_url)) from None
        except ProviderNotFound:
            raise ProviderError(
                "No calendar service (CalDAV) answered at that address.", retryable=False, status=404
            ) from None
        connection_id = connection_id_for(principal, provider, account.identity.subject)
        ciphertext = self._cipher.encrypt(
            account.credential, TokenContext(principal.tenant_id, principal.user_id, connection_id)
        )
        connection = self._connections.upsert(
            principal,
            connection_id=connection_id,
            provider=provider,
            subject=account.identity.subject,
            email=account.identity.email,
            display_name=account.identity.name,
            scopes=(),
            credential_ciphertext=ciphertext,
            credential_kind=CredentialKind.APP_PASSWORD,
        )
        self._counter.count("ConnectionConnected")
        self._enqueue_check(connection, reason="connected", occasion=connection.updated_at.isoformat())
        return connection

    @staticmethod
    def _refusal(provider: str, password: str, server_url: str | None) -> str:
        if provider == "icloud" and server_url is None:
            if not APP_SPECIFIC_PASSWORD.match(password.replace(" ", "")):
                return (
                    "iCloud did not accept this Apple ID and password. iCloud needs an app-specific "
                    "password (four groups of four letters, like abcd-efgh-ijkl-mnop), not your Apple "
                    "ID password: create one at account.apple.com under Sign-In and Security."
                )
            return (
                "iCloud did not accept this Apple ID and app-specific password. Check the Apple ID, "
                "and that the password was not revoked; you can create a new one at account.apple.com."
            )
        return "The server did not accept this user name and password."

    # ------------------------------------------------------------------ connect
    def start_connect(
        self,
        provider: str,
        principal: Principal,
        *,
        features: Sequence[str] | None = None,
        binding: str | None = None,
        login_hint: str | None = None,
        intent: str | None = None,
        also: Sequence[str] = (),
    ) -> AuthorizationStart:
        """``features``: what to ask for (default: every enabled feature not asked for only on
        request); ``also``: on-request features added to that default (e.g. contacts when the
        contacts account signs in again)."""
        enabled = self._features.get(provider)
        if enabled is None:
            raise InvalidRequest(f"Signing in with {provider!r} is not offered here.")
        if intent is not None and intent not in self._after_connect:
            raise InvalidRequest(f"Unknown sign-in intent {intent!r}.")
        oauth = self._accounts.oauth(provider)
        wanted = tuple(features) if features else tuple(f for f in enabled if f not in self._on_request or f in also)
        unknown = [f for f in wanted if f not in oauth.feature_scopes]
        if unknown:
            raise InvalidRequest(f"Unknown feature(s): {', '.join(unknown)}.")
        disabled = [f for f in wanted if f not in enabled]
        if disabled:
            raise InvalidRequest(f"Feature(s) not enabled here: {', '.join(disabled)}.")
        binding = binding if binding and _valid_binding(binding) else new_secret(32)
        state = new_secret(32)
        verifier = new_pkce_verifier()
        scopes = tuple(oauth.scopes_for(wanted))
        now = datetime.now(UTC)
        pending = PendingAuthorization(
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            provider=provider,
            binding_hash=sha256_hex(binding),
            code_verifier=verifier,
            scopes=scopes,
            created_at=now,
            expires_at=now + self._state_ttl,
            intent=intent,
        )
        self._states.put(state, pending)
        url = oauth.authorization_url(state=state, code_verifier=verifier, scopes=scopes, login_hint=login_hint)
        self._counter.count("OAuthStarted")
        return AuthorizationStart(authorization_url=url, binding=binding, expires_at=pending.expires_at)

    def complete_connect(
        self,
        provider: str,
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
        return self.finish_connect(provider, state=state, code=code, error=error, binding=binding).connection

    def finish_connect(
        self,
        provider: str,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        binding: str | None,
    ) -> ConnectOutcome:
        """:meth:`complete_connect`, also saying which intent the sign-in carried (the
        callback returns to the page that started it). A refusal raised by the intent's step
        carries the intent in ``exc.intent``."""
        try:
            return self._complete_connect(provider, state=state, code=code, error=error, binding=binding)
        except CrmSyncError:
            self._counter.count("OAuthRefused")
            raise

    def _complete_connect(
        self, provider: str, *, state: str | None, code: str | None, error: str | None, binding: str | None
    ) -> ConnectOutcome:
        if not state:
            raise OAuthStateError(OAuthStateError.MISSING, "The sign-in response has no state.")
        pending = self._states.consume(state, binding_hash=sha256_hex(binding or ""), provider=provider)
        principal = pending.principal
        if error:
            raise AuthorizationDenied(error[:64])
        if not code:
            raise InvalidRequest("The sign-in response has no authorization code.")
        oauth = self._accounts.oauth(provider)
        grant = oauth.exchange_code(code=code, code_verifier=pending.code_verifier, scopes=pending.scopes)
        identity = oauth.identity(grant)
        connection_id = connection_id_for(principal, provider, identity.subject)
        secret = grant.stored_credential
        ciphertext = (
            self._cipher.encrypt(secret, TokenContext(principal.tenant_id, principal.user_id, connection_id))
            if secret
            else None
        )
        connection = self._connections.upsert(
            principal,
            connection_id=connection_id,
            provider=provider,
            subject=identity.subject,
            email=identity.email,
            display_name=identity.name,
            scopes=grant.scopes,
            credential_ciphertext=ciphertext,
            credential_kind=CredentialKind.OAUTH_TOKENS,
            polled=provider in self._polled,
        )
        self._counter.count("ConnectionConnected")
        try:
            if pending.intent is not None:
                # After storing, before the check (which reads what the intent records): a
                # refusal here (e.g. a scope the intent needs was unticked) leaves the
                # connection as Google granted it and nothing of the intent half-done.
                self._after_connect[pending.intent](principal, connection)
        except CrmSyncError as exc:
            exc.intent = pending.intent
            raise
        finally:
            self._enqueue_check(connection, reason="connected", occasion=connection.updated_at.isoformat())
        return ConnectOutcome(connection, pending.intent)

    def feature_granted(self, connection: Connection, feature: str) -> bool:
        """Whether the connection's grant holds every scope ``feature`` needs."""
        needed = self._accounts.oauth(connection.provider).feature_scopes.get(feature)
        return bool(needed) and set(needed or ()) <= set(connection.scopes)

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
        """Revoke at the provider, then delete tokens and the connection — even if revoke
        fails (the user asked to disconnect; a failed revoke is logged and metered)."""
        stored = self._connections.get_stored(principal, connection_id)
        if stored is None:
            raise NotFound(f"No integration with id {connection_id!r}.")
        try:
            credential = self._accounts.credential(stored)
            for cleanup in self._before_revoke:
                cleanup(principal, stored)
            credential.revoke()
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

    # ------------------------------------------------------------------ health
    def check_connection(self, message: ConnectionCheck) -> ConnectionStatus | None:
        """Prove the credential still works (for OAuth: refresh the access token).

        ``invalid_grant`` marks the connection needs_reauth and is final (no retry until the
        user reconnects). A retryable provider failure raises so the queue retries. ``None``:
        the connection is gone, or changed while we checked (its newer state stands).
        """
        principal = Principal(message.tenant_id, message.user_id)
        stored = self._connections.get_stored(principal, message.connection_id)
        if stored is None:
            return None
        try:
            renewed = self._accounts.credential(stored).check()
        except AuthRevoked:
            self._counter.count("ConnectionNeedsReauth")
            return self._record(stored, ConnectionStatus.NEEDS_REAUTH, "invalid_grant")
        except TokenDecryptionError:
            return self._record(stored, ConnectionStatus.ERROR, "token_unreadable")
        except ProviderError as exc:
            if exc.retryable:
                raise
            return self._record(stored, ConnectionStatus.ERROR, "provider_refused")
        ciphertext = None
        if renewed:
            c = stored.connection
            ciphertext = self._cipher.encrypt(renewed, TokenContext(c.tenant_id, c.user_id, c.connection_id))
        return self._record(stored, ConnectionStatus.CONNECTED, None, ciphertext)

    def _record(
        self,
        stored: StoredConnection,
        status: ConnectionStatus,
        reason: str | None,
        credential_ciphertext: bytes | None = None,
    ) -> ConnectionStatus | None:
        """The check's outcome, with the renewed credential if there is one, on the version
        read (a reconnect in the meantime wins, its credential too)."""
        c = stored.connection
        updated = self._connections.set_status(
            c.principal,
            c.connection_id,
            status,
            reason,
            version=stored.version,
            credential_ciphertext=credential_ciphertext,
        )
        return status if updated else None

    def enqueue_health_checks(self, occasion: str, due: str | None = None) -> int:
        """Scheduled sweep: one check per connection in the slot ``due``
        (:mod:`crmsync.domain.sweeps`), or of every tenant when None."""
        sent = 0
        keys = self._connections.all_keys() if due is None else self._connections.due(due)
        for principal, connection_id in keys:
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
