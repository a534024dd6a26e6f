"""F7 lifecycle of synced calendars: a calendar starts syncing as soon as it is chosen, stops
(channel stopped, mirror forgotten) as soon as it is dropped; deletions missed while the
cursor was invalid still reach the CRM; domain events tell the rest of the CRM what changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal.appointments import AppointmentFields
from crmsync.dal.calendars import CalendarStore
from crmsync.dal.channels import ChannelStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import CalendarRef, ExternalDeletion, Principal, SyncDirection, SyncPreferences
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from crmsync.sync.calendar_sync import CalendarSync
from crmsync.sync.channels import Channels
from crmsync.sync.planner import SyncPlanner
from tests.fakes.world import RecordingQueue
from tests.integration.test_connected_calendars import connect
from tests.support.events import RecordingPublisher
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
SOON = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class World:
    """A CRM user with one connected Google account; the test plays the queue worker."""

    def __init__(
        self, stack, service_env, integrations: Integrations, calendars: Calendars, make_appts, recorded: RecordingQueue
    ) -> None:
        self.user = GoogleCalendarUser(stack.google.base_url)
        self.recorded = recorded  # the queue the appointments send their pushes to
        self.events = RecordingPublisher()
        self.appointments: Appointments = make_appts()
        self.appointments._events = self.events  # the production publisher is EventBridge
        self.connection = connect(integrations, ALICE, self.user.email, typed=True)
        calendars.refresh(ALICE, self.connection)
        self.planner = SyncPlanner(
            settings=SettingsStore(), calendars=CalendarStore(), mirror=MirrorStore(), queue=self.recorded
        )
        self.settings = CalendarSettingsService(
            connections=ConnectionStore(),
            calendars=CalendarStore(),
            settings=SettingsStore(),
            on_linked=self.appointments.enqueue_pending,
            on_changed=lambda p: self.planner.enqueue(p, None, reason="settings", occasion=str(datetime.now(UTC))),
        )
        settings = Settings.from_env(service_env)
        self.sync = CalendarSync(
            connections=ConnectionStore(),
            settings=SettingsStore(),
            mirror=MirrorStore(),
            calendars=Graph(settings).connectors,
            channels=Channels(store=ChannelStore(), mirror=MirrorStore(), webhook_url=settings.calendar_webhook_url),
            inbound=self.appointments.absorb,
            events=self.events,
        )

    def work(self) -> list[str]:
        """Run everything queued (pushes, then syncs), until nothing is left; the outcomes."""
        outcomes: list[str] = []
        while messages := self.recorded.take():
            for message in messages:
                if message.kind == "appointment.push":
                    outcomes.append(self.appointments.push(message))
                    continue
                result = self.sync.run(ALICE, message.connection_id, message.calendar_id)
                assert result is not None
                outcomes.append("retired" if result.retired else ("full" if result.full else "incremental"))
        return outcomes

    def cursor(self) -> Any:
        return MirrorStore().cursor(ALICE, self.connection, self.user.email)


@pytest.fixture
def world(
    stack, service_env, integrations, calendars, make_appointments: Callable[..., Appointments], recorded
) -> World:
    return World(stack, service_env, integrations, calendars, make_appointments, recorded)


def test_a_chosen_conflict_calendar_syncs_at_once_and_a_dropped_one_is_retired(world: World) -> None:
    world.user.add(summary="busy", start={"dateTime": iso(SOON)}, end={"dateTime": iso(SOON + timedelta(hours=1))})

    world.settings.set_conflict_calendars(ALICE, [CalendarRef(world.connection, world.user.email)])
    assert world.work() == ["full"]  # no need to wait for the next health check
    channel_id = world.cursor().channel_id
    assert [c["id"] for c in world.user.channels()] == [channel_id]
    assert len(MirrorStore().events(ALICE, world.connection, world.user.email)) == 1

    world.settings.set_conflict_calendars(ALICE, [])
    assert world.work() == ["retired"]
    assert world.user.channels() == []  # stopped at Google, not left to lapse in 7 days
    assert ChannelStore().get(channel_id) is None
    assert MirrorStore().events(ALICE, world.connection, world.user.email) == []
    assert world.cursor().version is None
    assert world.work() == []


def test_a_deletion_missed_while_the_cursor_was_invalid_still_cancels_the_appointment(world: World) -> None:
    world.settings.link(ALICE, CalendarRef(world.connection, world.user.email))
    world.settings.set_preferences(ALICE, SyncPreferences(SyncDirection.TWO_WAY, ExternalDeletion.CANCEL))
    world.work()
    booked = world.appointments.create(ALICE, AppointmentFields("Demo", SOON, SOON + timedelta(hours=1), "UTC"))
    world.work()
    event_id = world.appointments.get(ALICE, booked.appointment_id).link.event_id  # type: ignore[union-attr]

    world.user.delete(event_id)
    # Before the notification's sync runs, Google drops its tombstones and our cursor with them:
    # the full sync does not list the event at all, not even as cancelled.
    world.user.expire_sync_tokens(purge_deleted=True)
    world.planner.enqueue(ALICE, world.connection, reason="push", occasion="after-purge")
    assert world.work() == ["full"]

    assert world.appointments.get(ALICE, booked.appointment_id).status.value == "cancelled"


def test_an_event_only_gone_from_the_window_does_not_cancel_its_appointment(world: World) -> None:
    """A full sync lists events from ``window_days_back`` on; an older one missing from the
    list has not been deleted."""
    world.settings.link(ALICE, CalendarRef(world.connection, world.user.email))
    world.settings.set_preferences(ALICE, SyncPreferences(SyncDirection.TWO_WAY, window_days_back=30))
    world.work()
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
    booked = world.appointments.create(ALICE, AppointmentFields("Long ago", old, old + timedelta(hours=1), "UTC"))
    world.work()
    assert world.appointments.get(ALICE, booked.appointment_id).link is not None

    world.user.expire_sync_tokens()
    world.planner.enqueue(ALICE, world.connection, reason="push", occasion="after-expiry")
    assert world.work() == ["full"]

    kept = world.appointments.get(ALICE, booked.appointment_id)
    assert (kept.status.value, kept.link is not None) == ("confirmed", True)


def test_domain_events_name_what_changed_and_who_changed_it(world: World) -> None:
    world.settings.link(ALICE, CalendarRef(world.connection, world.user.email))
    world.work()
    world.events.take()

    booked = world.appointments.create(ALICE, AppointmentFields("Demo", SOON, SOON + timedelta(hours=1), "UTC"))
    world.appointments.change(ALICE, booked.appointment_id, title="Demo 2")
    assert world.events.take() == [("AppointmentCreated", "crm"), ("AppointmentChanged", "crm")]
    world.work()
    assert world.events.take() == []  # pushing it is not a change of the appointment
    world.planner.enqueue(ALICE, world.connection, reason="push", occasion="pushed")
    world.work()
    assert world.events.take() == [("ExternalBusyChanged", "provider")]  # our own event, busy in a conflict calendar

    event_id = world.appointments.get(ALICE, booked.appointment_id).link.event_id  # type: ignore[union-attr]
    later = SOON + timedelta(hours=3)
    world.user.patch(event_id, start={"dateTime": iso(later)}, end={"dateTime": iso(later + timedelta(hours=1))})
    world.planner.enqueue(ALICE, world.connection, reason="push", occasion="moved")
    world.work()
    assert world.events.take() == [("AppointmentChanged", "provider"), ("ExternalBusyChanged", "provider")]

    world.user.delete(event_id)
    world.planner.enqueue(ALICE, world.connection, reason="push", occasion="deleted")
    world.work()
    assert world.events.take() == [("AppointmentCancelled", "provider"), ("ExternalBusyChanged", "provider")]

    world.planner.enqueue(ALICE, world.connection, reason="push", occasion="nothing new")
    world.work()
    assert world.events.take() == []  # a sync that changes nothing says nothing
