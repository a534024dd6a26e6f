"""Connections: one item per connected provider account, under the user's partition."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from crmsync.dal import condition_failed
from crmsync.domain import Connection, ConnectionStatus, CredentialKind, Principal, StoredConnection
from crmsync.domain.sweeps import Sweep, sweep_key
from crmsync.errors import Conflict
from crmsync.models.connection import (
    CONNECTION_SK_PREFIX,
    POLL_SHARD_PREFIX,
    POLL_SHARDS,
    ConnectionItem,
    poll_shard,
)
from crmsync.models.keys import check_id, user_pk


def _to_domain(item: ConnectionItem) -> Connection:
    return Connection(
        tenant_id=item.tenant_id,
        user_id=item.user_id,
        connection_id=item.connection_id,
        provider=item.provider,
        subject=item.subject,
        email=item.email,
        display_name=item.display_name,
        scopes=tuple(sorted(item.scopes or ())),
        status=ConnectionStatus(item.status),
        status_reason=item.status_reason,
        created_at=item.created_at,
        updated_at=item.updated_at,
        last_checked_at=item.last_checked_at,
        credential_kind=CredentialKind(item.credential_kind or CredentialKind.OAUTH_TOKENS),
    )


def stored_from_item(item: ConnectionItem) -> StoredConnection:
    return StoredConnection(_to_domain(item), bytes(item.credential_ciphertext), int(item.version or 0))


__all__ = ["ConnectionStore", "StoredConnection", "stored_from_item"]


class ConnectionStore:
    """CRUD for connections. Every method takes the principal: no cross-tenant access."""

    def _get_item(self, principal: Principal, connection_id: str) -> ConnectionItem | None:
        try:
            check_id("connection", connection_id)
        except ValueError:
            return None
        try:
            return ConnectionItem.get(
                user_pk(principal.tenant_id, principal.user_id),
                CONNECTION_SK_PREFIX + connection_id,
                consistent_read=True,
            )
        except DoesNotExist:
            return None

    def get(self, principal: Principal, connection_id: str) -> Connection | None:
        item = self._get_item(principal, connection_id)
        return _to_domain(item) if item else None

    def list(self, principal: Principal) -> list[Connection]:
        items = ConnectionItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            ConnectionItem.sk.startswith(CONNECTION_SK_PREFIX),
            consistent_read=True,
        )
        return sorted((_to_domain(i) for i in items), key=lambda c: (c.created_at, c.email))

    def get_stored(self, principal: Principal, connection_id: str) -> StoredConnection | None:
        item = self._get_item(principal, connection_id)
        return stored_from_item(item) if item is not None else None

    def upsert(
        self,
        principal: Principal,
        *,
        connection_id: str,
        provider: str,
        subject: str,
        email: str,
        display_name: str | None,
        scopes: tuple[str, ...],
        credential_ciphertext: bytes | None,
        credential_kind: CredentialKind = CredentialKind.OAUTH_TOKENS,
        polled: bool = False,
    ) -> Connection:
        """Create the connection, or update it when the same account connects again.

        A missing credential (Google sends no new refresh token on a repeated consent) keeps
        the stored one. The version attribute makes a
        concurrent update fail instead of silently overwriting. ``polled``: its calendars send
        no change notifications, so the scheduled poll lists it (an app-specific password's
        always are).
        """
        now = datetime.now(UTC)
        item = self._get_item(principal, connection_id)
        if item is None:
            if credential_ciphertext is None:
                raise Conflict(f"{provider.title()} returned no refresh token for a new connection.")
            item = ConnectionItem(
                user_pk(principal.tenant_id, principal.user_id),
                CONNECTION_SK_PREFIX + connection_id,
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                provider=provider,
                subject=subject,
                created_at=now,
            )
        elif item.subject != subject or item.provider != provider:
            raise Conflict("The connection id belongs to another account.")
        item.email = email
        item.display_name = display_name
        item.scopes = set(scopes) or None
        item.status = ConnectionStatus.CONNECTED.value
        item.status_reason = None
        item.updated_at = now
        item.last_checked_at = now
        if credential_ciphertext is not None:
            item.credential_ciphertext = credential_ciphertext
            item.credential_kind = credential_kind.value
            # An app-specific password's calendars (CalDAV) send no notifications: polled.
            polled = polled or credential_kind is CredentialKind.APP_PASSWORD
            item.poll_shard = poll_shard(principal.tenant_id, principal.user_id, connection_id) if polled else None
        item.sweep = sweep_key(Sweep.HEALTH, principal.tenant_id, principal.user_id, connection_id)
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The connection changed concurrently; try again.") from exc
            raise
        return _to_domain(item)

    def set_status(
        self,
        principal: Principal,
        connection_id: str,
        status: ConnectionStatus,
        reason: str | None,
        *,
        version: int,
        credential_ciphertext: bytes | None = None,
    ) -> Connection | None:
        """Record the outcome of a check made on the connection as read at ``version``, and
        with ``credential_ciphertext`` the credential the check renewed (a Microsoft token cache
        holding the refresh token the refresh replaced), in the same conditional write.

        If the connection changed since (the user reconnected, or it was deleted), the newer
        state wins and ``None`` is returned: an old token's failure must not mark a freshly
        reconnected account.
        """
        now = datetime.now(UTC)
        item = ConnectionItem(
            user_pk(principal.tenant_id, principal.user_id), CONNECTION_SK_PREFIX + connection_id, version=version
        )
        try:
            item.update(
                actions=[
                    ConnectionItem.status.set(status.value),
                    ConnectionItem.status_reason.set(reason) if reason else ConnectionItem.status_reason.remove(),
                    ConnectionItem.last_checked_at.set(now),
                    ConnectionItem.updated_at.set(now),
                    *(
                        [ConnectionItem.credential_ciphertext.set(credential_ciphertext)]
                        if credential_ciphertext is not None
                        else []
                    ),
                ],
                condition=ConnectionItem.pk.exists(),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return None
            raise
        return _to_domain(item)

    def renew_credential(
        self, principal: Principal, connection_id: str, credential_ciphertext: bytes, *, version: int
    ) -> int | None:
        """Store the credential an adapter renewed while using the connection as read at
        ``version`` (a Microsoft token cache after MSAL redeemed its refresh token); the new
        version, or ``None`` when the connection changed since (another sync or the health
        check stored its own renewal, the user reconnected, or it is gone): that newer state
        stands and this credential is dropped."""
        item = ConnectionItem(
            user_pk(principal.tenant_id, principal.user_id), CONNECTION_SK_PREFIX + connection_id, version=version
        )
        try:
            item.update(
                actions=[
                    ConnectionItem.credential_ciphertext.set(credential_ciphertext),
                    ConnectionItem.updated_at.set(datetime.now(UTC)),
                ],
                condition=ConnectionItem.pk.exists(),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return None
            raise
        return int(item.version or 0)

    def delete(self, principal: Principal, connection_id: str) -> bool:
        item = self._get_item(principal, connection_id)
        if item is None:
            return False
        item.delete(add_version_condition=False)
        return True

    def all_keys(self) -> Iterator[tuple[Principal, str]]:
        """Every connection of every tenant: for scheduled jobs only."""
        for item in ConnectionItem.scan(
            ConnectionItem.sk.startswith(CONNECTION_SK_PREFIX),
            attributes_to_get=["tenant_id", "user_id", "connection_id"],
        ):
            yield Principal(item.tenant_id, item.user_id), item.connection_id

    def due(self, key: str) -> Iterator[tuple[Principal, str]]:
        """The connections in one slot of the health check's sweep (the sparse ``sweeps``
        index: no scan of the table): for the scheduled health check only."""
        for item in ConnectionItem.sweeps.query(key):
            yield Principal(item.tenant_id, item.user_id), item.connection_id

    def of_providers(self, providers: frozenset[str]) -> Iterator[tuple[Principal, str, ConnectionStatus]]:
        """Every polled connection (an app-specific password's, or an OAuth one stored as
        polled) of these providers, with its status: for the scheduled calendar poll only.
        Read from the sparse ``polled_connections`` index, shard by shard: no scan of the table."""
        if not providers:
            return
        for shard in range(POLL_SHARDS):
            for item in ConnectionItem.polled_connections.query(f"{POLL_SHARD_PREFIX}{shard}"):
                if item.provider in providers:
                    yield Principal(item.tenant_id, item.user_id), item.connection_id, ConnectionStatus(item.status)
