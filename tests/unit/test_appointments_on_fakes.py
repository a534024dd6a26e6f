"""Appointments (F3, F6) on the production object graph over fakes (``tests/fakes/world.py``):
pushing CRM appointments to the linked calendar and absorbing the calendar's changes. Fast
twins of tests/integration/test_appointments_push.py and test_two_way_sync.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import (
    AppointmentStatus,
    CalendarRef,
    ConnectionStatus,
    ExternalDeletion,
    Principal,
    SyncDirection,
    SyncPreferences,
    event_id_for,
)
from crmsync.logic.appointments import PUSH_GRACE, Appointments
from crmsync.messaging.messages import AppointmentPush, CalendarSyncRequest
from crmsync.ports.calendar import CreateIdempotency, EventDraft, WrittenEvent
from crmsync.ports.errors import AuthRevoked, ProviderError, RateLimited
from tests.fakes.calendar import FakeCalendar
from tests.fakes.world import FakeGraph
from tests.support import clock

EMAIL = "ada@example.com"
TEAM = "team@group.example.com"
#: A weekday a few days ahead, from the clock the test runs under.
START = clock.next_weekday(clock.WEDNESDAY, 10)
HOUR = timedelta(hours=1)


def fields(title: str = "Intro call", start: datetime = START, hours: int = 1) -> AppointmentFields:
    return AppointmentFields(title, start, start + timedelta(hours=hours), "UTC")


class World:
    """One CRM user whose account's primary calendar is linked; the test plays the calendar
    app's user (``self.cal``) and the queue worker (:meth:`work`)."""

    def __init__(self, *, link: bool = True, graph: FakeGraph | None = None) -> None:
        self.graph = graph or FakeGraph()
        self.principal = Principal("tenant-1", f"user-{uuid.uuid4().hex[:8]}")
        self.connection = self.graph.connect(self.principal, EMAIL)
        self.cal: FakeCalendar = self.graph.calendar_of(self.connection)
        self.cal.add_calendar(TEAM, name="Team", access_role="writer")
        self.graph.calendars.refresh(self.principal, self.connection)
        self.graph.queue.take()  # the connection check: not what these tests are about
        self.appointments: Appointments = self.graph.appointments
        if link:
            self.link(EMAIL)

    def link(self, calendar_id: str) -> None:
        self.graph.calendar_settings.link(self.principal, CalendarRef(self.connection, calendar_id))
        self.work()

    def prefer(self, direction: SyncDirection, deletion: ExternalDeletion = ExternalDeletion.CANCEL) -> None:
        self.graph.calendar_settings.set_preferences(self.principal, SyncPreferences(direction, deletion))

    def deliver(self, message: Any, appointments: Appointments | None = None) -> str:
        """The worker, for one queue message."""
        if isinstance(message, AppointmentPush):
            return (appointments or self.appointments).push(message)
        if isinstance(message, CalendarSyncRequest):
            principal = Principal(message.tenant_id, message.user_id)
            outcome = self.graph.calendar_sync.run(principal, message.connection_id, message.calendar_id)
            return "synced" if outcome else "not_synced"
        return "ignored"

    def pushes(self) -> list[str]:
        """Deliver what is queued; the outcomes of the pushes."""
        return [self.deliver(m) for m in self.graph.queue.take() if isinstance(m, AppointmentPush)]

    def work(self) -> list[str]:
        """What is queued, then a sync of the linked calendar (as its notification causes)."""
        outcomes = [self.deliver(m) for m in self.graph.queue.take()]
        self.sync()
        return outcomes

    def sync(self, calendar_id: str = EMAIL) -> None:
        self.graph.calendar_sync.run(self.principal, self.connection, calendar_id)

    def get(self, appointment_id: str) -> Any:
        return self.appointments.get(self.principal, appointment_id)

    def listed(self) -> list[Any]:
        return self.appointments.between(self.principal, None, None)

    def create(self, **kwargs: Any) -> str:
        return self.appointments.create(self.principal, fields(**kwargs)).appointment_id

    def live(self, calendar_id: str = EMAIL) -> list[Any]:
        return self.cal.events(calendar_id)


