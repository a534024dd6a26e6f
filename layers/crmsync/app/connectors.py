"""Opens stored connections: decrypts the credential and hands it to the adapter registered
for the connection's provider. The composition root registers the adapters; nothing here
names one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from crmsync.domain import Connection, CredentialKind, StoredConnection
from crmsync.errors import InvalidRequest, ProviderError
from crmsync.ports.accounts import CredentialPort, OAuthPort, PasswordLoginPort
from crmsync.ports.calendar import CalendarPort
from crmsync.ports.contacts import ContactsPort
from crmsync.ports.mail import MailPort
from crmsync.security.tokens import TokenCipher, TokenContext

P = TypeVar("P")


@dataclass(frozen=True)
class ProviderKit:
    """One provider's adapters, each built on first use. ``credential_kinds``: what its
    connections may hold. Each factory gets the decrypted credential and the connection (the
    calendar factory the stored connection: see ``calendar``)."""

    credential_kinds: frozenset[CredentialKind]
    credential: Callable[[str, Connection], CredentialPort]
    oauth: Callable[[], OAuthPort] | None = None
    #: Sign-in with an account name and password (CalDAV); no stored connection needed.
    password_login: Callable[[], PasswordLoginPort] | None = None
    #: Gets the stored connection, not only its ``Connection``: an adapter that renews the
    #: credential while in use (Microsoft's token cache) stores it on the version read.
    calendar: Callable[[str, StoredConnection], CalendarPort] | None = None
    #: Whether a connection's grant reaches its calendars (default: whenever there is a
    #: calendar adapter, e.g. an app-specific password reaches everything).
    reaches_calendars: Callable[[Connection], bool] | None = None
    contacts: Callable[[str, Connection], ContactsPort] | None = None
    mail: Callable[[str, Connection], MailPort] | None = None
    #: Its calendars send no change notifications (the adapter's ``notification`` is
    #: ``POLLING``): the scheduled calendar poll syncs them instead.
    polled: bool = False


class Connectors:
    """Every registered provider's ports over stored connections: what the ports call
    AccountAccess, CalendarAccess, ContactsAccess and MailAccess."""

    def __init__(self, cipher: TokenCipher, kits: Mapping[str, ProviderKit]) -> None:
        self._cipher = cipher
        self._kits = dict(kits)
        self._oauth: dict[str, OAuthPort] = {}

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._kits)

    @property
    def polled_providers(self) -> frozenset[str]:
        """The providers whose calendars are polled (no push channel, no subscription)."""
        return frozenset(name for name, kit in self._kits.items() if kit.polled and kit.calendar is not None)

    def oauth(self, provider: str) -> OAuthPort:
        kit = self._kits.get(provider)
        if kit is None or kit.oauth is None:
            raise InvalidRequest(f"Signing in with {provider!r} is not offered here.")
        if provider not in self._oauth:
            self._oauth[provider] = kit.oauth()
        return self._oauth[provider]

    def password_login(self, provider: str) -> PasswordLoginPort:
        kit = self._kits.get(provider)
        if kit is None or kit.password_login is None:
            raise InvalidRequest(f"Connecting {provider!r} with a password is not offered here.")
        return kit.password_login()

    def credential(self, stored: StoredConnection) -> CredentialPort:
        kit = self._kit(stored.connection)
        return kit.credential(self.secret(stored), stored.connection)

    def calendar(self, stored: StoredConnection) -> CalendarPort:
        factory = self._kit(stored.connection).calendar
        if factory is None:
            raise ProviderError(f"{stored.connection.provider} offers no calendars here.", retryable=False)
        return factory(self.secret(stored), stored)

    def reaches_calendars(self, connection: Connection) -> bool:
        kit = self._kits.get(connection.provider)
        if kit is None or kit.calendar is None:
            return False
        return kit.reaches_calendars(connection) if kit.reaches_calendars else True

    def contacts(self, stored: StoredConnection) -> ContactsPort:
        return self._open(stored, self._kit(stored.connection).contacts, "contacts")

    def mail(self, stored: StoredConnection) -> MailPort:
        return self._open(stored, self._kit(stored.connection).mail, "mail")

    def _open(self, stored: StoredConnection, factory: Callable[[str, Connection], P] | None, what: str) -> P:
        if factory is None:
            raise ProviderError(f"{stored.connection.provider} offers no {what} here.", retryable=False)
        return factory(self.secret(stored), stored.connection)

    def secret(self, stored: StoredConnection) -> str:
        """The connection's credential in clear (TokenDecryptionError when it cannot be)."""
        c = stored.connection
        return self._cipher.decrypt(stored.credential_ciphertext, TokenContext(c.tenant_id, c.user_id, c.connection_id))

    def _kit(self, connection: Connection) -> ProviderKit:
        kit = self._kits.get(connection.provider)
        if kit is None or connection.credential_kind not in kit.credential_kinds:
            raise ProviderError(
                f"No adapter for {connection.provider} connections holding {connection.credential_kind}.",
                retryable=False,
            )
        return kit
