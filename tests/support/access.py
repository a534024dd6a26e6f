"""The ports' access to real adapters, for in-process tests that watch or break them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crmsync.app.connectors import Connectors
from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import Connection, StoredConnection
from crmsync.ports.calendar import CalendarPort
from crmsync.ports.contacts import ContactsPort
from crmsync.providers.google.calendar import GoogleCalendar


class WrappedAccess:
    """Opens each connection's calendar port as production does, then hands it to ``wrap``
    (a wrapper that loses answers, notes pages...)."""

    def __init__(self, connectors: Connectors, wrap: Callable[[CalendarPort], Any]) -> None:
        self._connectors = connectors
        self._wrap = wrap

    def calendar(self, stored: StoredConnection) -> CalendarPort:
        return self._wrap(self._connectors.calendar(stored))  # type: ignore[no-any-return]


def graph_with_page_size(settings: Settings, events_page_size: int) -> Graph:
    """The production graph, but Google's events.list answers ``events_page_size`` a page
    (to see paging at work without thousands of events)."""

    class SmallPages(Graph):
        def google_calendar(self, refresh_token: str, connection: Connection) -> CalendarPort:
            return GoogleCalendar(
                settings.google,
                refresh_token,
                self._google_secret,
                tenant_id=connection.tenant_id,
                events_page_size=events_page_size,
            )

    return SmallPages(settings)


class WrappedContactsAccess:
    """Opens each connection's contacts port as production does, then hands it to ``wrap``
    (a wrapper that loses answers, counts calls...)."""

    def __init__(self, connectors: Connectors, wrap: Callable[[ContactsPort], Any]) -> None:
        self._connectors = connectors
        self._wrap = wrap

    def contacts(self, stored: StoredConnection) -> ContactsPort:
        return self._wrap(self._connectors.contacts(stored))  # type: ignore[no-any-return]
