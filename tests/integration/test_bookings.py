"""F5: no double bookings — overlaps are refused with the conflicting interval, and of
concurrent bookings of one slot exactly one succeeds (DynamoDB transactions, not luck)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import Principal
from crmsync.errors import BookingConflict
from crmsync.logic.appointments import Appointments
from tests.support import clock

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
    appointments.create(ALICE, slot(NINE))
    with pytest.raises(BookingConflict) as refused:
        appointments.create(ALICE, slot(NINE + timedelta(minutes=30)))
    assert refused.value.conflicts == [
        {"start": clock.offset(NINE), "end": clock.offset(NINE + timedelta(hours=1)), "source": "crm"}
    ]
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
