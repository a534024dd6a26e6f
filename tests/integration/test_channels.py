"""Calendar push channels: authentication of notifications, renewal before expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal.channels import Channel, ChannelStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.notifications import ChannelReader, SyncMarks, Table
from crmsync.dal.settings import SettingsStore
from crmsync.dal.sync_requests import SyncRequestStore
from crmsync.domain import Principal
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from crmsync.models.base import ConnectionsTableItem
from crmsync.providers.google.push import parse_notification
from crmsync.security.secrets import sha256_hex
from crmsync.sync.calendar_sync import CalendarSync
from crmsync.sync.channels import Channels, on_notification
from crmsync.sync.coalesce import MAX_WAIT, QUIET, REQUEST_LOST_AFTER, settle
from tests.fakes.world import RecordingQueue
from tests.integration.test_connected_calendars import connect
from tests.support import clock
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
TOKEN = "the-channel-token-known-only-to-google-and-us"


@pytest.fixture
def channel(integrations: Integrations) -> Channel:  # (building the use cases binds the tables)
    c = Channel(
        channel_id="5b0f1d3e-1111-4222-8333-444455556666",
        tenant_id=ALICE.tenant_id,
        user_id=ALICE.user_id,
        connection_id="g1",
        calendar_id="ada@example.com",
        resource_id="res-1",
        token_hash=sha256_hex(TOKEN),
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )
    ChannelStore().put(c)
    return c


def headers(channel: Channel, **over: str) -> dict[str, str]:
    base = {
        "X-Goog-Channel-ID": channel.channel_id,
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "7",
        "X-Goog-Channel-Token": TOKEN,
    }
    return {**base, **over}


def notify(channel_headers: dict[str, str], queue: Any, clock: Callable[[], datetime] | None = None) -> tuple[int, str]:
    """What the google_webhook function does with the request's headers: its stores are the
    low-level ones (crmsync.dal.notifications) over the table the models are bound to; the
    worker's side (``settle``, the mark's reads) goes through PynamoDB, so both meet here."""
    parsed = parse_notification(channel_headers)
    if isinstance(parsed, str):
        return 400, parsed
    table = Table(str(ConnectionsTableItem.Meta.table_name))
    stores = (ChannelReader(table), SyncMarks(table))
    if clock is None:
        return on_notification(parsed, *stores, queue)
    return on_notification(parsed, *stores, queue, clock)


def test_an_authentic_notification_enqueues_one_sync(channel: Channel, recorded: RecordingQueue) -> None:
    assert notify(headers(channel), recorded) == (200, "enqueued")
    (message,) = recorded.take()
    assert (message.connection_id, message.calendar_id, message.reason) == ("g1", "ada@example.com", "push")


def test_a_notification_while_a_sync_is_queued_joins_it(channel: Channel, recorded: RecordingQueue) -> None:
    assert notify(headers(channel), recorded) == (200, "enqueued")
    assert notify(headers(channel), recorded) == (200, "coalesced")  # a duplicate
    assert notify(headers(channel, **{"X-Goog-Message-Number": "8"}), recorded) == (200, "coalesced")
    assert len(recorded.take()) == 1


@pytest.mark.parametrize(
    "forged",
    [
        {"X-Goog-Channel-Token": "guess"},
        {"X-Goog-Channel-Token": ""},
        {"X-Goog-Resource-ID": "another-resource"},
    ],
)
def test_a_wrong_token_or_resource_is_refused(
    channel: Channel, recorded: RecordingQueue, forged: dict[str, str]
) -> None:
    status, _ = notify(headers(channel, **forged), recorded)
    assert status == 403
    assert recorded.take() == []


def test_sync_messages_and_unknown_channels_are_acknowledged_and_ignored(
    channel: Channel, recorded: RecordingQueue
) -> None:
    assert notify(headers(channel, **{"X-Goog-Resource-State": "sync"}), recorded)[0] == 200
    unknown = headers(channel, **{"X-Goog-Channel-ID": "9d6c3a55-0000-4000-8000-000000000000"})
    assert notify(unknown, recorded) == (200, "unknown channel")
    assert recorded.take() == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Goog-Message-Number", "9" * 500),
        ("X-Goog-Message-Number", "seven"),
        ("X-Goog-Message-Number", "-7"),
        ("X-Goog-Message-Number", "7\x00"),
        ("X-Goog-Channel-ID", "x" * 5000),
        ("X-Goog-Channel-ID", "5b0f1d3e\x1b[31m"),
        ("X-Goog-Resource-State", "exists\r\nX-Injected: 1"),
        ("X-Goog-Resource-State", "deleted"),
        ("X-Goog-Resource-ID", "r" * 100_000),
        ("X-Goog-Channel-Token", "t\u00e9"),
        ("X-Goog-Channel-Token", "\udcff"),
        ("X-Goog-Channel-ID", ""),
    ],
)
def test_an_odd_header_value_is_refused_with_a_reason_never_an_error(
    channel: Channel, recorded: RecordingQueue, header: str, value: str
) -> None:
    """Issue 10 §3: a 500-digit message number on a live channel became a 256-character-max
    message field, and the ValidationError escaped (500)."""
    status, reason = notify(headers(channel, **{header: value}), recorded)
    assert status == 400
    assert reason in (f"malformed {header.lower()}", "not a channel notification", "unknown resource state")
    assert recorded.take() == []


def test_a_notification_without_a_message_number_is_still_authentic(channel: Channel, recorded: RecordingQueue) -> None:
    without = {k: v for k, v in headers(channel).items() if k != "X-Goog-Message-Number"}
    assert notify(without, recorded) == (200, "enqueued")


class Clock:
    """A clock the test moves; ``pause`` moves it (the worker's wait, without waiting)."""

    def __init__(self) -> None:
        self.now = clock.now()
        self.paused: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def pause(self, seconds: float) -> None:
        self.paused.append(seconds)
        self.advance(seconds)


def test_a_burst_queues_one_sync_and_what_arrives_during_it_exactly_one_trailing_sync(
    channel: Channel, recorded: RecordingQueue
) -> None:
    """DESIGN.md "Coalescing notifications", step by step: the worker waits for the burst to
    go quiet, takes the mark, lists; a change notified meanwhile queues one trailing sync."""
    moment, marks, who = Clock(), SyncRequestStore(), (ALICE, "g1", "ada@example.com")
    outcomes = []
    for n in range(50):
        outcomes.append(notify(headers(channel, **{"X-Goog-Message-Number": str(n + 2)}), recorded, moment)[1])
        moment.advance(0.05)
    assert outcomes == ["enqueued"] + ["coalesced"] * 49
    assert len(recorded.take()) == 1

    # The worker picks the message up while the burst goes on: it waits until the burst has
    # been quiet for QUIET, then takes the mark (and would list the calendar now).
    settle(marks, *who, clock=moment, pause=moment.pause)
    assert sum(moment.paused) == pytest.approx(QUIET.total_seconds() - 0.05)
    assert marks.read(*who).pending is False

    # Changes notified while that sync runs: exactly one trailing sync.
    trailing = [notify(headers(channel), recorded, moment)[1] for _ in range(20)]
    assert trailing == ["enqueued"] + ["coalesced"] * 19
    assert len(recorded.take()) == 1
    moment.advance(QUIET.total_seconds())
    moment.paused.clear()
    settle(marks, *who, clock=moment, pause=moment.pause)  # the burst is over: no wait
    assert moment.paused == []
    assert recorded.take() == []


def test_a_lone_notification_is_synced_without_waiting(channel: Channel, recorded: RecordingQueue) -> None:
    moment, marks, who = Clock(), SyncRequestStore(), (ALICE, "g1", "ada@example.com")
    notify(headers(channel), recorded, moment)
    assert settle(marks, *who, clock=moment, pause=moment.pause) == 0
    assert moment.paused == []


def test_an_endless_burst_is_synced_at_the_latest_max_wait_after_its_request(
    channel: Channel, recorded: RecordingQueue
) -> None:
    moment, marks, who = Clock(), SyncRequestStore(), (ALICE, "g1", "ada@example.com")
    notify(headers(channel), recorded, moment)
    moment.advance(0.1)
    notify(headers(channel), recorded, moment)

    def pause(seconds: float) -> None:  # the burst goes on while the worker waits
        moment.pause(seconds)
        notify(headers(channel), recorded, moment)

    settle(marks, *who, clock=moment, pause=pause)
    assert sum(moment.paused) == pytest.approx(MAX_WAIT.total_seconds() - 0.1)
    assert len(recorded.take()) == 1
    assert marks.read(*who).pending is False


def test_a_request_whose_message_was_lost_is_opened_again(channel: Channel, recorded: RecordingQueue) -> None:
    moment = Clock()
    assert notify(headers(channel), recorded, moment)[1] == "enqueued"
    moment.advance(REQUEST_LOST_AFTER.total_seconds() - 1)
    assert notify(headers(channel), recorded, moment)[1] == "coalesced"
    moment.advance(2)  # the queued sync never ran (dead-lettered, say)
    assert notify(headers(channel), recorded, moment)[1] == "enqueued"


class RefusingQueue:
    def send(self, message: Any) -> None:
        raise ConnectionError("the queue is unavailable")


def test_a_sync_that_could_not_be_queued_does_not_swallow_the_next_notification(
    channel: Channel, recorded: RecordingQueue
) -> None:
    with pytest.raises(ConnectionError):
        notify(headers(channel), RefusingQueue())
    assert notify(headers(channel), recorded) == (200, "enqueued")  # Google's retry


def test_a_channel_expiring_within_a_day_is_renewed_new_first_then_old_stopped(
    integrations: Integrations, calendars: Calendars, service_env, stack
) -> None:
    email = "renew-" + sha256_hex(str(datetime.now(UTC)))[:8] + "@example.com"
    connection_id = connect(integrations, ALICE, email, typed=True)
    calendars.refresh(ALICE, connection_id)

    def sync_at(moment: Callable[[], datetime]) -> None:
        settings = Settings.from_env(service_env)
        CalendarSync(
            connections=ConnectionStore(),
            settings=SettingsStore(),
            mirror=MirrorStore(),
            calendars=Graph(settings).connectors,
            channels=Channels(
                store=ChannelStore(), mirror=MirrorStore(), webhook_url=settings.calendar_webhook_url, clock=moment
            ),
        ).run(ALICE, connection_id, email)

    sync_at(lambda: datetime.now(UTC))
    first = MirrorStore().cursor(ALICE, connection_id, email)
    assert first.channel_id
    sync_at(lambda: datetime.now(UTC) + timedelta(days=5))  # two days left: kept
    assert MirrorStore().cursor(ALICE, connection_id, email).channel_id == first.channel_id

    sync_at(lambda: datetime.now(UTC) + timedelta(days=6, minutes=1))  # under a day left: renewed

    renewed = MirrorStore().cursor(ALICE, connection_id, email)
    assert renewed.channel_id not in (None, first.channel_id)
    live = {c["id"] for c in requests.get(f"{stack.google.base_url}/_emulator/calendar/channels", timeout=10).json()}
    assert renewed.channel_id in live
    assert first.channel_id not in live
    assert ChannelStore().get(first.channel_id or "") is None
    assert ChannelStore().get(renewed.channel_id or "") is not None


def test_disconnect_stops_the_channels_and_deletes_what_was_mirrored(
    integrations: Integrations, calendars: Calendars, calendar_sync, stack
) -> None:
    email = "bye-" + sha256_hex(str(datetime.now(UTC)))[:8] + "@example.com"
    connection_id = connect(integrations, ALICE, email, typed=True)
    calendars.refresh(ALICE, connection_id)
    soon = clock.days_ahead(20, 10)
    GoogleCalendarUser(stack.google.base_url, email).add(
        summary="x", start={"dateTime": clock.z(soon)}, end={"dateTime": clock.z(soon + timedelta(hours=1))}
    )
    calendar_sync.run(ALICE, connection_id, email)
    cursor = MirrorStore().cursor(ALICE, connection_id, email)
    assert cursor.channel_id
    assert MirrorStore().events(ALICE, connection_id, email)

    integrations.disconnect(ALICE, connection_id)

    live = {c["id"] for c in requests.get(f"{stack.google.base_url}/_emulator/calendar/channels", timeout=10).json()}
    assert cursor.channel_id not in live
    assert ChannelStore().get(cursor.channel_id) is None
    assert MirrorStore().events(ALICE, connection_id, email) == []
    assert MirrorStore().cursor(ALICE, connection_id, email).sync_token is None
