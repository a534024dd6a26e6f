"""Connected calendars (F2, F12) on the production graph over fakes: refreshing an account's
calendar list, the sync state of each calendar, "Sync now" and the answer to held deletions.
Mirrors tests/integration/test_connected_calendars.py, test_calendar_settings.py and
test_mass_deletion_guard.py without Java or the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import CalendarRef, ConnectionStatus, Principal
from crmsync.errors import Conflict, NotFound, ProviderError
from crmsync.guard import Decision
from crmsync.logic.calendars import CalendarStatus
from crmsync.messaging.messages import CalendarSyncRequest, ConnectionCheck
from tests.fakes.calendar import FakeCalendar
from tests.fakes.world import FakeGraph
from tests.support import clock

ALICE = Principal("tenant-a", "alice")
BOB = Principal("tenant-b", "bob")
EMAIL = "ada@example.com"
NINE = clock.next_weekday(clock.THURSDAY, 9)


@pytest.fixture
def graph() -> FakeGraph:
    return FakeGraph()


def connected(graph: FakeGraph, *, extra: tuple[str, ...] = ("team", "holidays")) -> str:
    """Ada's account with a primary calendar, a "Team" calendar and a read-only "Holidays"."""
    connection_id = graph.connect(ALICE, EMAIL)
    account = graph.calendar_of(connection_id)
    if "team" in extra:
        account.add_calendar("team", name="Team", time_zone="Europe/Paris", color="#00aa00")
    if "holidays" in extra:
        account.add_calendar("holidays", name="Holidays", access_role="reader")
    graph.queue.take()
    return connection_id


def status_of(graph: FakeGraph, calendar_id: str) -> CalendarStatus:
    return next(s for s in graph.calendars.with_status(ALICE) if s.calendar.calendar_id == calendar_id)


def sync_requests(graph: FakeGraph) -> list[tuple[str, str, str]]:
    return sorted(
        (m.connection_id, m.calendar_id, m.reason) for m in graph.queue.take() if isinstance(m, CalendarSyncRequest)
    )


# ---------------------------------------------------------------------- refresh


