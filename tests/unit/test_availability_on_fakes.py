"""Availability and bookings (F4, F5) on the production graph over fakes: what the busy
events of the conflict calendars block once a calendar sync mirrored them, what they do not,
and how a refused booking names the user's calendar and event. Mirrors
tests/integration/test_inbound_calendar_sync.py and test_bookings.py without Java or the
emulator."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import CalendarRef, ExternalEvent, Principal
from crmsync.errors import BookingConflict, Unprocessable
from tests.fakes.world import FakeGraph
from tests.support import clock

ALICE = Principal("tenant-a", "alice")
EMAIL = "ada@example.com"
NINE = clock.next_weekday(clock.WEDNESDAY, 9)
HOUR = timedelta(hours=1)


def at(hour: int, minute: int = 0) -> datetime:
    return NINE + timedelta(hours=hour - 9, minutes=minute)


@pytest.fixture
def graph() -> FakeGraph:
    graph = FakeGraph()
    connection_id = graph.connect(ALICE, EMAIL)
    graph.calendars.refresh(ALICE, connection_id)
    graph.queue.take()
    graph.connection_id = connection_id  # type: ignore[attr-defined]
    return graph


def cid(graph: FakeGraph) -> str:
    return graph.connection_id  # type: ignore[attr-defined]


def sync(graph: FakeGraph, calendar_id: str = EMAIL) -> None:
    assert graph.calendar_sync.run(ALICE, cid(graph), calendar_id) is not None


def mirrored(event_id: str, **fields: object) -> ExternalEvent:
    """An event as a sync mirrors it — for the kinds the fake provider cannot make (all-day,
    declined)."""
    values: dict[str, object] = {
        "event_id": event_id,
        "cancelled": False,
        "start": None,
        "end": None,
        "start_date": None,
        "end_date": None,
        "transparent": False,
        "declined": False,
        "summary": event_id,
        "etag": None,
        "crm_appointment_id": None,
        **fields,
    }
    return ExternalEvent(**values)  # type: ignore[arg-type]


def test_busy_events_block_but_free_cancelled_and_zero_length_ones_do_not(graph: FakeGraph) -> None:
    calendar = graph.calendar_of(cid(graph))
    calendar.user_add(EMAIL, summary="busy", start=at(9), end=at(10))
    calendar.user_add(EMAIL, summary="free", start=at(11), end=at(12), transparent=True)
    gone = calendar.user_add(EMAIL, summary="gone", start=at(13), end=at(14))
    calendar.user_delete(EMAIL, gone.event_id)
    calendar.user_add(EMAIL, summary="reminder", start=at(14, 30), end=at(14, 30))
    sync(graph)

    slots, busy = graph.availability.free_slots(ALICE, at(8), at(15), HOUR, HOUR)

    assert [s.hour for s, _ in slots] == [8, 10, 11, 12, 13, 14]
    assert [(b.start, b.end, b.source, b.calendar, b.event) for b in busy] == [
        (at(9), at(10), "calendar", EMAIL, "busy")
    ]


def test_nothing_blocks_before_a_sync_mirrors_it_and_a_resync_follows_moves_and_deletions(graph: FakeGraph) -> None:
    calendar = graph.calendar_of(cid(graph))
    event = calendar.user_add(EMAIL, summary="busy", start=at(9), end=at(10))
    assert graph.availability.busy(ALICE, at(8), at(15)) == []

    sync(graph)
    calendar.user_move(EMAIL, event.event_id, start=at(12), end=at(13))
    sync(graph)
    assert [(b.start, b.end) for b in graph.availability.busy(ALICE, at(8), at(15))] == [(at(12), at(13))]

    calendar.user_delete(EMAIL, event.event_id)
    sync(graph)
    assert graph.availability.busy(ALICE, at(8), at(15)) == []


def test_a_declined_event_does_not_block(graph: FakeGraph) -> None:
    graph.mirror_store.apply(
        ALICE,
        cid(graph),
        EMAIL,
        [
            mirrored("declined", start=at(9), end=at(10), declined=True),
            mirrored("accepted", start=at(11), end=at(12)),
        ],
    )
    assert [b.event for b in graph.availability.busy(ALICE, at(8), at(15))] == ["accepted"]


def _dst_days(zone: str) -> list[date]:
    """The days of ``zone``'s next two daylight-saving changes (one spring, one autumn)."""
    tz, out, after = ZoneInfo(zone), [], None
    for _ in range(2):
        change = clock.next_offset_change(zone, after=after)
        out.append(change.astimezone(tz).date())
        after = change
    return out


def test_an_all_day_event_blocks_its_whole_local_day_in_the_calendars_zone_across_dst(graph: FakeGraph) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    graph.calendar_of(cid(graph)).add_calendar("team", name="Team", time_zone="Europe/Berlin")
    graph.calendars.refresh(ALICE, cid(graph))
    graph.calendar_settings.set_conflict_calendars(ALICE, [CalendarRef(cid(graph), "team")])
    spring_or_autumn = _dst_days("Europe/Berlin")
    days = [*spring_or_autumn, spring_or_autumn[0] + timedelta(days=1)]  # and an ordinary day
    graph.mirror_store.apply(
        ALICE,
        cid(graph),
        "team",
        [mirrored(f"off-{d}", start_date=d.isoformat(), end_date=(d + timedelta(days=1)).isoformat()) for d in days],
    )

    lengths = []
    for day in days:
        midnight = clock.at(day, zone=berlin).astimezone(UTC)
        next_midnight = clock.at(day + timedelta(days=1), zone=berlin).astimezone(UTC)
        busy = graph.availability.busy(ALICE, midnight, next_midnight)
        assert [(b.start, b.end, b.event) for b in busy] == [(midnight, next_midnight, f"off-{day}")], day
        lengths.append(round((next_midnight - midnight) / HOUR))
    assert sorted(lengths) == [23, 24, 25]  # the zone's day, not 24 hours, is blocked


