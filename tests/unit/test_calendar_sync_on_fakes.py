"""CalendarSync (F7) on the production object graph over fakes (``tests/fakes/world.py``):
full then incremental syncs, the cursor, push channels, the mass-deletion guard and the
disconnect. Fast twins of tests/integration/test_inbound_calendar_sync.py, test_sync_lifecycle.py,
test_channels.py, test_mass_deletion_guard.py and test_sync_convergence.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import AppointmentStatus, CalendarRef, ExternalDeletion, SyncDirection
from crmsync.guard import Decision
from crmsync.messaging.messages import AppointmentPush, CalendarSyncRequest
from crmsync.ports.errors import ProviderError
from tests.fakes.world import FakeGraph
from tests.unit.test_appointments_on_fakes import EMAIL, HOUR, START, TEAM, World

#: Mass-deletion thresholds small enough for a fast test (production: 20 items, 50 %).
MINIMUM = 5


class Clock:
    """A clock the test moves: the fakes' and the push channels' time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world() -> World:
    """A linked primary calendar; the mass-deletion guard at :data:`MINIMUM` items."""
    return World(graph=FakeGraph(mass_deletion_minimum=MINIMUM))


def mirrored(world: World, calendar_id: str = EMAIL) -> list[tuple[str, datetime | None, datetime | None]]:
    events = world.graph.stores.mirror_store.events(world.principal, world.connection, calendar_id)
    return sorted((e.event_id, e.start, e.end) for e in events)


def live(world: World, calendar_id: str = EMAIL) -> list[tuple[str, datetime | None, datetime | None]]:
    return sorted((e.event_id, e.start, e.end) for e in world.cal.events(calendar_id))


def cursor(world: World, calendar_id: str = EMAIL) -> Any:
    return world.graph.stores.mirror_store.cursor(world.principal, world.connection, calendar_id)


def run(world: World, calendar_id: str = EMAIL) -> Any:
    return world.graph.calendar_sync.run(world.principal, world.connection, calendar_id)


# ====================================================================== full, incremental, cursor


def test_the_first_sync_is_full_and_stores_a_cursor() -> None:
    world = World(link=False)
    for i in range(3):
        world.cal.user_add(EMAIL, summary=f"e{i}", start=START + i * HOUR, end=START + (i + 1) * HOUR)
    world.graph.calendar_settings.set_conflict_calendars(world.principal, [CalendarRef(world.connection, EMAIL)])
    assert cursor(world).sync_token is None

    outcome = run(world)

    assert (outcome.full, outcome.changes, outcome.retired) == (True, 3, False)
    stored = cursor(world)
    assert stored.sync_token is not None
    assert (stored.full_syncs, stored.last_error, stored.events_so_far) == (1, None, None)
    assert mirrored(world) == live(world)
    assert len(mirrored(world)) == 3


def test_an_incremental_sync_brings_the_changes_only(world: World) -> None:
    kept = world.cal.user_add(EMAIL, summary="kept", start=START, end=START + HOUR)
    moved = world.cal.user_add(EMAIL, summary="moved", start=START + HOUR, end=START + 2 * HOUR)
    gone = world.cal.user_add(EMAIL, summary="gone", start=START + 2 * HOUR, end=START + 3 * HOUR)
    run(world)
    world.cal.user_move(EMAIL, moved.event_id, start=START + 5 * HOUR, end=START + 6 * HOUR)
    world.cal.user_delete(EMAIL, gone.event_id)
    added = world.cal.user_add(EMAIL, summary="added", start=START + 7 * HOUR, end=START + 8 * HOUR)

    outcome = run(world)

    assert (outcome.full, outcome.changes) == (False, 3)
    assert [i for i, _, _ in mirrored(world)] == sorted([kept.event_id, moved.event_id, added.event_id])
    assert mirrored(world) == live(world)
    assert cursor(world).full_syncs == 1


def test_a_no_op_incremental_sync_costs_one_provider_call_and_writes_nothing(world: World) -> None:
    world.cal.user_add(EMAIL, summary="x", start=START, end=START + HOUR)
    run(world)
    calls = sum(world.cal.calls.values())
    table = dict(world.graph.stores.table.items)
    channels = dict(world.graph.stores.channel_store.channels)

    outcome = run(world)

    assert (outcome.full, outcome.changes) == (False, 0)
    assert sum(world.cal.calls.values()) == calls + 1  # one page of no changes
    after = world.graph.stores.table.items
    assert after.keys() == table.keys()
    assert [k for k in table if after[k] is not table[k]] == []  # no item written
    assert world.graph.stores.channel_store.channels == channels