def test_refresh_lists_the_accounts_calendars_primary_first_and_only_the_primary_blocks(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    assert graph.calendars.connected(ALICE) == []  # nothing until the refresh ran

    refreshed = graph.calendars.refresh(ALICE, connection_id)

    assert refreshed is not None
    listed = graph.calendars.connected(ALICE)
    assert [(c.calendar_id, c.primary, c.conflict, c.writable) for c in listed] == [
        (EMAIL, True, True, True),
        ("holidays", False, False, False),
        ("team", False, False, True),
    ]
    team = next(c for c in listed if c.calendar_id == "team")
    assert (team.name, team.time_zone, team.color, team.access_role) == ("Team", "Europe/Paris", "#00aa00", "owner")
    assert {c.account_email for c in listed} == {EMAIL}
    assert graph.calendars.connected(BOB) == []


def test_a_refresh_keeps_the_users_choices_and_drops_calendars_gone_at_the_provider(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.calendar_settings.set_conflict_calendars(ALICE, [CalendarRef(connection_id, "team")])
    # The user deletes "Holidays" at the provider: the account now lists the others only.
    account = graph.calendar_of(connection_id)
    again = graph.calendar_access.put(connection_id, FakeCalendar(tenant_id=ALICE.tenant_id, email=EMAIL))
    again.add_calendar("team", name="Team renamed", time_zone="Europe/Paris")
    assert account is not again

    refreshed = graph.calendars.refresh(ALICE, connection_id)

    assert refreshed is not None
    assert [(c.calendar_id, c.name, c.conflict) for c in graph.calendars.connected(ALICE)] == [
        (EMAIL, EMAIL, False),
        ("team", "Team renamed", True),
    ]


def test_refresh_is_none_when_the_grant_does_not_reach_calendars_or_the_connection_is_gone(graph: FakeGraph) -> None:
    oauth = graph.account_access.oauth("google")
    start = graph.integrations.start_connect("google", ALICE, binding="b" * 43)
    answer = oauth.approve(start.authorization_url, email=EMAIL, scopes=("openid", "email"))  # calendar unticked
    connection = graph.integrations.complete_connect(
        "google", state=answer["state"], code=answer["code"], error=None, binding="b" * 43
    )

    assert graph.calendars.refresh(ALICE, connection.connection_id) is None
    assert graph.calendars.connected(ALICE) == []
    assert graph.calendar_access.opened == []  # the provider was not even asked
    assert graph.calendars.refresh(ALICE, "g" + "0" * 31) is None
    assert graph.calendars.refresh(BOB, connection.connection_id) is None


def test_a_failing_calendar_list_propagates_and_changes_nothing(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    before = graph.calendars.connected(ALICE)
    graph.calendar_of(connection_id).fail_next(ProviderError("rate limited", retryable=True, status=429))

    with pytest.raises(ProviderError) as failed:
        graph.calendars.refresh(ALICE, connection_id)

    assert failed.value.retryable
    assert graph.calendars.connected(ALICE) == before


# ---------------------------------------------------------------------- with_status


def test_with_status_off_pending_synced_with_a_push_channel(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.calendar_of(connection_id).user_add(EMAIL, summary="busy", start=NINE, end=NINE + timedelta(hours=1))

    primary, team = status_of(graph, EMAIL), status_of(graph, "team")
    assert (primary.sync_state, primary.push_channel, primary.last_synced_at) == ("pending", False, None)
    assert (team.sync_state, team.push_channel) == ("off", False)
    assert primary.connection_status is ConnectionStatus.CONNECTED

    graph.calendar_sync.run(ALICE, connection_id, EMAIL)

    primary = status_of(graph, EMAIL)
    assert (primary.sync_state, primary.push_channel, primary.events_so_far) == ("synced", True, None)
    assert primary.last_synced_at is not None
    assert list(graph.calendar_of(connection_id).watches())  # the channel is live at the provider
    assert status_of(graph, "team").sync_state == "off"


def test_a_failed_sync_shows_failing_with_its_error_until_a_sync_succeeds(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.calendar_sync.run(ALICE, connection_id, EMAIL)
    graph.calendar_of(connection_id).fail_next(
        ProviderError("the provider is unavailable", retryable=True, status=503), method="event_pages"
    )

    with pytest.raises(ProviderError):
        graph.calendar_sync.run(ALICE, connection_id, EMAIL)

    failing = status_of(graph, EMAIL)
    assert failing.sync_state == "failing"
    assert failing.last_error is not None
    assert "unavailable" in failing.last_error
    assert failing.last_error_at is not None

    graph.calendar_sync.run(ALICE, connection_id, EMAIL)
    healed = status_of(graph, EMAIL)
    assert (healed.sync_state, healed.last_error, healed.last_error_at) == ("synced", None, None)


def test_events_so_far_shows_a_full_sync_under_way_and_goes_with_the_next_sync(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.calendar_sync.run(ALICE, connection_id, EMAIL)
    graph.mirror_store.record_progress(ALICE, connection_id, EMAIL, 250)  # as a dying worker left it

    assert status_of(graph, EMAIL).events_so_far == 250
    assert status_of(graph, "team").events_so_far is None

    graph.calendar_sync.run(ALICE, connection_id, EMAIL)
    assert (status_of(graph, EMAIL).sync_state, status_of(graph, EMAIL).events_so_far) == ("synced", None)


def test_with_status_shows_the_accounts_status(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.account_access.credential_of(connection_id).user_revokes()
    graph.integrations.check_connection(
        ConnectionCheck(tenant_id=ALICE.tenant_id, user_id=ALICE.user_id, connection_id=connection_id, occasion="now")
    )
    assert {s.connection_status for s in graph.calendars.with_status(ALICE)} == {ConnectionStatus.NEEDS_REAUTH}
    assert graph.calendars.with_status(BOB) == []


# ---------------------------------------------------------------------- sync now


def test_sync_now_queues_one_sync_per_synced_calendar(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.calendar_settings.set_conflict_calendars(
        ALICE, [CalendarRef(connection_id, EMAIL), CalendarRef(connection_id, "team")]
    )
    graph.queue.take()

    queued = graph.calendars.sync_now(ALICE, connection_id)

    assert queued == 2
    assert sync_requests(graph) == [(connection_id, EMAIL, "manual"), (connection_id, "team", "manual")]


def test_sync_now_of_an_unknown_or_someone_elses_connection_is_not_found(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    with pytest.raises(NotFound):
        graph.calendars.sync_now(ALICE, "g" + "0" * 31)
    with pytest.raises(NotFound):
        graph.calendars.sync_now(BOB, connection_id)
    assert graph.queue.take() == []


def test_sync_now_of_an_account_that_must_be_reconnected_is_a_conflict(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.account_access.credential_of(connection_id).user_revokes()
    graph.integrations.check_connection(
        ConnectionCheck(tenant_id=ALICE.tenant_id, user_id=ALICE.user_id, connection_id=connection_id, occasion="now")
    )
    graph.queue.take()

    with pytest.raises(Conflict):
        graph.calendars.sync_now(ALICE, connection_id)
    assert graph.queue.take() == []


# ---------------------------------------------------------------------- held deletions


def held_deletions(graph: FakeGraph) -> str:
    """Three appointments pushed to the linked primary calendar, mirrored back, then all
    deleted at the provider: the next sync would empty the mirror, so it holds them."""
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    graph.calendar_settings.link(ALICE, CalendarRef(connection_id, EMAIL))
    graph.queue.take()
    for i in range(3):
        start = NINE + timedelta(hours=i)
        graph.appointments.create(ALICE, AppointmentFields(f"m{i}", start, start + timedelta(minutes=30), "UTC"))
    assert set(graph.appointments.push(m) for m in graph.queue.take()) == {"pushed"}
    graph.calendar_sync.run(ALICE, connection_id, EMAIL)
    account = graph.calendar_of(connection_id)
    for event in account.events(EMAIL):
        account.user_delete(EMAIL, event.event_id)
    graph.calendar_sync.run(ALICE, connection_id, EMAIL)
    graph.queue.take()
    return connection_id


def test_decide_deletions_records_the_answer_and_queues_the_sync_that_carries_it_out() -> None:
    graph = FakeGraph(mass_deletion_minimum=2)
    connection_id = held_deletions(graph)
    assert status_of(graph, EMAIL).pending_deletions is not None

    answered = graph.calendars.decide_deletions(ALICE, connection_id, EMAIL, Decision.APPLY)

    assert answered.pending_deletions is not None
    assert answered.pending_deletions.decision is Decision.APPLY
    assert sync_requests(graph) == [(connection_id, EMAIL, "deletions")]


def test_decide_deletions_on_a_calendar_without_held_deletions_or_unknown_is_not_found(graph: FakeGraph) -> None:
    connection_id = connected(graph)
    graph.calendars.refresh(ALICE, connection_id)
    for calendar_id in (EMAIL, "no-such-calendar"):
        with pytest.raises(NotFound):
            graph.calendars.decide_deletions(ALICE, connection_id, calendar_id, Decision.IGNORE)
    with pytest.raises(NotFound):
        graph.calendars.decide_deletions(BOB, connection_id, EMAIL, Decision.IGNORE)
    assert graph.queue.take() == []