def test_a_calendar_that_is_no_longer_a_conflict_calendar_does_not_block(graph: FakeGraph) -> None:
    graph.calendar_of(cid(graph)).user_add(EMAIL, summary="busy", start=at(9), end=at(10))
    sync(graph)
    assert len(graph.availability.busy(ALICE, at(8), at(12))) == 1

    graph.calendar_settings.set_conflict_calendars(ALICE, [])

    assert graph.availability.busy(ALICE, at(8), at(12)) == []
    graph.appointments.create(ALICE, AppointmentFields("x", at(9), at(10), "UTC"))


def test_our_own_appointments_are_busy_once_whether_pushed_or_imported(graph: FakeGraph) -> None:
    graph.calendar_settings.link(ALICE, CalendarRef(cid(graph), EMAIL))
    graph.queue.take()
    pushed = graph.appointments.create(ALICE, AppointmentFields("pushed", at(9), at(10), "UTC"))
    assert [graph.appointments.push(m) for m in graph.queue.take()] == ["pushed"]
    graph.calendar_of(cid(graph)).user_add(EMAIL, summary="made in the app", start=at(11), end=at(12))
    sync(graph)
    (imported,) = [
        a for a in graph.appointments.between(ALICE, None, None) if a.appointment_id != pushed.appointment_id
    ]
    assert len(graph.mirror_store.events(ALICE, cid(graph), EMAIL)) == 2  # both twins are mirrored

    busy = graph.availability.busy(ALICE, at(8), at(13))

    assert [(b.start, b.end, b.source) for b in busy] == [(at(9), at(10), "crm"), (at(11), at(12), "crm")]
    moved = graph.appointments.change(ALICE, imported.appointment_id, start=at(11, 15))
    assert moved.start == at(11, 15)


def test_free_slots_step_by_step_with_their_duration(graph: FakeGraph) -> None:
    graph.calendar_of(cid(graph)).user_add(EMAIL, summary="busy", start=at(9), end=at(10))
    sync(graph)

    slots, _ = graph.availability.free_slots(ALICE, at(8), at(12), timedelta(minutes=90), timedelta(minutes=30))

    assert slots == [(at(10), at(11, 30)), (at(10, 30), at(12))]


def test_the_window_spans_at_most_62_days_and_must_end_after_it_starts(graph: FakeGraph) -> None:
    graph.availability.free_slots(ALICE, at(8), at(8) + timedelta(days=62), HOUR, timedelta(days=1))
    with pytest.raises(Unprocessable):
        graph.availability.free_slots(ALICE, at(8), at(8) + timedelta(days=62, seconds=1), HOUR, HOUR)
    with pytest.raises(Unprocessable):
        graph.availability.free_slots(ALICE, at(8), at(8), HOUR, HOUR)


def test_a_refused_booking_names_the_users_calendar_and_event(graph: FakeGraph) -> None:
    graph.calendar_of(cid(graph)).add_calendar("team", name="Team")
    graph.calendars.refresh(ALICE, cid(graph))
    graph.calendar_settings.set_conflict_calendars(
        ALICE, [CalendarRef(cid(graph), EMAIL), CalendarRef(cid(graph), "team")]
    )
    graph.calendar_of(cid(graph)).user_add("team", summary="Weekly sync", start=at(9), end=at(10))
    sync(graph, "team")

    with pytest.raises(BookingConflict) as refused:
        graph.appointments.create(ALICE, AppointmentFields("x", at(9, 30), at(10, 30), "UTC"))

    assert refused.value.conflicts == [
        {
            "start": clock.offset(at(9)),
            "end": clock.offset(at(10)),
            "source": "calendar",
            "calendar": "Team",
            "event": "Weekly sync",
        }
    ]
    assert "Team: Weekly sync" in refused.value.detail
    assert graph.appointments.between(ALICE, None, None) == []
    graph.appointments.create(ALICE, AppointmentFields("y", at(10), at(11), "UTC"))


def test_a_crm_booking_blocks_another_until_it_is_cancelled(graph: FakeGraph) -> None:
    first = graph.appointments.create(ALICE, AppointmentFields("first", at(9), at(10), "UTC"))
    with pytest.raises(BookingConflict):
        graph.appointments.create(ALICE, AppointmentFields("second", at(9, 30), at(10, 30), "UTC"))
    graph.appointments.create(ALICE, AppointmentFields("back to back", at(10), at(11), "UTC"))
    graph.appointments.cancel(ALICE, first.appointment_id)
    graph.appointments.create(ALICE, AppointmentFields("second", at(9), at(10), "UTC"))
    assert [(b.start, b.source) for b in graph.availability.busy(ALICE, at(8), at(12))] == [
        (at(9), "crm"),
        (at(10), "crm"),
    ]