def test_an_invalidated_cursor_falls_back_to_a_full_sync_without_ghosts_or_duplicates(world: World) -> None:
    stays = world.cal.user_add(EMAIL, summary="stays", start=START, end=START + HOUR)
    ghost = world.cal.user_add(EMAIL, summary="ghost", start=START + HOUR, end=START + 2 * HOUR)
    run(world)
    world.cal.user_delete(EMAIL, ghost.event_id)
    world.cal.invalidate_cursors(purge_deleted=True)  # the deletion is never reported
    newcomer = world.cal.user_add(EMAIL, summary="new", start=START + 3 * HOUR, end=START + 4 * HOUR)

    outcome = run(world)

    assert outcome.full
    assert [i for i, _, _ in mirrored(world)] == sorted([stays.event_id, newcomer.event_id])
    assert cursor(world).full_syncs == 2
    (appointment_stays, appointment_new) = sorted(
        (a for a in world.listed() if a.status is AppointmentStatus.CONFIRMED), key=lambda a: a.start
    )
    assert (appointment_stays.title, appointment_new.title) == ("stays", "new")
    assert len(world.listed()) == 3  # the ghost's appointment is cancelled, not duplicated


def test_a_sync_failure_is_recorded_on_the_cursor_and_cleared_by_the_next_success(world: World) -> None:
    world.cal.user_add(EMAIL, summary="x", start=START, end=START + HOUR)
    run(world)
    world.cal.fail_next(ProviderError("events.list: backend error", retryable=True, status=503), method="event_pages")

    with pytest.raises(ProviderError):
        run(world)

    failed = cursor(world)
    assert failed.last_error is not None
    assert "backend error" in failed.last_error
    assert failed.last_error_at is not None

    run(world)  # nothing changed, yet the recorded failure goes

    assert (cursor(world).last_error, cursor(world).last_error_at) == (None, None)


def test_a_connection_that_is_gone_is_not_synced(world: World) -> None:
    world.graph.integrations.disconnect(world.principal, world.connection)
    assert run(world) is None


# ====================================================================== push channels


def test_a_push_channel_is_opened_once_and_renewed_within_a_day_of_its_expiry() -> None:
    clock = Clock()
    world = World(graph=FakeGraph(clock=clock))
    first = cursor(world).channel_id
    assert first is not None
    assert set(world.cal.watches()) == {first}
    assert world.graph.stores.channel_store.get(first) is not None

    clock.now += timedelta(days=5)  # two days left: kept
    run(world)
    assert cursor(world).channel_id == first
    assert world.cal.calls["watch"] == 1

    clock.now += timedelta(days=1, minutes=1)  # under a day left: renewed, new first, old stopped
    run(world)

    renewed = cursor(world).channel_id
    assert renewed not in (None, first)
    assert set(world.cal.watches()) == {renewed}
    assert world.cal.calls["stop_watch"] == 1
    assert world.graph.stores.channel_store.get(first) is None
    assert world.graph.stores.channel_store.get(renewed or "") is not None


def test_a_calendar_no_longer_wanted_is_retired_its_channel_stopped_and_mirror_forgotten(world: World) -> None:
    world.cal.user_add(TEAM, summary="stand-up", start=START, end=START + HOUR)
    world.graph.calendar_settings.set_conflict_calendars(world.principal, [CalendarRef(world.connection, TEAM)])
    run(world, TEAM)
    channel = cursor(world, TEAM).channel_id
    assert channel in world.cal.watches()
    assert len(mirrored(world, TEAM)) == 1

    world.graph.calendar_settings.set_conflict_calendars(world.principal, [])
    outcome = run(world, TEAM)

    assert outcome.retired
    assert channel not in world.cal.watches()
    assert world.graph.stores.channel_store.get(channel or "") is None
    assert mirrored(world, TEAM) == []
    assert cursor(world, TEAM).sync_token is None
    assert cursor(world).channel_id in world.cal.watches()  # the linked calendar keeps its own


def test_disconnecting_stops_the_channels_and_forgets_what_was_mirrored(world: World) -> None:
    world.cal.user_add(EMAIL, summary="x", start=START, end=START + HOUR)
    run(world)
    channel = cursor(world).channel_id
    assert channel in world.cal.watches()
    assert mirrored(world)

    world.graph.integrations.disconnect(world.principal, world.connection)

    assert world.cal.watches() == {}
    assert world.graph.stores.channel_store.get(channel or "") is None
    assert mirrored(world) == []
    assert cursor(world).sync_token is None


# ====================================================================== the mass-deletion guard


def book_linked(world: World, count: int) -> list[str]:
    """``count`` appointments, pushed to the linked calendar and mirrored back."""
    ids = [
        world.appointments.create(
            world.principal, AppointmentFields(f"m{i}", START + i * HOUR, START + i * HOUR + HOUR / 2, "UTC")
        ).appointment_id
        for i in range(count)
    ]
    world.work()
    world.work()
    assert all(a.link is not None and a.sync_state == "synced" for a in world.listed())
    return ids


def calendar_loses_everything(world: World) -> None:
    for event in world.cal.events(EMAIL):
        world.cal.user_delete(EMAIL, event.event_id)
    world.cal.invalidate_cursors(purge_deleted=True)