@pytest.fixture
def world() -> World:
    return World()


# ====================================================================== CRM → calendar


def test_a_new_appointment_is_pushed_as_one_event_carrying_our_marker(world: World) -> None:
    created = world.create()
    assert world.get(created).sync_state == "pending"

    assert world.pushes() == ["pushed"]

    (event,) = world.live()
    assert (event.event_id, event.crm_appointment_id) == (event_id_for(created), created)
    assert (event.summary, event.start, event.end) == ("Intro call", START, START + HOUR)
    assert world.cal.marker(EMAIL, event.event_id) == (created, world.principal.tenant_id, 1)
    after = world.get(created)
    assert (after.sync_state, after.link.event_id) == ("synced", event.event_id)


def test_an_appointment_waits_for_a_linked_calendar_then_is_pushed() -> None:
    world = World(link=False)
    created = world.create()
    assert world.pushes() == ["not_linked"]
    assert world.live() == []

    world.link(EMAIL)  # linking brings it every appointment of the window

    (event,) = world.live()
    assert event.crm_appointment_id == created
    assert world.get(created).sync_state == "synced"


def test_changing_an_appointment_updates_its_event(world: World) -> None:
    created = world.create()
    world.pushes()
    world.appointments.change(world.principal, created, title="Moved", start=START + 2 * HOUR, end=START + 3 * HOUR)

    assert world.pushes() == ["pushed"]

    (event,) = world.live()
    assert (event.event_id, event.summary, event.start) == (event_id_for(created), "Moved", START + 2 * HOUR)
    assert world.cal.marker(EMAIL, event.event_id) == (created, world.principal.tenant_id, 2)
    assert world.cal.calls["update_event"] == 1


def test_cancelling_an_appointment_deletes_its_event(world: World) -> None:
    created = world.create()
    world.pushes()
    world.appointments.cancel(world.principal, created)

    assert world.pushes() == ["deleted"]

    assert world.live() == []
    after = world.get(created)
    assert (after.status, after.link, after.sync_state) == (AppointmentStatus.CANCELLED, None, "synced")


def test_a_duplicated_push_message_changes_nothing(world: World) -> None:
    world.create()
    messages = world.graph.queue.take()

    assert [world.appointments.push(m) for m in messages + messages] == ["pushed", "up_to_date"]

    assert len(world.live()) == 1
    assert world.cal.calls["create_event"] + world.cal.calls["update_event"] == 1


class LosesTheAnswerOnce:
    """The create reaches the calendar, but its answer is lost (a timeout)."""

    def __init__(self, port: FakeCalendar) -> None:
        self.port = port
        self.lost = False

    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        written = self.port.create_event(calendar_id, draft)
        if not self.lost:
            self.lost = True
            raise ProviderError("events.insert: timed out", retryable=True)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)


def _lossy_appointments(world: World) -> Appointments:
    """The graph's appointments, whose calendar port loses one create's answer."""
    graph = world.graph
    lossy = LosesTheAnswerOnce(world.cal)

    class Access:
        def calendar(self, stored: Any) -> Any:
            graph.connectors.calendar(stored)
            return lossy

        def reaches_calendars(self, connection: Any) -> bool:
            return graph.connectors.reaches_calendars(connection)

    return Appointments(
        store=graph.appointment_store,
        settings=graph.settings_store,
        connections=graph.connection_store,
        calendars=Access(),
        queue=graph.queue,  # type: ignore[arg-type]  # records instead of sending to SQS
    )


