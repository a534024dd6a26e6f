"""F3/F6/F7 two-way: what happens in the linked Google calendar reaches the CRM — new
events become appointments, moves move them, deletions cancel or unlink them — and our own
writes coming back change nothing (no echo loops)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal.appointments import AppointmentFields
from crmsync.dal.calendars import CalendarStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import CalendarRef, ExternalDeletion, Principal, SyncDirection, SyncPreferences
from crmsync.guard import DeletionThreshold
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from crmsync.messaging.messages import CalendarSyncRequest
from crmsync.sync.calendar_sync import CalendarSync
from tests.fakes.world import RecordingQueue
from tests.integration.test_connected_calendars import connect
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
START = (datetime.now(UTC) + timedelta(days=5)).replace(hour=9, minute=0, second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class World:
    """One CRM user with a linked Google calendar; the test plays Google's user and the worker."""

    def __init__(
        self,
        stack,
        service_env,
        integrations: Integrations,
        calendars: Calendars,
        appointments: Appointments,
        recorded: RecordingQueue,
        principal: Principal = ALICE,
        threshold: DeletionThreshold | None = None,
        events: Any = None,
        counter: Any = None,
    ) -> None:
        self.principal = principal
        self.base = stack.google.base_url
        self.email = f"twoway-{uuid.uuid4().hex[:10]}@example.com"
        self.google = GoogleCalendarUser(self.base, self.email)
        self.appointments = appointments
        self.recorded = recorded
        self.connection = connect(integrations, self.principal, self.email, typed=True)
        calendars.refresh(self.principal, self.connection)
        self.settings = CalendarSettingsService(
            connections=ConnectionStore(),
            calendars=CalendarStore(),
            settings=SettingsStore(),
            on_linked=appointments.enqueue_pending,
        )
        self.settings.link(self.principal, CalendarRef(self.connection, self.email))
        settings = Settings.from_env(service_env)
        connectors = Graph(settings).connectors
        self.sync = CalendarSync(
            connections=ConnectionStore(),
            settings=SettingsStore(),
            mirror=MirrorStore(),
            calendars=connectors,
            inbound=appointments.absorb,
            threshold=threshold,
            events=events,
            counter=counter,
            linked=appointments.linked_event_ids,
            keep=appointments.keep,
        )
        #: The user's answers to held deletions; the sync they request lands in ``recorded``.
        self.calendars = Calendars(
            connections=ConnectionStore(),
            calendars=CalendarStore(),
            access=connectors,
            queue=recorded,
        )
        self.sync.run(self.principal, self.connection, self.email)

    def deliver(self, message: Any) -> None:
        """The worker, for one queue message."""
        if isinstance(message, CalendarSyncRequest):
            self.sync.run(Principal(message.tenant_id, message.user_id), message.connection_id, message.calendar_id)
        else:
            self.appointments.push(message)

    def work(self) -> None:
        """The worker: the queued messages, then a sync of the calendar (as a notification causes)."""
        for message in self.recorded.take():
            self.deliver(message)
        self.sync.run(self.principal, self.connection, self.email)

    def listed(self) -> list[Any]:
        return self.appointments.between(self.principal, None, None)


@pytest.fixture
def world(
    stack,
    service_env,
    integrations,
    calendars,
    make_appointments: Callable[..., Appointments],
    recorded: RecordingQueue,
) -> World:
    return World(stack, service_env, integrations, calendars, make_appointments(), recorded)


def test_an_event_created_in_the_linked_calendar_becomes_an_appointment_once(world: World) -> None:
    event = world.google.add(
        summary="Lunch with Ada",
        start={"dateTime": iso(START), "timeZone": "Europe/Rome"},
        end={"dateTime": iso(START + timedelta(hours=1)), "timeZone": "Europe/Rome"},
    )
    world.work()
    world.work()  # a duplicated notification: nothing more

    (appointment,) = world.listed()
    assert (appointment.title, appointment.start, appointment.time_zone) == ("Lunch with Ada", START, "Europe/Rome")
    assert appointment.link is not None
    assert appointment.link.event_id == event["id"]
    assert appointment.sync_state == "synced"  # nothing to push back
    assert world.recorded.take() == []


