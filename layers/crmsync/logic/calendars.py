"""F2: the calendars of every connected account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from crmsync.dal.calendars import CalendarStore
from crmsync.dal.connections import ConnectionStore
from crmsync.domain import ConnectedCalendar, Connection, Principal
from crmsync.providers.google.calendar import ProviderCalendar
from crmsync.security.tokens import TokenCipher, TokenContext

#: A connection needs one of these scopes for its calendars to be listed.
CALENDAR_LIST_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/calendar",
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/calendar.calendarlist",
        "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    }
)


class CalendarProvider(Protocol):
    def list_calendars(self) -> list[ProviderCalendar]: ...


#: Builds the provider adapter for a connection from its refresh token.
ProviderFactory = Callable[[str], CalendarProvider]


class Calendars:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        calendars: CalendarStore,
        cipher: TokenCipher,
        provider: ProviderFactory,
    ) -> None:
        self._connections = connections
        self._calendars = calendars
        self._cipher = cipher
        self._provider = provider

    def connected(self, principal: Principal) -> list[ConnectedCalendar]:
        """Every connected account's calendars: accounts in connection order, primary first."""
        order = {c.connection_id: i for i, c in enumerate(self._connections.list(principal))}
        calendars = [c for c in self._calendars.of_user(principal) if c.connection_id in order]
        return sorted(calendars, key=lambda c: (order[c.connection_id], not c.primary, c.name.lower()))

    def refresh(self, principal: Principal, connection_id: str) -> list[ConnectedCalendar] | None:
        """Re-read the account's calendar list from the provider. ``None``: the connection is
        gone or has no calendar scope. Provider errors propagate (the queue retries)."""
        stored = self._connections.get_stored(principal, connection_id)
        if stored is None or not wants_calendars(stored.connection):
            return None
        c = stored.connection
        token = self._cipher.decrypt(
            stored.refresh_token_ciphertext, TokenContext(c.tenant_id, c.user_id, c.connection_id)
        )
        listed = self._provider(token).list_calendars()
        return self._calendars.replace_for_connection(principal, connection_id, c.email, listed)

    def forget_connection(self, principal: Principal, connection_id: str) -> None:
        self._calendars.delete_for_connection(principal, connection_id)


def wants_calendars(connection: Connection) -> bool:
    return bool(CALENDAR_LIST_SCOPES & set(connection.scopes))