def test_a_create_whose_answer_was_lost_makes_one_event_on_retry(world: World) -> None:
    appointments = _lossy_appointments(world)
    created = appointments.create(world.principal, fields()).appointment_id
    (message,) = world.graph.queue.take()

    with pytest.raises(ProviderError) as lost:
        appointments.push(message)
    assert lost.value.retryable  # the queue delivers it again
    assert len(world.live()) == 1  # it did land
    assert appointments.push(message) == "pushed"

    assert [e.event_id for e in world.live()] == [event_id_for(created)]
    assert world.get(created).link.event_id == event_id_for(created)


def test_a_cancel_overtaking_the_retry_of_a_lost_create_deletes_the_event_that_landed(world: World) -> None:
    """The create landed, its answer was lost, and the user cancelled before the retry: the
    appointment was never linked, yet its event must not stay in the calendar."""
    appointments = _lossy_appointments(world)
    created = appointments.create(world.principal, fields()).appointment_id
    (message,) = world.graph.queue.take()
    with pytest.raises(ProviderError):
        appointments.push(message)
    assert len(world.live()) == 1

    appointments.cancel(world.principal, created)
    results = [appointments.push(m) for m in [message, *world.graph.queue.take()]]

    assert "deleted" in results
    assert world.live() == []
    assert world.get(created).link is None


class ProviderChosenIds(LosesTheAnswerOnce):
    """A ``TRANSACTION_ID`` adapter (Graph's strategy) over the fake: the provider chooses
    event ids, so ``created_event_id`` is None, and a create carrying a key it has seen
    answers with that key's event (the fake's create under the derived id does exactly that).
    Records every draft it is asked to create."""

    idempotency = CreateIdempotency.TRANSACTION_ID

    def __init__(self, port: FakeCalendar) -> None:
        super().__init__(port)
        self.drafts: list[EventDraft] = []

    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        self.drafts.append(draft)
        return super().create_event(calendar_id, draft)

    def created_event_id(self, key: str) -> str | None:
        return None


def _appointments_over(world: World, port: Any) -> Appointments:
    graph = world.graph

    class Access:
        def calendar(self, stored: Any) -> Any:
            graph.connectors.calendar(stored)
            return port

        def reaches_calendars(self, connection: Any) -> bool:
            return graph.connectors.reaches_calendars(connection)

    return Appointments(
        store=graph.appointment_store,
        settings=graph.settings_store,
        connections=graph.connection_store,
        calendars=Access(),
        queue=graph.queue,  # type: ignore[arg-type]  # records instead of sending to SQS
    )


def test_a_cancel_overtaking_a_lost_create_deletes_its_event_where_the_provider_chose_the_id(world: World) -> None:
    """Graph's case: the lost create's event cannot be named, so the cancel creates again with
    the same key (answered with the event that landed) and deletes it. Nothing stays."""
    port = ProviderChosenIds(world.cal)
    appointments = _appointments_over(world, port)
    created = appointments.create(world.principal, fields()).appointment_id
    (message,) = world.graph.queue.take()
    with pytest.raises(ProviderError):
        appointments.push(message)
    assert len(world.live()) == 1

    appointments.cancel(world.principal, created)
    results = [appointments.push(m) for m in [message, *world.graph.queue.take()]]

    assert "deleted" in results
    assert world.live() == []
    assert world.get(created).link is None


def test_a_cancel_before_any_push_leaves_nothing_and_invites_no_one_where_the_provider_chose_the_id(
    world: World,
) -> None:
    """No create had landed: the cancel's create-again makes an event and deletes it at once,
    without the attendees (no invitation, no cancellation mail goes out)."""
    port = ProviderChosenIds(world.cal)
    port.lost = True  # answers are not lost here
    appointments = _appointments_over(world, port)
    booked = AppointmentFields("Intro call", START, START + HOUR, "UTC", attendees=("guest@example.org",))
    created = appointments.create(world.principal, booked).appointment_id
    world.graph.queue.take()  # the create's push is delayed: the cancel overtakes it

    appointments.cancel(world.principal, created)
    results = [appointments.push(m) for m in world.graph.queue.take()]

    assert results == ["deleted"]
    assert world.live() == []
    assert [d.attendees for d in port.drafts] == [()]


