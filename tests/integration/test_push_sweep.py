"""The push sweep (issue 10): a push whose message never reached the queue is enqueued again
by the 5-minute sweep once it has been due for over 2 minutes, and then reaches Google; a
pushed appointment leaves no mark, and one with nowhere to go is not enqueued forever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from crmsync.domain import CalendarRef
from crmsync.logic.appointments import Appointments
from crmsync.messaging.messages import AppointmentPush
from crmsync.models.appointment import APPOINTMENT_SK_PREFIX, AppointmentItem, push_due_at_key, push_due_shard
from crmsync.models.keys import user_pk
from tests.fakes.world import RecordingQueue
from tests.integration.test_appointments_push import ALICE, Google, fields, settings_service, work
from tests.integration.test_connected_calendars import connect
from tests.support import clock

pytestmark = pytest.mark.integration

LATER = timedelta(minutes=2, seconds=1)


class RefusesFirstSend:
    """The sync queue refusing the first message (SQS throttling, an outage), then working."""

    def __init__(self, inner: RecordingQueue) -> None:
        self.inner = inner
        self.refused: list[Any] = []

    def send(self, message: Any) -> None:
        if not self.refused:
            self.refused.append(message)
            raise ConnectionError("the queue refused the message")
        self.inner.send(message)


@pytest.fixture
def gmail(stack) -> Google:
    return Google(stack.google.base_url)


@pytest.fixture
def team(integrations, calendars, gmail: Google) -> CalendarRef:
    connection_id = connect(integrations, ALICE, gmail.email, typed=True)
    gmail.add_calendar("Team")
    listed = calendars.refresh(ALICE, connection_id) or []
    return CalendarRef(connection_id, next(c for c in listed if c.name == "Team").calendar_id)


def link(service_env, appointments: Appointments, recorded: RecordingQueue, ref: CalendarRef) -> None:
    settings_service(service_env, appointments).link(ALICE, ref)
    recorded.take()


def mark(appointment_id: str) -> tuple[str | None, str | None]:
    item = AppointmentItem.get(user_pk(ALICE.tenant_id, ALICE.user_id), APPOINTMENT_SK_PREFIX + appointment_id)
    return item.push_due, item.push_due_at


def test_a_push_the_queue_refused_reaches_google_after_the_sweep(
    team: CalendarRef, make_appointments, recorded: RecordingQueue, gmail: Google, service_env
) -> None:
    queue = RefusesFirstSend(recorded)
    appointments = make_appointments(queue=queue)
    link(service_env, make_appointments(), recorded, team)

    created = appointments.create(ALICE, fields("Stranded"))
    assert [m.appointment_id for m in queue.refused] == [created.appointment_id]  # stored, not enqueued
    assert recorded.sent == []
    assert appointments.get(ALICE, created.appointment_id).sync_state == "pending"

    now = clock.now()
    assert appointments.sweep_pushes(now).enqueued == 0  # not due for 2 minutes yet
    swept = appointments.sweep_pushes(now + LATER)
    assert (swept.enqueued, swept.cleaned, swept.failed) == (1, 0, 0)
    (message,) = recorded.sent
    assert isinstance(message, AppointmentPush)
    assert (message.appointment_id, message.revision) == (created.appointment_id, 1)
    assert message.occasion.startswith("sweep@")

    assert work(appointments, recorded) == ["pushed"]
    (event,) = gmail.events(team.calendar_id, cancelled=False)
    assert event["summary"] == "Stranded"
    assert appointments.get(ALICE, created.appointment_id).sync_state == "synced"
    assert mark(created.appointment_id) == (None, None)
    assert appointments.sweep_pushes(now + 2 * LATER).enqueued == 0


def test_a_pushed_appointment_leaves_no_mark(
    team: CalendarRef, make_appointments, recorded: RecordingQueue, service_env
) -> None:
    appointments = make_appointments()
    link(service_env, appointments, recorded, team)
    created = appointments.create(ALICE, fields())
    assert mark(created.appointment_id)[0] == push_due_shard(created.appointment_id)  # due until pushed
    assert work(appointments, recorded) == ["pushed"]
    assert mark(created.appointment_id) == (None, None)

    moved = appointments.change(ALICE, created.appointment_id, title="Moved")
    assert mark(moved.appointment_id)[0] is not None  # the new revision is due again
    assert work(appointments, recorded) == ["pushed"]
    assert mark(moved.appointment_id) == (None, None)
    assert appointments.sweep_pushes(clock.now() + LATER).enqueued == 0


def test_an_appointment_with_no_linked_calendar_is_not_enqueued_again_and_again(
    make_appointments, recorded: RecordingQueue
) -> None:
    appointments = make_appointments()
    created = appointments.create(ALICE, fields())
    assert work(appointments, recorded) == ["not_linked"]
    assert mark(created.appointment_id) == (None, None)
    for later in (LATER, timedelta(hours=1), timedelta(days=1)):
        assert appointments.sweep_pushes(clock.now() + later).enqueued == 0
    assert recorded.sent == []
    assert appointments.get(ALICE, created.appointment_id).sync_state == "pending"  # linking pushes it


def test_a_mark_that_outlived_its_push_is_cleaned_not_pushed(
    team: CalendarRef, make_appointments, recorded: RecordingQueue, service_env
) -> None:
    appointments = make_appointments()
    link(service_env, appointments, recorded, team)
    created = appointments.create(ALICE, fields())
    assert work(appointments, recorded) == ["pushed"]
    # As if the function had stopped between recording the push and removing the mark.
    item = AppointmentItem.get(user_pk(ALICE.tenant_id, ALICE.user_id), APPOINTMENT_SK_PREFIX + created.appointment_id)
    item.update(
        actions=[
            AppointmentItem.push_due.set(push_due_shard(created.appointment_id)),
            AppointmentItem.push_due_at.set(push_due_at_key(clock.now())),
        ]
    )
    swept = appointments.sweep_pushes(clock.now() + LATER)
    assert (swept.enqueued, swept.cleaned) == (0, 1)
    assert recorded.sent == []
    assert mark(created.appointment_id) == (None, None)