def test_our_own_pushed_event_coming_back_changes_nothing(world: World) -> None:
    created = world.appointments.create(ALICE, AppointmentFields("Demo", START, START + timedelta(hours=1), "UTC"))
    world.work()  # push, then the sync sees our event
    world.work()
    (appointment,) = world.listed()
    assert (appointment.appointment_id, appointment.revision, appointment.sync_state) == (
        created.appointment_id,
        1,
        "synced",
    )


def test_moving_the_event_in_google_moves_the_appointment_without_an_echo(world: World) -> None:
    created = world.appointments.create(ALICE, AppointmentFields("Demo", START, START + timedelta(hours=1), "UTC"))
    world.work()
    event_id = world.appointments.get(ALICE, created.appointment_id).link.event_id  # type: ignore[union-attr]
    world.google.patch(
        event_id,
        start={"dateTime": iso(START + timedelta(hours=3))},
        end={"dateTime": iso(START + timedelta(hours=4))},
    )
    world.work()
    moved = world.appointments.get(ALICE, created.appointment_id)
    assert moved.start == START + timedelta(hours=3)
    assert moved.sync_state == "synced"
    assert world.recorded.take() == []  # nothing pushed back to Google


@pytest.mark.parametrize("policy", [ExternalDeletion.CANCEL, ExternalDeletion.UNLINK])
def test_deleting_the_event_in_google_follows_the_deletion_preference(world: World, policy: ExternalDeletion) -> None:
    world.settings.set_preferences(ALICE, SyncPreferences(SyncDirection.TWO_WAY, policy))
    created = world.appointments.create(ALICE, AppointmentFields("Demo", START, START + timedelta(hours=1), "UTC"))
    world.work()
    event_id = world.appointments.get(ALICE, created.appointment_id).link.event_id  # type: ignore[union-attr]
    world.google.delete(event_id)
    world.work()
    after = world.appointments.get(ALICE, created.appointment_id)
    assert after.link is None
    assert after.status.value == ("cancelled" if policy is ExternalDeletion.CANCEL else "confirmed")


def test_a_crm_change_still_being_pushed_wins_over_the_calendars_older_state(world: World) -> None:
    created = world.appointments.create(ALICE, AppointmentFields("Demo", START, START + timedelta(hours=1), "UTC"))
    world.work()
    world.appointments.change(
        ALICE,
        created.appointment_id,
        title="Demo (moved)",
        start=START + timedelta(hours=5),
        end=START + timedelta(hours=6),
    )
    world.sync.run(ALICE, world.connection, world.email)  # a sync before the push ran
    pending = world.appointments.get(ALICE, created.appointment_id)
    assert (pending.title, pending.start) == ("Demo (moved)", START + timedelta(hours=5))
    world.work()
    assert world.appointments.get(ALICE, created.appointment_id).sync_state == "synced"


def test_a_crm_change_made_after_google_deleted_the_event_wins_and_puts_the_event_back(world: World) -> None:
    """Google's user deletes the event; before any sync sees that, the CRM user moves the
    appointment. The CRM's pending change wins: the appointment stays and the event returns."""
    created = world.appointments.create(ALICE, AppointmentFields("Demo", START, START + timedelta(hours=1), "UTC"))
    world.work()
    event_id = world.appointments.get(ALICE, created.appointment_id).link.event_id  # type: ignore[union-attr]
    world.google.delete(event_id)
    world.appointments.change(
        ALICE, created.appointment_id, start=START + timedelta(hours=5), end=START + timedelta(hours=6)
    )
    world.work()
    world.work()
    kept = world.appointments.get(ALICE, created.appointment_id)
    assert (kept.status.value, kept.sync_state) == ("confirmed", "synced")
    assert kept.link is not None
    assert kept.link.event_id == event_id
    (event,) = world.google.events(cancelled=False)
    assert (event["id"], event["start"]["dateTime"]) == (event_id, iso(START + timedelta(hours=5)))


def test_crm_to_calendar_direction_imports_nothing(world: World) -> None:
    world.settings.set_preferences(ALICE, SyncPreferences(SyncDirection.CRM_TO_CALENDAR))
    world.google.add(
        summary="private",
        start={"dateTime": iso(START)},
        end={"dateTime": iso(START + timedelta(hours=1))},
    )
    world.work()
    assert world.listed() == []