def test_an_event_purged_from_the_calendar_while_a_change_is_pending_is_put_back(world: World) -> None:
    created = world.create()
    world.pushes()
    world.cal.user_delete(EMAIL, event_id_for(created))
    world.cal.invalidate_cursors(purge_deleted=True)  # gone for good: an update answers not found
    world.appointments.change(world.principal, created, start=START + 2 * HOUR, end=START + 3 * HOUR)

    assert world.pushes() == ["pushed"]

    (back,) = world.live()
    assert (back.start, back.crm_appointment_id) == (START + 2 * HOUR, created)
    assert back.event_id != event_id_for(created)  # the purged id cannot be used again
    after = world.get(created)
    assert (after.sync_state, after.link.event_id) == ("synced", back.event_id)


def test_a_revoked_grant_on_push_marks_the_connection_and_waits(world: World) -> None:
    created = world.create()
    world.cal.fail_next(AuthRevoked(), method="create_event")

    assert world.pushes() == ["waiting_for_reauth"]

    connection = world.graph.connection_store.get(world.principal, world.connection)
    assert connection.status is ConnectionStatus.NEEDS_REAUTH
    assert world.get(created).sync_state == "pending"  # kept for the sweep once reconnected
    assert world.live() == []
    # While the connection needs reauthorization, a push does not even try.
    again = AppointmentPush(
        tenant_id=world.principal.tenant_id, user_id=world.principal.user_id, appointment_id=created, revision=1
    )
    assert world.appointments.push(again) == "waiting_for_reauth"
    assert world.cal.calls["create_event"] == 1


def test_a_permanent_provider_error_is_recorded_on_the_appointment(world: World) -> None:
    created = world.create()
    world.cal.fail_next(ProviderError("events: writer access is required.", retryable=False, status=403))

    assert world.pushes() == ["failed"]

    after = world.get(created)
    assert (after.sync_state, after.push_error) == ("error", "events: writer access is required.")
    assert world.live() == []


def test_a_retryable_provider_error_raises_so_the_queue_retries(world: World) -> None:
    created = world.create()
    (message,) = world.graph.queue.take()
    world.cal.fail_next(RateLimited("slow down", retry_after=1.0), method="create_event")

    with pytest.raises(RateLimited):
        world.appointments.push(message)
    assert world.get(created).sync_state == "pending"

    assert world.appointments.push(message) == "pushed"
    assert len(world.live()) == 1


def test_linking_another_calendar_moves_the_event_there(world: World) -> None:
    created = world.create()
    world.pushes()

    world.link(TEAM)

    assert world.live(EMAIL) == []
    (moved,) = world.live(TEAM)
    assert moved.crm_appointment_id == created
    link = world.get(created).link
    assert (link.calendar_id, link.event_id) == (TEAM, moved.event_id)


def test_the_calendar_to_crm_direction_pushes_nothing(world: World) -> None:
    world.prefer(SyncDirection.CALENDAR_TO_CRM)
    created = world.create()

    assert world.pushes() == ["not_linked"]

    assert world.live() == []
    assert world.cal.calls["create_event"] == 0
    assert world.get(created).link is None


def test_the_push_sweep_sends_again_what_is_due(world: World) -> None:
    created = world.create()
    world.graph.queue.take()  # the message is lost
    now = datetime.now(UTC)

    assert world.appointments.sweep_pushes(now).enqueued == 0  # within its grace period
    swept = world.appointments.sweep_pushes(now + PUSH_GRACE + timedelta(minutes=1))

    assert swept.enqueued == 1
    (message,) = world.graph.queue.sent
    assert (message.appointment_id, message.revision) == (created, 1)
    assert world.pushes() == ["pushed"]
    assert world.appointments.sweep_pushes(now + PUSH_GRACE + timedelta(minutes=6)).enqueued == 0
    assert world.graph.queue.sent == []


