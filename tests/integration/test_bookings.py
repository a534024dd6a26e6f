"""F5: no double bookings — overlaps are refused with the conflicting interval, and of
concurrent bookings of one slot exactly one succeeds (DynamoDB transactions, not luck)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import CalendarRef, Principal
from crmsync.errors import BookingConflict
from crmsync.logic.appointments import Appointments
from crmsync.logic.availability import Availability
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from tests.fakes.world import RecordingQueue
from tests.integration.test_appointments_push import settings_service
from tests.integration.test_connected_calendars import connect
from tests.support import clock
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
BOB = Principal("tenant-a", "bob")
NINE = clock.next_weekday(clock.TUESDAY, 9)


def slot(start: datetime, minutes: int = 60, title: str = "x") -> AppointmentFields:
    return AppointmentFields(title=title, start=start, end=start + timedelta(minutes=minutes), time_zone="UTC")


@pytest.fixture
def appointments(make_appointments: Callable[..., Appointments]) -> Appointments:
    return make_appointments()


def test_an_overlapping_booking_is_refused_with_the_conflicting_interval(appointments: Appointments) -> None:
    appointments.create(ALICE, slot(NINE, title="Weekly sync"))
    with pytest.raises(BookingConflict) as refused:
        appointments.create(ALICE, slot(NINE + timedelta(minutes=30)))
    assert refused.value.conflicts == [
        {
            "start": clock.offset(NINE),
            "end": clock.offset(NINE + timedelta(hours=1)),
            "source": "crm",
            "calendar": None,
            "event": "Weekly sync",
        }
    ]
    assert refused.value.detail == "The time is already booked: Weekly sync (09:00–10:00)."
    assert len(appointments.between(ALICE, None, None)) == 1


def test_back_to_back_bookings_do_not_overlap(appointments: Appointments) -> None:
    appointments.create(ALICE, slot(NINE))
    appointments.create(ALICE, slot(NINE + timedelta(hours=1)))
    appointments.create(ALICE, slot(NINE - timedelta(hours=1)))
    assert len(appointments.between(ALICE, None, None)) == 3


def test_a_long_appointment_that_began_days_earlier_still_blocks(appointments: Appointments) -> None:
    """The overlap check reads by start time (an index), so it must look back far enough."""
    retreat = appointments.create(ALICE, slot(NINE - timedelta(days=13), minutes=13 * 24 * 60 + 30))
    with pytest.raises(BookingConflict):
        appointments.create(ALICE, slot(NINE))
    assert [a.appointment_id for a in appointments.between(ALICE, NINE, NINE + timedelta(hours=1))] == [
        retreat.appointment_id
    ]
    assert appointments.between(ALICE, NINE + timedelta(hours=1), NINE + timedelta(hours=2)) == []


def test_a_cancelled_appointment_frees_its_time(appointments: Appointments) -> None:
    first = appointments.create(ALICE, slot(NINE))
    appointments.cancel(ALICE, first.appointment_id)
    assert appointments.create(ALICE, slot(NINE)).status.value == "confirmed"


def test_moving_into_busy_time_is_refused_and_leaves_the_appointment_as_it_was(appointments: Appointments) -> None:
    appointments.create(ALICE, slot(NINE))
    later = appointments.create(ALICE, slot(NINE + timedelta(hours=2)))
    with pytest.raises(BookingConflict):
        appointments.change(ALICE, later.appointment_id, start=NINE, end=NINE + timedelta(minutes=45))
    unchanged = appointments.get(ALICE, later.appointment_id)
    assert (unchanged.start, unchanged.revision) == (later.start, later.revision)
    # Moving within its own time is not a conflict with itself.
    moved = appointments.change(
        ALICE, later.appointment_id, start=later.start + timedelta(minutes=15), end=later.end + timedelta(minutes=15)
    )
    assert moved.revision == 2


def test_other_users_calendars_are_independent(appointments: Appointments) -> None:
    appointments.create(ALICE, slot(NINE))
    appointments.create(BOB, slot(NINE))


def test_concurrent_bookings_of_one_slot_exactly_one_succeeds(appointments: Appointments) -> None:
    contenders = 8
    barrier = threading.Barrier(contenders)
    outcomes: list[str] = []
    lock = threading.Lock()

    def book(n: int) -> None:
        barrier.wait()
        try:
            appointments.create(ALICE, slot(NINE + timedelta(minutes=n), title=f"contender {n}"))
            outcome = "booked"
        except BookingConflict:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=book, args=(n,)) for n in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["booked"] + ["refused"] * (contenders - 1)
    assert len(appointments.between(ALICE, None, None)) == 1


# ---------------------------------------------------------------- with a Google calendar


@pytest.fixture
def google(stack) -> GoogleCalendarUser:
    return GoogleCalendarUser(stack.google.base_url, f"book-{uuid.uuid4().hex[:10]}@example.com")


@pytest.fixture
def primary(integrations: Integrations, calendars: Calendars, google: GoogleCalendarUser) -> CalendarRef:
    """Alice's connected Google account; its primary calendar is a conflict calendar."""
    connection_id = connect(integrations, ALICE, google.email, typed=True)
    listed = calendars.refresh(ALICE, connection_id) or []
    calendar = next(c for c in listed if c.primary)
    assert calendar.conflict
    return CalendarRef(connection_id, calendar.calendar_id)