def held(world: World) -> Any:
    (status,) = [s for s in world.graph.calendars.with_status(world.principal) if s.calendar.calendar_id == EMAIL]
    return status.pending_deletions


def confirmed(world: World) -> list[Any]:
    return [a for a in world.listed() if a.status is AppointmentStatus.CONFIRMED]


def hold(world: World, count: int = 2 * MINIMUM) -> None:
    book_linked(world, count)
    calendar_loses_everything(world)
    world.graph.published.take()

    world.work()

    assert len(confirmed(world)) == count
    pending = held(world)
    assert (pending.deletions, pending.mirrored, pending.complete, pending.decision) == (count, count, True, None)
    assert [t for t, _ in world.graph.published.take()] == ["DeletionsHeld"]
    assert world.graph.queue.take() == []
    world.work()  # later syncs keep holding, without asking again
    assert len(confirmed(world)) == count
    assert world.graph.published.take() == []


def test_a_full_sync_losing_every_linked_event_is_held(world: World) -> None:
    hold(world)


def test_a_few_deletions_are_applied_at_once(world: World) -> None:
    book_linked(world, MINIMUM - 1)
    calendar_loses_everything(world)

    world.work()

    assert confirmed(world) == []
    assert held(world) is None


def test_applying_held_deletions_cancels_the_appointments(world: World) -> None:
    hold(world)

    world.graph.calendars.decide_deletions(world.principal, world.connection, EMAIL, Decision.APPLY)
    (request,) = world.graph.queue.take()
    assert isinstance(request, CalendarSyncRequest)
    world.deliver(request)

    assert confirmed(world) == []
    assert all(a.link is None and a.sync_state == "synced" for a in world.listed())
    assert held(world) is None
    assert mirrored(world) == []
    assert world.graph.queue.take() == []  # nothing to push back


def test_ignoring_held_deletions_keeps_the_appointments_and_puts_their_events_back(world: World) -> None:
    hold(world)

    world.graph.calendars.decide_deletions(world.principal, world.connection, EMAIL, Decision.IGNORE)
    world.work()  # the sync carries the answer out and queues the pushes

    assert len(confirmed(world)) == 2 * MINIMUM
    assert held(world) is None
    assert sum(isinstance(m, AppointmentPush) for m in world.graph.queue.sent) == 2 * MINIMUM
    world.work()
    world.work()
    kept = world.listed()
    assert all(a.status is AppointmentStatus.CONFIRMED and a.sync_state == "synced" for a in kept)
    assert sorted(a.link.event_id for a in kept) == [i for i, _, _ in live(world)]
    assert len(live(world)) == 2 * MINIMUM


def test_an_incremental_sync_that_empties_the_mirror_is_held(world: World) -> None:
    world.prefer(SyncDirection.TWO_WAY, ExternalDeletion.UNLINK)
    book_linked(world, MINIMUM)
    for event in world.cal.events(EMAIL):
        world.cal.user_delete(EMAIL, event.event_id)

    world.work()

    assert all(a.link is not None for a in world.listed())
    pending = held(world)
    assert (pending.deletions, pending.mirrored, pending.complete) == (MINIMUM, MINIMUM, False)

    world.graph.calendars.decide_deletions(world.principal, world.connection, EMAIL, Decision.APPLY)
    world.work()
    assert all(a.link is None and a.status is AppointmentStatus.CONFIRMED for a in world.listed())
    assert held(world) is None


# ====================================================================== convergence

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 47), st.integers(1, 3)),
        st.tuples(st.just("move"), st.integers(0, 20), st.integers(0, 47)),
        st.tuples(st.just("delete"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("invalidate"), st.booleans(), st.just(0)),
        st.tuples(st.just("sync"), st.just(0), st.just(0)),
    ),
    max_size=15,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
def test_after_any_user_operations_and_syncs_the_mirror_is_the_calendar(ops: list[tuple[str, Any, int]]) -> None:
    world = World(link=False)
    world.graph.calendar_settings.set_conflict_calendars(world.principal, [CalendarRef(world.connection, EMAIL)])
    for op, a, b in ops:
        ids = [e.event_id for e in world.cal.events(EMAIL)]
        if op == "add":
            start = START + a * HOUR
            world.cal.user_add(EMAIL, summary=f"at {a}", start=start, end=start + b * HOUR)
        elif op == "move" and ids:
            start = START + b * HOUR
            world.cal.user_move(EMAIL, ids[a % len(ids)], start=start, end=start + HOUR)
        elif op == "delete" and ids:
            world.cal.user_delete(EMAIL, ids[a % len(ids)])
        elif op == "invalidate":
            world.cal.invalidate_cursors(EMAIL, purge_deleted=a)
        elif op == "sync":
            run(world)

    run(world)

    assert mirrored(world) == live(world)
