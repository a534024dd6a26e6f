"""The mass-deletion guard (issue 18): a sync that suddenly reports most of the linked
calendar deleted must not wipe the CRM. Given 40 linked appointments, when Google's next full
sync lists none of them, nothing is cancelled and the calendar asks for confirmation; Apply
cancels them (and pushes nothing to Google), Ignore keeps them and puts their events back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from crmsync.dal.appointments import AppointmentFields
from crmsync.dal.mirror import MirrorStore
from crmsync.domain import AppointmentStatus, ExternalDeletion, SyncDirection, SyncPreferences
from crmsync.errors import NotFound
from crmsync.guard import Decision
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendars import CalendarStatus
from crmsync.messaging.messages import AppointmentPush, CalendarSyncRequest
from crmsync.models.appointment import APPOINTMENT_SK_PREFIX, AppointmentItem
from crmsync.models.keys import user_pk
from tests.fakes.world import RecordingQueue
from tests.integration.test_two_way_sync import START, World, iso
from tests.support.events import RecordingPublisher

pytestmark = pytest.mark.integration

LINKED = 40


class Counted:
    def __init__(self) -> None:
        self.names: list[str] = []

    def count(self, name: str) -> None:
        self.names.append(name)


@pytest.fixture
def published() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def counted() -> Counted:
    return Counted()


@pytest.fixture
def world(
    stack,
    service_env,
    integrations,
    calendars,
    make_appointments: Callable[..., Appointments],
    recorded: RecordingQueue,
    published: RecordingPublisher,
    counted: Counted,
) -> World:
    """A linked calendar with the production thresholds (20 items, 50 %)."""
    return World(
        stack,
        service_env,
        integrations,
        calendars,
        make_appointments(),
        recorded,
        events=published,
        counter=counted,
    )


def book_linked(world: World, count: int = LINKED) -> list[str]:
    """``count`` CRM appointments, pushed to the linked calendar and mirrored back."""
    ids = [
        world.appointments.create(
            world.principal,
            AppointmentFields(
                f"meeting {i}", START + timedelta(hours=i), START + timedelta(hours=i, minutes=30), "UTC"
            ),
        ).appointment_id
        for i in range(count)
    ]
    world.work()
    world.work()
    assert all(a.link is not None and a.sync_state == "synced" for a in world.listed())
    return ids


def google_loses(world: World, event_ids: list[str]) -> None:
    """Google stops listing these events (gone, their tombstones purged) and invalidates the
    sync token: the next sync is a full one."""
    for event_id in event_ids:
        world.google.delete(event_id)
    world.google.expire_sync_tokens(purge_deleted=True)


def linked_event_ids(world: World) -> list[str]:
    return [a.link.event_id for a in world.listed() if a.link]


def status(world: World) -> CalendarStatus:
    return next(s for s in world.calendars.with_status(world.principal) if s.calendar.calendar_id == world.email)


def held(world: World) -> Any:
    return status(world).pending_deletions


def push_marks(world: World) -> list[str]:
    """The appointments marked as waiting for their push (the push sweep's index)."""
    pk = user_pk(world.principal.tenant_id, world.principal.user_id)
    items = AppointmentItem.query(pk, AppointmentItem.sk.startswith(APPOINTMENT_SK_PREFIX), consistent_read=True)
    return [item.appointment_id for item in items if item.push_due]


def confirmed(world: World) -> list[Any]:
    return [a for a in world.listed() if a.status is AppointmentStatus.CONFIRMED]


def hold_forty(world: World, published: RecordingPublisher) -> list[str]:
    book_linked(world)
    google_loses(world, linked_event_ids(world))
    published.take()
    world.work()
    return [e.event_id for e in MirrorStore().events(world.principal, world.connection, world.email)]


def test_a_full_sync_listing_none_of_40_linked_appointments_cancels_nothing_and_asks(
    world: World, published: RecordingPublisher, counted: Counted
) -> None:
    book_linked(world)
    google_loses(world, linked_event_ids(world))
    newcomer = world.google.add(
        summary="new in Google",
        start={"dateTime": iso(START - timedelta(hours=3))},
        end={"dateTime": iso(START - timedelta(hours=2))},
    )
    published.take()

    world.work()

    assert len(confirmed(world)) == LINKED + 1  # nothing cancelled; the rest of the sync applied
    assert newcomer["id"] in linked_event_ids(world)
    pending = held(world)
    assert (pending.deletions, pending.mirrored, pending.complete, pending.decision) == (LINKED, LINKED, True, None)
    assert len(MirrorStore().events(world.principal, world.connection, world.email)) == LINKED + 1
    assert world.recorded.take() == []  # nothing pushed to Google
    (event,) = [e for e in published.events if e.detail_type == "DeletionsHeld"]
    assert (event.deletions, event.mirrored, event.resource_id) == (LINKED, LINKED, world.email)  # type: ignore[attr-defined]
    assert counted.names == ["MassDeletionHeld"]

    published.take()
    world.work()  # later syncs keep asking, once: no new event, no cancellation
    world.google.expire_sync_tokens()
    world.work()
    assert len(confirmed(world)) == LINKED + 1
    assert held(world).deletions == LINKED
    assert counted.names == ["MassDeletionHeld"]
    assert "DeletionsHeld" not in [e.detail_type for e in published.events]


def test_apply_cancels_them_and_pushes_nothing(world: World, published: RecordingPublisher) -> None:
    hold_forty(world, published)

    answered = world.calendars.decide_deletions(world.principal, world.connection, world.email, Decision.APPLY)
    assert answered.pending_deletions is not None
    assert answered.pending_deletions.decision is Decision.APPLY
    (request,) = world.recorded.sent
    assert isinstance(request, CalendarSyncRequest)
    world.work()

    everything = world.listed()
    assert [a.status for a in everything] == [AppointmentStatus.CANCELLED] * LINKED
    assert all(a.link is None and a.sync_state == "synced" for a in everything)
    assert held(world) is None
    assert MirrorStore().events(world.principal, world.connection, world.email) == []
    assert world.recorded.take() == []  # cancelled from Google's side: nothing to push back

    revisions = [a.revision for a in world.listed()]
    world.work()  # a duplicated delivery of the request changes nothing
    assert [a.revision for a in world.listed()] == revisions
    with pytest.raises(NotFound):
        world.calendars.decide_deletions(world.principal, world.connection, world.email, Decision.APPLY)


def test_ignore_keeps_them_and_puts_their_events_back(world: World, published: RecordingPublisher) -> None:
    hold_forty(world, published)

    world.calendars.decide_deletions(world.principal, world.connection, world.email, Decision.IGNORE)
    world.work()  # the sync carries the answer out: the appointments stay, their pushes are queued

    assert len(confirmed(world)) == LINKED
    assert held(world) is None
    pushes = [m for m in world.recorded.sent if isinstance(m, AppointmentPush)]
    assert len(pushes) == LINKED
    assert len(push_marks(world)) == LINKED  # should a push message be lost, the sweep sends it
    world.work()  # the pushes put the events back; the sync sees them as our own
    world.work()

    kept = world.listed()
    assert all(a.status is AppointmentStatus.CONFIRMED and a.sync_state == "synced" for a in kept)
    assert push_marks(world) == []
    in_google = {e["id"] for e in world.google.events(cancelled=False)}
    assert {a.link.event_id for a in kept if a.link} == in_google
    assert len(in_google) == LINKED

    world.google.expire_sync_tokens()  # a later full sync neither asks again nor cancels
    world.work()
    assert held(world) is None
    assert len(confirmed(world)) == LINKED


def test_the_first_sync_after_the_mirror_was_forgotten_is_guarded_by_the_crm_side(
    world: World, published: RecordingPublisher
) -> None:
    """E.g. a reconnect: the mirror is gone, the appointments are still linked."""
    book_linked(world)
    google_loses(world, linked_event_ids(world))
    MirrorStore().forget(world.principal, world.connection, world.email)

    world.work()

    assert len(confirmed(world)) == LINKED
    assert (held(world).deletions, held(world).mirrored) == (LINKED, LINKED)


def test_an_incremental_sync_deleting_many_but_not_all_is_applied(world: World) -> None:
    """A user clearing most of a calendar on purpose: not a full sync, the mirror not emptied."""
    book_linked(world)
    events = linked_event_ids(world)
    for event_id in events[:30]:
        world.google.delete(event_id)

    world.work()

    assert len(confirmed(world)) == LINKED - 30
    assert held(world) is None


def test_an_incremental_sync_that_empties_the_mirror_is_held(world: World) -> None:
    world.settings.set_preferences(world.principal, SyncPreferences(SyncDirection.TWO_WAY, ExternalDeletion.UNLINK))
    book_linked(world, 25)
    for event_id in linked_event_ids(world):
        world.google.delete(event_id)

    world.work()

    assert all(a.link is not None for a in world.listed())  # not even unlinked
    pending = held(world)
    assert (pending.deletions, pending.mirrored, pending.complete) == (25, 25, False)

    world.calendars.decide_deletions(world.principal, world.connection, world.email, Decision.APPLY)
    world.work()
    assert all(a.link is None and a.status is AppointmentStatus.CONFIRMED for a in world.listed())  # unlink policy
    assert held(world) is None