@pytest.fixture
def guarded(make_appointments: Callable[..., Appointments], availability: Availability) -> Appointments:
    """Appointments that also refuse the busy time of conflict calendars, as in production."""
    return make_appointments(external_busy=availability.external_busy)


def timed(start: datetime, end: datetime, summary: str = "busy") -> dict[str, Any]:
    return {"summary": summary, "start": {"dateTime": clock.z(start)}, "end": {"dateTime": clock.z(end)}}


def test_events_without_duration_block_no_slot_and_no_booking(
    primary: CalendarRef, google: GoogleCalendarUser, calendar_sync, availability, guarded: Appointments
) -> None:
    """An iCalendar DTSTART without DTEND arrives as start = end: a moment, not busy time."""
    google.add(**timed(NINE + timedelta(minutes=30), NINE + timedelta(minutes=30), "reminder"))
    day = NINE.date().isoformat()
    google.add(summary="note", start={"date": day}, end={"date": day})
    calendar_sync.run(ALICE, primary.connection_id, primary.calendar_id)

    slots, busy = availability.free_slots(
        ALICE, NINE, NINE + timedelta(hours=2), timedelta(hours=1), timedelta(hours=1)
    )

    assert busy == []
    assert slots == [(NINE, NINE + timedelta(hours=1)), (NINE + timedelta(hours=1), NINE + timedelta(hours=2))]
    assert guarded.create(ALICE, slot(NINE)).status.value == "confirmed"


def test_an_event_without_duration_in_the_linked_calendar_becomes_no_appointment(
    primary: CalendarRef,
    google: GoogleCalendarUser,
    calendar_sync,
    availability,
    make_appointments: Callable[..., Appointments],
    service_env: dict[str, str],
) -> None:
    settings_service(service_env, make_appointments()).link(ALICE, primary)
    google.add(**timed(NINE + timedelta(minutes=30), NINE + timedelta(minutes=30), "reminder"))
    calendar_sync.run(ALICE, primary.connection_id, primary.calendar_id)

    assert make_appointments().between(ALICE, None, None) == []
    _, busy = availability.free_slots(ALICE, NINE, NINE + timedelta(hours=2), timedelta(hours=1), timedelta(hours=1))
    assert busy == []


