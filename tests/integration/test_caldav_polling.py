"""Polling CalDAV calendars (issue 15, deliverable 3): the scheduled tick queues the linked
calendar every 5 minutes and conflict calendars every 15 (on a tick chosen by a hash of the
connection), the settings page polls at once but at most once a minute, a no-op poll costs one
request to the CalDAV server, a user's new event reaches the mirror through a poll, and a
revoked app-specific password marks the connection needs_reauth (no poll after that).

Production provider kits over the session's Radicale (behind its fault layer, which counts the
requests); stores and queue are the in-memory fakes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.app.wiring import Graph
from crmsync.domain import CalendarRef, ConnectionStatus, Principal
from crmsync.domain.sweeps import TICK, tick_of
from crmsync.messaging.messages import CalendarSyncRequest
from crmsync.sync.polling import CONFLICT_TICKS, conflict_slot
from devstack.caldav import CalDavServer
from tests.fakes.world import FakeGraph
from tests.support import clock
from tests.support.caldav_user import CalDavUser

pytestmark = pytest.mark.integration

ADA = Principal("tenant-poll", "ada")


class Clock:
    """The moment the poller acts at, moved by the test (starting from the test clock)."""

    def __init__(self) -> None:
        start = clock.now().replace(second=0, microsecond=0)
        self.moment = datetime.fromtimestamp(tick_of(start) * TICK.total_seconds(), UTC) + timedelta(seconds=30)

    def __call__(self) -> datetime:
        return self.moment


class World:
    def __init__(self, server: CalDavServer, *, linked: bool) -> None:
        self.server = server
        self.user = CalDavUser(server)
        self.clock = Clock()
        graph = FakeGraph(caldav={"base_url": server.base_url, "private_servers": True}, clock=self.clock)
        graph.__dict__["connectors"] = Graph.connectors.func(graph)
        self.graph = graph
        connection = graph.integrations.connect_with_password(
            "icloud", ADA, username=self.user.email, password=self.user.password
        )
        self.connection = connection.connection_id
        graph.calendars.refresh(ADA, self.connection)
        ref = CalendarRef(self.connection, self.user.calendar_url)
        if linked:
            graph.calendar_settings.link(ADA, ref)
        else:
            graph.calendar_settings.set_conflict_calendars(ADA, [ref])
        self.work()  # the first (full) sync the settings change asked for

    def take(self) -> list[CalendarSyncRequest]:
        return [m for m in self.graph.queue.take() if isinstance(m, CalendarSyncRequest)]

    def work(self) -> list[str]:
        """Play the worker: run every queued calendar sync."""
        outcomes = []
        for message in self.take():
            result = self.graph.calendar_sync.run(
                Principal(message.tenant_id, message.user_id), message.connection_id, message.calendar_id
            )
            outcomes.append("none" if result is None else "full" if result.full else "incremental")
        return outcomes

    def ticks(self, n: int) -> list[int]:
        """Fire the schedule at the next ``n`` ticks; the calendar polls each one queued."""
        queued = []
        for _ in range(n):
            self.clock.moment += TICK
            queued.append(self.graph.calendar_poller.poll_due().calendars)
            self.work()
        return queued


@pytest.fixture
def linked(caldav_server: CalDavServer) -> World:
    return World(caldav_server, linked=True)


@pytest.fixture
def conflict_only(caldav_server: CalDavServer) -> World:
    return World(caldav_server, linked=False)


def test_the_linked_calendar_is_polled_at_every_tick(linked: World) -> None:
    # Linked is a conflict calendar too (the default): polled once per tick, not twice.
    assert linked.ticks(2 * CONFLICT_TICKS) == [1] * (2 * CONFLICT_TICKS)


def test_a_conflict_calendar_is_polled_every_third_tick_on_its_connections_slot(conflict_only: World) -> None:
    world = conflict_only
    queued = world.ticks(2 * CONFLICT_TICKS)

    assert sorted(queued) == [0] * (2 * (CONFLICT_TICKS - 1)) + [1, 1]
    first = tick_of(world.clock.moment) - 2 * CONFLICT_TICKS + 1
    polled = [first + i for i, n in enumerate(queued) if n]
    assert polled[1] - polled[0] == CONFLICT_TICKS
    assert all((t + conflict_slot(ADA, world.connection)) % CONFLICT_TICKS == 0 for t in polled)


def test_a_repeated_firing_within_a_tick_is_one_message_at_the_queue(linked: World) -> None:
    linked.graph.calendar_poller.poll_due()
    linked.graph.calendar_poller.poll_due()

    first, again = linked.take()
    assert first.deduplication_id == again.deduplication_id  # SQS FIFO drops the second
    assert first.reason == "poll"


def test_a_no_op_poll_costs_one_request_to_the_caldav_server(linked: World) -> None:
    linked.server.layer.clear_calls()

    assert linked.ticks(1) == [1]

    assert linked.server.layer.count(linked.user.email) == 1
    assert linked.server.layer.count(linked.user.email, "REPORT") == 1


def test_an_event_the_user_adds_is_mirrored_after_the_next_poll(linked: World) -> None:
    start = clock.days_ahead(3, 10)
    name = linked.user.add("Dentist", start, start + timedelta(hours=1))
    mirror = linked.graph.stores.mirror_store

    assert linked.ticks(1) == [1]

    events = mirror.events(ADA, linked.connection, linked.user.calendar_url)
    assert [e.start for e in events if name.removesuffix(".ics") in e.event_id] == [start]


def test_the_settings_page_polls_at_once_but_at_most_once_a_minute(conflict_only: World) -> None:
    world = conflict_only
    poller = world.graph.calendar_poller

    assert poller.poll_user(ADA) == 1  # conflict calendars too, whatever the tick
    assert poller.poll_user(ADA) == 0
    world.clock.moment += timedelta(seconds=59)
    assert poller.poll_user(ADA) == 0
    world.clock.moment += timedelta(seconds=2)
    assert poller.poll_user(ADA) == 1
    assert [m.reason for m in world.take()] == ["page", "page"]


def test_the_calendar_list_call_polls_too(conflict_only: World) -> None:
    conflict_only.graph.calendars.viewed(ADA)

    assert [m.reason for m in conflict_only.take()] == ["page"]


def test_a_revoked_password_marks_the_connection_needs_reauth_and_ends_its_polls(
    linked: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    linked.server.remove_user(linked.user.email)  # the app-specific password is revoked

    assert linked.ticks(1) == [1]

    connection = linked.graph.connection_store.get(ADA, linked.connection)
    assert connection is not None
    assert connection.status is ConnectionStatus.NEEDS_REAUTH
    assert linked.ticks(1) == [0]
    assert linked.graph.calendar_poller.poll_user(ADA) == 0
    assert linked.user.password not in caplog.text


def test_the_scan_finds_only_the_polled_providers_connections_with_their_status(make_integrations: Any) -> None:
    """The production store on DynamoDB Local (the fakes above answer like it)."""
    from crmsync.dal.connections import ConnectionStore
    from crmsync.domain import CredentialKind

    make_integrations()  # the composition root binds the models to this test's tables
    store = ConnectionStore()
    grace = Principal("tenant-poll", "grace")
    for who, connection_id, provider in (
        (ADA, "c-dav", "icloud"),
        (ADA, "c-google", "google"),
        (grace, "c-g2", "icloud"),
    ):
        store.upsert(
            who,
            connection_id=connection_id,
            provider=provider,
            subject=connection_id,
            email=f"{connection_id}@example.com",
            display_name=None,
            scopes=(),
            credential_ciphertext=b"sealed",
            credential_kind=CredentialKind.APP_PASSWORD if provider == "icloud" else CredentialKind.OAUTH_TOKENS,
        )
    stored = store.get_stored(grace, "c-g2")
    assert stored is not None
    store.set_status(grace, "c-g2", ConnectionStatus.NEEDS_REAUTH, "invalid_grant", version=stored.version)

    found = sorted(store.of_providers(frozenset({"icloud"})), key=lambda r: r[1])

    assert found == [(ADA, "c-dav", ConnectionStatus.CONNECTED), (grace, "c-g2", ConnectionStatus.NEEDS_REAUTH)]
    assert list(store.of_providers(frozenset())) == []