# ====================================================================== calendar → CRM


def test_a_new_event_in_the_linked_calendar_becomes_one_appointment(world: World) -> None:
    event = world.cal.user_add(EMAIL, summary="Lunch with Ada", start=START, end=START + HOUR, time_zone="Europe/Rome")

    world.work()
    world.work()  # a duplicated notification: nothing more

    (appointment,) = world.listed()
    assert (appointment.title, appointment.start, appointment.time_zone) == ("Lunch with Ada", START, "Europe/Rome")
    assert appointment.link.event_id == event.event_id
    assert appointment.sync_state == "synced"  # nothing to push back
    assert world.graph.queue.take() == []


def test_our_own_event_coming_back_changes_nothing(world: World) -> None:
    created = world.create()
    world.work()  # push, then the sync sees our event
    world.work()

    (appointment,) = world.listed()
    assert (appointment.appointment_id, appointment.revision, appointment.sync_state) == (created, 1, "synced")
    assert world.cal.calls["update_event"] == 0


def test_moving_the_event_in_the_calendar_moves_the_appointment_without_an_echo(world: World) -> None:
    created = world.create()
    world.work()
    world.cal.user_move(EMAIL, event_id_for(created), start=START + 3 * HOUR, end=START + 4 * HOUR)
    writes = world.cal.calls["create_event"] + world.cal.calls["update_event"]

    world.work()

    moved = world.get(created)
    assert (moved.start, moved.end, moved.sync_state) == (START + 3 * HOUR, START + 4 * HOUR, "synced")
    assert world.graph.queue.take() == []
    assert world.cal.calls["create_event"] + world.cal.calls["update_event"] == writes


@pytest.mark.parametrize("policy", [ExternalDeletion.CANCEL, ExternalDeletion.UNLINK])
def test_deleting_the_event_follows_the_deletion_preference(world: World, policy: ExternalDeletion) -> None:
    world.prefer(SyncDirection.TWO_WAY, policy)
    created = world.create()
    world.work()
    world.cal.user_delete(EMAIL, event_id_for(created))

    world.work()

    after = world.get(created)
    assert after.link is None
    expected = AppointmentStatus.CANCELLED if policy is ExternalDeletion.CANCEL else AppointmentStatus.CONFIRMED
    assert after.status is expected
    assert world.live() == []  # neither policy puts the event back


def test_a_crm_change_being_pushed_wins_over_the_calendars_older_state(world: World) -> None:
    created = world.create()
    world.work()
    world.appointments.change(world.principal, created, title="Moved", start=START + 5 * HOUR, end=START + 6 * HOUR)
    world.cal.user_move(EMAIL, event_id_for(created), start=START + HOUR, end=START + 2 * HOUR)

    world.sync()  # a sync before the push ran

    pending = world.get(created)
    assert (pending.title, pending.start, pending.revision) == ("Moved", START + 5 * HOUR, 2)
    world.work()
    world.work()
    (event,) = world.live()
    assert (event.summary, event.start) == ("Moved", START + 5 * HOUR)
    assert world.get(created).sync_state == "synced"


def test_a_crm_change_after_the_event_was_deleted_puts_the_event_back(world: World) -> None:
    created = world.create()
    world.work()
    world.cal.user_delete(EMAIL, event_id_for(created))
    world.appointments.change(world.principal, created, start=START + 5 * HOUR, end=START + 6 * HOUR)

    world.work()
    world.work()

    kept = world.get(created)
    assert (kept.status, kept.sync_state, kept.link.event_id) == (
        AppointmentStatus.CONFIRMED,
        "synced",
        event_id_for(created),
    )
    (event,) = world.live()
    assert (event.event_id, event.start) == (event_id_for(created), START + 5 * HOUR)