def test_an_appointment_in_the_linked_calendar_is_busy_once(
    primary: CalendarRef,
    google: GoogleCalendarUser,
    calendar_sync,
    availability,
    guarded: Appointments,
    recorded: RecordingQueue,
    service_env: dict[str, str],
) -> None:
    """Whether the CRM pushed the event or the appointment was made from it, the appointment
    is the busy time, and its event in the (conflict) linked calendar is not counted again."""
    settings_service(service_env, guarded).link(ALICE, primary)
    pushed = guarded.create(ALICE, slot(NINE, title="pushed"))
    assert [guarded.push(m) for m in recorded.take()] == ["pushed"]
    google.add(**timed(NINE + timedelta(hours=2), NINE + timedelta(hours=3), "made in Google"))
    calendar_sync.run(ALICE, primary.connection_id, primary.calendar_id)
    (imported,) = [a for a in guarded.between(ALICE, None, None) if a.appointment_id != pushed.appointment_id]

    _, busy = availability.free_slots(ALICE, NINE, NINE + timedelta(hours=4), timedelta(hours=1), timedelta(hours=1))

    assert [(b.start, b.end, b.source) for b in busy] == [
        (NINE, NINE + timedelta(hours=1), "crm"),
        (NINE + timedelta(hours=2), NINE + timedelta(hours=3), "crm"),
    ]
    # Nor does its own event refuse moving it within its time.
    moved = guarded.change(
        ALICE, imported.appointment_id, start=imported.start + timedelta(minutes=15), end=imported.end
    )
    assert moved.start == NINE + timedelta(hours=2, minutes=15)


@pytest.mark.parametrize("event_type", ["outOfOffice", "focusTime"])
def test_special_google_events_block_time_but_never_become_appointments(
    event_type: str,
    primary: CalendarRef,
    google: GoogleCalendarUser,
    calendar_sync,
    availability,
    make_appointments: Callable[..., Appointments],
    service_env: dict[str, str],
) -> None:
    """An imported out-of-office event would be pushed back on its first CRM edit without its
    type, which Google refuses (the type is immutable): such events stay Google's."""
    settings_service(service_env, make_appointments()).link(ALICE, primary)
    google.add(**timed(NINE, NINE + timedelta(hours=1), "away"), eventType=event_type)
    calendar_sync.run(ALICE, primary.connection_id, primary.calendar_id)

    assert make_appointments().between(ALICE, None, None) == []
    _, busy = availability.free_slots(ALICE, NINE, NINE + timedelta(hours=2), timedelta(hours=1), timedelta(hours=1))
    assert [(b.start, b.end, b.source) for b in busy] == [(NINE, NINE + timedelta(hours=1), "calendar")]


def test_a_refused_booking_names_the_users_calendar_and_event_it_clashes_with(
    primary: CalendarRef,
    google: GoogleCalendarUser,
    calendars: Calendars,
    calendar_sync,
    guarded: Appointments,
    make_appointments: Callable[..., Appointments],
    service_env: dict[str, str],
) -> None:
    """The user's own calendars: the 409 says which calendar and which event take the time."""
    team = google.add_calendar("Team")
    calendars.refresh(ALICE, primary.connection_id)
    settings_service(service_env, make_appointments()).set_conflict_calendars(
        ALICE, [primary, CalendarRef(primary.connection_id, team["id"])]
    )
    google.add(team["id"], **timed(NINE, NINE + timedelta(hours=1), "Weekly sync"))
    google.add(**timed(NINE + timedelta(hours=2), NINE + timedelta(hours=3), ""))  # no title
    calendar_sync.run(ALICE, primary.connection_id, team["id"])
    calendar_sync.run(ALICE, primary.connection_id, primary.calendar_id)

    with pytest.raises(BookingConflict) as refused:
        guarded.create(ALICE, slot(NINE + timedelta(minutes=30), minutes=120))

    assert refused.value.conflicts == [
        {
            "start": clock.offset(NINE),
            "end": clock.offset(NINE + timedelta(hours=1)),
            "source": "calendar",
            "calendar": "Team",
            "event": "Weekly sync",
        },
        {
            "start": clock.offset(NINE + timedelta(hours=2)),
            "end": clock.offset(NINE + timedelta(hours=3)),
            "source": "calendar",
            "calendar": google.email,
            "event": None,
        },
    ]
    assert refused.value.detail == (
        f"The time is busy in Team: Weekly sync (09:00–10:00); {google.email} (11:00–12:00)."
    )
    assert guarded.between(ALICE, None, None) == []
