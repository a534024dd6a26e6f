"""F7 inbound and F4: conflict calendars mirrored from Google (full, then incremental, 410 →
full again) and their busy time in availability and bookings."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.dal.appointments import AppointmentFields
from crmsync.dal.mirror import MirrorStore
from crmsync.domain import Principal
from crmsync.errors import BookingConflict
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from tests.integration.test_connected_calendars import connect
from tests.support.google_user import GoogleCalendarUser as GoogleUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
DAY = (datetime.now(UTC) + timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def user(stack) -> GoogleUser:
    return GoogleUser(stack.google.base_url, f"sync-{uuid.uuid4().hex[:10]}@example.com")


@pytest.fixture
def connection(integrations: Integrations, calendars: Calendars, user: GoogleUser) -> str:
    connection_id = connect(integrations, ALICE, user.email, typed=True)
    calendars.refresh(ALICE, connection_id)
    return connection_id


def timed(start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    return {"summary": "busy", "start": {"dateTime": iso(start)}, "end": {"dateTime": iso(end)}, **extra}


def mirrored(connection: str, user: GoogleUser) -> list[Any]:
    return MirrorStore().events(ALICE, connection, user.email)


def test_full_then_incremental_sync_mirrors_the_calendar(calendar_sync, connection: str, user: GoogleUser) -> None:
    first = user.add(**timed(at(9), at(10)))
    second = user.add(**timed(at(11), at(12)))

    outcome = calendar_sync.run(ALICE, connection, user.email)
    assert outcome.full
    assert {e.event_id for e in mirrored(connection, user)} == {first["id"], second["id"]}

    third = user.add(**timed(at(14), at(15)))
    user.delete(first["id"])
    outcome = calendar_sync.run(ALICE, connection, user.email)
    assert not outcome.full
    assert {e.event_id for e in mirrored(connection, user)} == {second["id"], third["id"]}

    again = calendar_sync.run(ALICE, connection, user.email)  # nothing changed: nothing changes
    assert (again.full, again.changes) == (False, 0)


def test_an_invalidated_sync_token_falls_back_to_a_full_sync_without_duplicates_or_loss(
    calendar_sync, connection: str, user: GoogleUser
) -> None:
    kept = user.add(**timed(at(9), at(10)))
    gone = user.add(**timed(at(11), at(12)))
    calendar_sync.run(ALICE, connection, user.email)
    user.delete(gone["id"])
    added = user.add(**timed(at(13), at(14)))
    user.expire_sync_tokens()

    outcome = calendar_sync.run(ALICE, connection, user.email)

    assert outcome.full
    ids = [e.event_id for e in mirrored(connection, user)]
    assert sorted(ids) == sorted([kept["id"], added["id"]])
    assert len(ids) == len(set(ids))


def test_recurring_series_arrive_expanded_without_their_exceptions(
    calendar_sync, connection: str, user: GoogleUser
) -> None:
    # Google requires the time zone of a recurring event's start and end.
    series = user.add(
        summary="stand-up",
        start={"dateTime": iso(at(8)), "timeZone": "UTC"},
        end={"dateTime": iso(at(9)), "timeZone": "UTC"},
        recurrence=["RRULE:FREQ=DAILY;COUNT=5", f"EXDATE:{at(8, days=2).strftime('%Y%m%dT%H%M%SZ')}"],
    )
    calendar_sync.run(ALICE, connection, user.email)
    instances = [e for e in mirrored(connection, user) if e.event_id.startswith(series["id"])]
    assert sorted(e.start for e in instances) == [at(8, days=d) for d in (0, 1, 3, 4)]


def test_availability_subtracts_busy_events_but_not_free_cancelled_or_own_ones(
    calendar_sync, availability, connection: str, user: GoogleUser
) -> None:
    user.add(**timed(at(9), at(10)))
    user.add(**timed(at(11), at(12), transparency="transparent"))
    cancelled = user.add(**timed(at(13), at(14)))
    user.delete(cancelled["id"])
    calendar_sync.run(ALICE, connection, user.email)

    slots, busy = availability.free_slots(ALICE, at(8), at(15), timedelta(hours=1), timedelta(hours=1))

    starts = [s.hour for s, _ in slots]
    assert starts == [8, 10, 11, 12, 13, 14]
    assert [(b.start, b.source) for b in busy] == [(at(9), "calendar")]


def test_an_all_day_event_blocks_its_day_in_the_calendars_time_zone(
    calendar_sync, availability, connection: str, user: GoogleUser, calendars: Calendars
) -> None:
    zone = next(c for c in calendars.connected(ALICE) if c.primary).time_zone or "UTC"
    day = DAY.date() + timedelta(days=1)
    user.add(summary="offsite", start={"date": day.isoformat()}, end={"date": (day + timedelta(days=1)).isoformat()})
    calendar_sync.run(ALICE, connection, user.email)

    _, busy = availability.free_slots(ALICE, at(0), at(0, days=3), timedelta(hours=1), timedelta(hours=1))

    from zoneinfo import ZoneInfo

    local_midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert [(b.start, b.end - b.start) for b in busy] == [(local_midnight, timedelta(hours=24))]


def test_a_calendar_that_is_not_a_conflict_calendar_does_not_block(
    calendar_sync, availability, connection: str, user: GoogleUser, calendar_settings
) -> None:
    user.add(**timed(at(9), at(10)))
    calendar_sync.run(ALICE, connection, user.email)
    calendar_settings.set_conflict_calendars(ALICE, [])
    _, busy = availability.free_slots(ALICE, at(8), at(12), timedelta(hours=1), timedelta(hours=1))
    assert busy == []


def test_booking_into_busy_calendar_time_is_refused(
    calendar_sync, connection: str, user: GoogleUser, make_appointments: Callable[..., Appointments], availability
) -> None:
    user.add(**timed(at(9), at(10)))
    calendar_sync.run(ALICE, connection, user.email)
    appointments = make_appointments(external_busy=availability.external_busy)

    with pytest.raises(BookingConflict) as refused:
        appointments.create(ALICE, AppointmentFields("x", at(9, 30), at(10, 30), "UTC"))
    assert refused.value.conflicts[0]["source"] == "calendar"
    appointments.create(ALICE, AppointmentFields("y", at(10), at(11), "UTC"))


def test_a_full_sync_shows_how_many_events_it_mirrored_so_far_page_by_page(
    service_env: dict[str, str], calendars: Calendars, connection: str, user: GoogleUser
) -> None:
    """F12 "long work is visible": the first sync of a calendar records its count of mirrored
    events after each page of events.list (10 a page here), and the count goes when it is done."""
    from collections.abc import Iterator

    from crmsync.config import Settings
    from crmsync.dal.connections import ConnectionStore
    from crmsync.dal.settings import SettingsStore
    from crmsync.ports.calendar import CalendarPort, EventPage
    from crmsync.sync.calendar_sync import CalendarSync
    from tests.support.access import WrappedAccess, graph_with_page_size

    settings = Settings.from_env(service_env)
    user.add_many([timed(at(8) + timedelta(minutes=10 * i), at(8) + timedelta(minutes=10 * i + 5)) for i in range(45)])

    def so_far() -> int | None:
        [status] = [s for s in calendars.with_status(ALICE) if s.calendar.calendar_id == user.email]
        return status.events_so_far

    seen: list[int | None] = []

    class Watched:
        """The real adapter, noting what the settings page would show as each page arrives."""

        def __init__(self, adapter: CalendarPort) -> None:
            self.adapter = adapter

        def event_pages(self, calendar_id: str, *, cursor: str | None, since: Any) -> Iterator[EventPage]:
            for page in self.adapter.event_pages(calendar_id, cursor=cursor, since=since):
                seen.append(so_far())
                yield page

        def __getattr__(self, name: str) -> Any:
            return getattr(self.adapter, name)

    sync = CalendarSync(
        connections=ConnectionStore(),
        settings=SettingsStore(),
        mirror=MirrorStore(),
        calendars=WrappedAccess(graph_with_page_size(settings, 10).connectors, Watched),
    )
    assert so_far() is None  # chosen, not syncing yet

    assert sync.run(ALICE, connection, user.email).full

    # Five pages. Page k is fetched while page k-1 is stored (prefetch), so when it arrives
    # the count is that of the pages before it, or before the one being stored.
    assert len(seen) == 5
    assert seen[0] == 0
    for k, count in enumerate(seen[1:], start=1):
        assert count in (10 * (k - 1), 10 * k), seen
    assert so_far() is None  # done
    [status] = [s for s in calendars.with_status(ALICE) if s.calendar.calendar_id == user.email]
    assert status.sync_state == "synced"
    assert len(mirrored(connection, user)) == 45


def test_a_count_left_by_a_full_sync_that_never_finished_goes_with_the_next_sync(
    calendar_sync, calendars: Calendars, connection: str, user: GoogleUser
) -> None:
    """A worker that dies between pages leaves its count; the next sync, even one that finds
    nothing new, clears it (else the page would say "Syncing…" for ever)."""
    user.add(**timed(at(9), at(10)))
    assert calendar_sync.run(ALICE, connection, user.email).full
    MirrorStore().record_progress(ALICE, connection, user.email, 250)  # as a dying worker left it

    outcome = calendar_sync.run(ALICE, connection, user.email)

    assert (outcome.full, outcome.changes) == (False, 0)
    [status] = [s for s in calendars.with_status(ALICE) if s.calendar.calendar_id == user.email]
    assert (status.sync_state, status.events_so_far) == ("synced", None)


def test_a_full_sync_that_fails_leaves_no_count_behind(
    calendar_sync, calendars: Calendars, connection: str, user: GoogleUser
) -> None:
    import requests

    from crmsync.errors import ProviderError

    user.add(**timed(at(9), at(10)))
    requests.post(
        f"{user.base_url}/_emulator/faults",
        json={"kind": "unavailable_503", "method": "calendar.events.list", "email": user.email, "count": 1},
        timeout=10,
    ).raise_for_status()

    with pytest.raises(ProviderError):
        calendar_sync.run(ALICE, connection, user.email)

    [status] = [s for s in calendars.with_status(ALICE) if s.calendar.calendar_id == user.email]
    assert (status.sync_state, status.events_so_far) == ("failing", None)


def test_recording_a_failure_moves_the_cursors_version_never_back(
    calendar_sync, connection: str, user: GoogleUser
) -> None:
    """A writer holding the cursor as it was before the failure must fail its version check."""
    import requests

    from crmsync.errors import ProviderError
    from crmsync.models.keys import user_pk
    from crmsync.models.sync import SyncStateItem, sync_sk

    key = (user_pk(ALICE.tenant_id, ALICE.user_id), sync_sk(connection, user.email))
    user.add(**timed(at(9), at(10)))
    calendar_sync.run(ALICE, connection, user.email)
    user.add(**timed(at(11), at(12)))
    calendar_sync.run(ALICE, connection, user.email)
    before = SyncStateItem.get(*key, consistent_read=True)
    requests.post(
        f"{user.base_url}/_emulator/faults",
        json={"kind": "unavailable_503", "method": "calendar.events.list", "email": user.email, "count": 1},
        timeout=10,
    ).raise_for_status()
    with pytest.raises(ProviderError):
        calendar_sync.run(ALICE, connection, user.email)

    after = SyncStateItem.get(*key, consistent_read=True)
    assert after.last_error
    assert after.version > before.version