def test_an_event_deleted_before_any_listing_showed_it_cancels_its_appointment(world: World) -> None:
    """Graph's delta reports no deletion of an event it never listed: our push created it
    after the last round and the user deleted it before the next. The sync asks for it."""
    world.cal.reports_unseen_deletions = False
    created = world.create()
    assert world.pushes() == ["pushed"]
    world.cal.user_delete(EMAIL, event_id_for(created))

    world.sync()

    after = world.get(created)
    assert (after.status, after.link) == (AppointmentStatus.CANCELLED, None)
    asked = world.cal.calls["event_exists"]
    assert asked == 1
    world.sync()  # settled: a later sync asks nothing
    assert world.cal.calls["event_exists"] == asked


def test_a_crm_change_being_pushed_wins_over_a_deletion_no_listing_reported(world: World) -> None:
    world.cal.reports_unseen_deletions = False
    created = world.create()
    world.pushes()
    world.cal.user_delete(EMAIL, event_id_for(created))
    world.appointments.change(world.principal, created, start=START + 5 * HOUR, end=START + 6 * HOUR)

    world.sync()  # before the change's push: the CRM wins
    world.work()
    world.work()

    kept = world.get(created)
    assert (kept.status, kept.sync_state) == (AppointmentStatus.CONFIRMED, "synced")
    (event,) = world.live()
    assert (event.start, event.crm_appointment_id) == (START + 5 * HOUR, created)


def test_an_event_a_listing_showed_is_not_asked_for(world: World) -> None:
    """Only events no listing has shown cost a request, and only where the provider needs it."""
    world.cal.reports_unseen_deletions = False
    world.create()
    world.work()  # the push, then a sync that lists its event
    world.cal.user_add(EMAIL, summary="lunch", start=START + 2 * HOUR, end=START + 3 * HOUR)
    world.sync()
    world.sync()

    assert world.cal.calls["event_exists"] == 0


def test_an_event_outside_the_listing_window_is_asked_for_twice_then_dropped(world: World) -> None:
    """A live event no listing shows (it ended before the window) is not a deletion: asked for
    after two rounds, it is given up, and no later sync pays for it."""
    world.cal.reports_unseen_deletions = False
    created = world.create(start=START - timedelta(days=400))
    world.pushes()

    for _ in range(4):
        world.sync()

    assert world.cal.calls["event_exists"] == 2
    assert world.get(created).status is AppointmentStatus.CONFIRMED


@pytest.mark.parametrize("reports", [True, False])
def test_a_pushed_event_is_recorded_for_the_check_only_where_the_provider_needs_it(world: World, reports: bool) -> None:
    world.cal.reports_unseen_deletions = reports
    created = world.create()

    world.pushes()

    inputs = world.graph.stores.mirror_store.sync_inputs(world.principal, world.connection, EMAIL)
    assert inputs.unlisted == (frozenset() if reports else {event_id_for(created)})


def test_the_crm_to_calendar_direction_imports_nothing(world: World) -> None:
    world.prefer(SyncDirection.CRM_TO_CALENDAR)
    world.cal.user_add(EMAIL, summary="private", start=START, end=START + HOUR)

    world.work()

    assert world.listed() == []


@pytest.mark.parametrize("event_type", ["outOfOffice", "focusTime", "workingLocation"])
def test_special_event_types_are_not_imported(world: World, event_type: str) -> None:
    world.cal.user_add(EMAIL, summary="away", start=START, end=START + HOUR, event_type=event_type)

    world.work()

    assert world.listed() == []
    assert len(world.graph.stores.mirror_store.events(world.principal, world.connection, EMAIL)) == 1


def test_events_of_a_calendar_that_is_not_linked_are_not_imported(world: World) -> None:
    world.graph.calendar_settings.set_conflict_calendars(world.principal, [CalendarRef(world.connection, TEAM)])
    world.cal.user_add(TEAM, summary="team stand-up", start=START, end=START + HOUR)

    world.work()
    world.sync(TEAM)

    assert world.listed() == []
    assert len(world.graph.stores.mirror_store.events(world.principal, world.connection, TEAM)) == 1
