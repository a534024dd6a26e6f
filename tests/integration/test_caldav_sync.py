"""F7 inbound over CalDAV (Radicale): the server reports whole resources, so instances a
recurring series no longer has (a shortened RRULE, a new EXDATE, a deleted series) leave the
mirror though no deletion of them is reported (``EventPage.whole_resources``). The stores are
the in-memory fakes; the provider is the real adapter against a real CalDAV server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest

from crmsync.domain import CalendarRef, Principal, StoredConnection
from crmsync.providers.caldav.calendar import CalDavCalendar
from crmsync.providers.caldav.client import DavClient
from devstack.caldav import CalDavServer
from tests.fakes.world import FakeGraph
from tests.support import clock
from tests.support.caldav_user import CalDavUser

pytestmark = pytest.mark.integration


class CalDavAccess:
    """The connectors' calendar access, opening the CalDAV adapter for the user's account."""

    def __init__(self, server: CalDavServer, user: CalDavUser) -> None:
        self._server, self._user = server, user

    def calendar(self, stored: StoredConnection) -> CalDavCalendar:
        client = DavClient(self._server.base_url, self._user.email, self._user.password)
        return CalDavCalendar(client, tenant_id=stored.connection.tenant_id)


class World:
    def __init__(self, server: CalDavServer) -> None:
        self.user = CalDavUser(server)
        self.graph = FakeGraph()
        self.principal = Principal("tenant-dav", "ada")
        self.connection = self.graph.connect(self.principal, self.user.email)
        self.graph.connectors.calendars = CalDavAccess(server, self.user)  # type: ignore[assignment]
        self.graph.calendars.refresh(self.principal, self.connection)
        self.graph.calendar_settings.set_conflict_calendars(
            self.principal, [CalendarRef(self.connection, self.user.calendar_url)]
        )
        self.graph.queue.take()

    def sync(self) -> Any:
        return self.graph.calendar_sync.run(self.principal, self.connection, self.user.calendar_url)

    def mirrored(self) -> dict[str, datetime | None]:
        events = self.graph.stores.mirror_store.events(self.principal, self.connection, self.user.calendar_url)
        return {e.event_id: e.start for e in events}


@pytest.fixture
def world(caldav_server: CalDavServer) -> World:
    return World(caldav_server)


def series(first: datetime, *, count: int, exdates: tuple[datetime, ...] = ()) -> str:
    event = icalendar.Event()
    event.add("uid", "weekly-review")
    event.add("dtstamp", clock.now())
    event.add("summary", "Weekly review")
    event.add("dtstart", first)
    event.add("dtend", first + timedelta(hours=1))
    event.add("rrule", {"FREQ": "WEEKLY", "COUNT": count})
    for moment in exdates:
        event.add("exdate", moment)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//tests//EN")
    calendar.add("version", "2.0")
    calendar.add_component(event)
    return str(calendar.to_ical().decode())


def weeks(first: datetime, *numbers: int) -> set[datetime]:
    return {(first + timedelta(weeks=n)).astimezone(UTC) for n in numbers}


def test_instances_a_series_loses_leave_the_mirror(world: World) -> None:
    first = clock.days_ahead(2, 9)
    world.user.put("weekly.ics", series(first, count=6))
    single = world.user.add("Lunch", first + timedelta(hours=3), first + timedelta(hours=4))
    assert world.sync().full
    assert set(world.mirrored().values()) == weeks(first, 0, 1, 2, 3, 4, 5) | {first + timedelta(hours=3)}

    world.user.put("weekly.ics", series(first, count=4))  # the RRULE is shortened
    outcome = world.sync()
    assert not outcome.full
    assert set(world.mirrored().values()) == weeks(first, 0, 1, 2, 3) | {first + timedelta(hours=3)}

    world.user.put("weekly.ics", series(first, count=4, exdates=(first + timedelta(weeks=1),)))  # an EXDATE
    world.sync()
    assert set(world.mirrored().values()) == weeks(first, 0, 2, 3) | {first + timedelta(hours=3)}

    world.user.delete("weekly.ics")  # the series is deleted
    world.sync()
    assert world.mirrored() == {single: first + timedelta(hours=3)}
