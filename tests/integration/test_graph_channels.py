"""Graph subscriptions as calendar channels: opened, authenticated, renewed in place, and
acted on by lifecycle events — the real Channels, ChannelStore and MirrorStore on DynamoDB
Local, the real Graph adapter against the Graph emulator on a loopback server, and a loopback
webhook that answers the validation handshake and hands what Graph posts to the
graph_webhook's parsing (``parse_notifications``) and ``on_notification``.

Sources: learn.microsoft.com/graph/change-notifications-lifecycle-events
(``reauthorizationRequired`` → reauthorize or renew, ``subscriptionRemoved`` → create a new
subscription, ``missed`` → resync), graph/api/subscription-update (renew).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from crmsync.dal.channels import ChannelStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.sync_requests import SyncRequestStore
from crmsync.domain import Principal
from crmsync.logic.integrations import Integrations
from crmsync.messaging.messages import CalendarSyncRequest, sync_message_adapter
from crmsync.providers.graph.calendar import GraphCalendar
from crmsync.providers.graph.notifications import GraphNotification, parse_notifications
from crmsync.security.secrets import sha256_hex
from crmsync.sync.channels import RENEW_BEFORE, Channels, on_notification
from devstack.microsoft.graph import GraphState
from tests.fakes.world import RecordingQueue
from tests.support import clock
from tests.support.graph_user import GraphServer, GraphUser

pytestmark = pytest.mark.integration

WAIT = 5.0
CONNECTION = "ms-1"


class ManualClock:
    def __init__(self) -> None:
        self.now = clock.now()

    def __call__(self) -> datetime:
        return self.now


class Hook:
    """Answers Graph's handshakes; queues the raw bodies Graph posts (notifications and
    lifecycle notifications alike)."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[str] = queue.Queue()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if "validationToken" in request.args:
            response = Response(request.args["validationToken"], content_type="text/plain")
        else:
            self.bodies.put(request.get_data(as_text=True))
            response = Response(status=202)
        return response(environ, start_response)

    def next(self) -> GraphNotification:
        parsed = parse_notifications(self.bodies.get(timeout=WAIT), False)
        assert not isinstance(parsed, str), parsed
        [notification] = parsed
        return notification

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=WAIT)


@pytest.fixture(scope="module")
def ticks() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def graph(ticks: ManualClock) -> Iterator[GraphServer]:
    state = GraphState(ticks, validation_timeout=WAIT, delivery_timeout=WAIT)
    with GraphServer(state) as server:
        yield server
    state.notifications.close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


@dataclass
class Setup:
    principal: Principal
    user: GraphUser
    api: GraphCalendar
    channels: Channels
    graph: GraphServer
    ticks: ManualClock

    @property
    def calendar_id(self) -> str:
        return self.user.calendar_id

    def cursor(self) -> Any:
        return MirrorStore().cursor(self.principal, CONNECTION, self.calendar_id)

    def ensure(self, lifecycle: str = "", notified: str = "") -> str:
        return self.channels.ensure(
            self.principal, CONNECTION, self.calendar_id, self.api, lifecycle=lifecycle, notified=notified
        )

    def live(self) -> dict[str, Any]:
        return {s.id: s for s in self.graph.state.subscriptions.active(self.user.email)}


@pytest.fixture
def setup(integrations: Integrations, graph: GraphServer, ticks: ManualClock, hook: Hook) -> Setup:
    # (the integrations fixture binds the tables)
    user = GraphUser(graph)
    principal = Principal("tenant-graph-channels", user.email)
    mirror = MirrorStore()
    # A synced calendar: its sync state exists (the channel fields live on it).
    mirror.advance(
        principal, CONNECTION, user.calendar_id, mirror.cursor(principal, CONNECTION, user.calendar_id), "t", None, True
    )
    api = GraphCalendar(
        graph.base_url,
        lambda: user.token,
        tenant_id=principal.tenant_id,
        clock=ticks,
        lifecycle_url=hook.url("/lifecycle"),
    )
    channels = Channels(
        store=ChannelStore(),
        mirror=mirror,
        webhook_url=hook.url("/google-not-here"),
        subscription_url=hook.url("/calendar"),
        clock=ticks,
    )
    return Setup(principal, user, api, channels, graph, ticks)


def test_a_subscription_is_recorded_under_graphs_id_and_its_notifications_authenticate(
    setup: Setup, hook: Hook
) -> None:
    """The channel record is keyed by the id the provider answers (Graph assigns its own) and
    holds the clientState's hash; what Graph then posts passes ``on_notification``."""
    assert setup.ensure() == "opened"
    cursor = setup.cursor()
    [subscription] = setup.live().values()
    assert cursor.channel_id == subscription.id
    assert cursor.channel_expires_at == subscription.expiration
    assert subscription.notification_url == hook.url("/calendar")
    record = ChannelStore().get(subscription.id)
    assert record is not None
    assert record.token_hash == sha256_hex(subscription.client_state or "")

    setup.user.add("Dentist", setup.ticks.now + timedelta(days=1), setup.ticks.now + timedelta(days=1, hours=1))
    recorded = RecordingQueue()
    notification = hook.next()
    status = on_notification(notification.channel, ChannelStore(), SyncRequestStore(), recorded)

    assert status == (200, "enqueued")
    [message] = recorded.take()
    assert (message.calendar_id, message.reason) == (setup.calendar_id, "push")


def test_a_live_subscription_is_left_alone(setup: Setup) -> None:
    setup.ensure()
    before = setup.cursor()

    setup.ticks.now += timedelta(days=2)
    try:
        assert setup.ensure() == "live"
    finally:
        setup.ticks.now -= timedelta(days=2)
    assert setup.cursor().channel_expires_at == before.channel_expires_at


def test_a_subscription_expiring_within_a_day_is_renewed_in_place(setup: Setup) -> None:
    """graph/api/subscription-update: PATCH expirationDateTime; the same subscription (id,
    clientState) goes on, so no notification falls between two subscriptions."""
    setup.ensure()
    first = setup.cursor()
    record = ChannelStore().get(first.channel_id)
    assert first.channel_expires_at is not None
    assert record is not None
    moved = first.channel_expires_at - RENEW_BEFORE + timedelta(minutes=1) - setup.ticks.now
    setup.ticks.now += moved
    try:
        assert setup.ensure() == "renewed"
        renewed = setup.cursor()
        assert renewed.channel_id == first.channel_id
        assert renewed.channel_expires_at == setup.live()[first.channel_id].expiration > first.channel_expires_at
        after = ChannelStore().get(first.channel_id)
        assert after is not None
        assert (after.expires_at, after.token_hash) == (renewed.channel_expires_at, record.token_hash)
    finally:
        setup.ticks.now -= moved


def test_a_subscription_gone_at_graph_is_replaced_when_renewed(setup: Setup) -> None:
    """A renewal of a deleted or expired subscription is 404: a new one is opened and the old
    record dropped."""
    setup.ensure()
    first = setup.cursor()
    setup.api.stop_watch(first.channel_id, "")  # gone at Graph behind our back
    assert first.channel_expires_at is not None
    moved = first.channel_expires_at - RENEW_BEFORE + timedelta(minutes=1) - setup.ticks.now
    setup.ticks.now += moved
    try:
        assert setup.ensure() == "opened"
    finally:
        setup.ticks.now -= moved
    now = setup.cursor()
    assert now.channel_id not in (None, first.channel_id)
    assert list(setup.live()) == [now.channel_id]
    assert ChannelStore().get(first.channel_id) is None
    assert ChannelStore().get(now.channel_id or "") is not None


def test_a_subscription_without_its_record_is_replaced_and_deleted_at_graph(setup: Setup) -> None:
    """A subscription whose record is lost cannot be authenticated (its clientState is known
    only as the record's hash): at renewal it is replaced, and deleted at Graph rather than
    left to notify for up to a week."""
    setup.ensure()
    first = setup.cursor()
    ChannelStore().delete(first.channel_id)
    assert first.channel_expires_at is not None
    moved = first.channel_expires_at - RENEW_BEFORE + timedelta(minutes=1) - setup.ticks.now
    setup.ticks.now += moved
    try:
        assert setup.ensure() == "renewed"
    finally:
        setup.ticks.now -= moved
    now = setup.cursor()
    assert now.channel_id not in (None, first.channel_id)
    assert list(setup.live()) == [now.channel_id]
    assert ChannelStore().get(now.channel_id or "") is not None


def test_reauthorization_required_renews_a_live_subscription(setup: Setup) -> None:
    """change-notifications-lifecycle-events: answer ``reauthorizationRequired`` by
    reauthorizing; a renewal reauthorizes too (the emulator has no ``/reauthorize``)."""
    setup.ensure()
    first = setup.cursor()
    setup.ticks.now += timedelta(hours=1)
    try:
        assert setup.ensure(lifecycle="reauthorizationRequired", notified=first.channel_id) == "renewed"
    finally:
        setup.ticks.now -= timedelta(hours=1)
    renewed = setup.cursor()
    assert renewed.channel_id == first.channel_id
    assert renewed.channel_expires_at - first.channel_expires_at == timedelta(hours=1)


def test_subscription_removed_opens_a_new_subscription(setup: Setup, hook: Hook) -> None:
    """change-notifications-lifecycle-events: after ``subscriptionRemoved``, create a new
    subscription (the old one no longer exists at Graph)."""
    setup.ensure()
    first = setup.cursor()
    setup.graph.state.subscriptions.lifecycle(first.channel_id, "subscriptionRemoved")
    assert hook.next().lifecycle_event == "subscriptionRemoved"
    assert first.channel_id not in setup.live()

    assert setup.ensure(lifecycle="subscriptionRemoved", notified=first.channel_id) == "opened"

    now = setup.cursor()
    assert now.channel_id not in (None, first.channel_id)
    assert list(setup.live()) == [now.channel_id]
    assert ChannelStore().get(first.channel_id) is None


def test_a_lifecycle_event_of_a_subscription_replaced_since_changes_nothing(setup: Setup) -> None:
    """Graph may deliver a lifecycle event late (or twice): it acts on the calendar's current
    subscription only."""
    setup.ensure()
    first = setup.cursor()

    assert setup.ensure(lifecycle="subscriptionRemoved", notified="0f000000-0000-4000-8000-000000000000") == "live"
    assert setup.ensure(lifecycle="reauthorizationRequired", notified="0f000000-0000-4000-8000-000000000000") == "live"
    assert setup.cursor().channel_id == first.channel_id
    assert list(setup.live()) == [first.channel_id]


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved"])
def test_a_lifecycle_event_queues_its_own_sync_even_while_one_is_pending(setup: Setup, hook: Hook, event: str) -> None:
    """The webhook acts on nothing itself: it queues a sync naming the event and the
    subscription, never coalesced into a pending push sync (which would not act on it)."""
    setup.ensure()
    subscription_id = setup.cursor().channel_id
    setup.user.add("First", setup.ticks.now + timedelta(days=1), setup.ticks.now + timedelta(days=1, hours=1))
    recorded = RecordingQueue()
    assert on_notification(hook.next().channel, ChannelStore(), SyncRequestStore(), recorded) == (200, "enqueued")

    setup.graph.state.subscriptions.lifecycle(subscription_id, event)
    notification = hook.next()
    status = on_notification(
        notification.channel, ChannelStore(), SyncRequestStore(), recorded, lifecycle=notification.lifecycle_event
    )

    assert status == (200, "enqueued")
    push, lifecycle = recorded.take()
    # What the worker reads from the queue (the webhook sends the plain twin of the message).
    assert isinstance(sync_message_adapter.validate_json(lifecycle.model_dump_json()), CalendarSyncRequest)
    assert (push.reason, lifecycle.reason, lifecycle.channel_id) == ("push", event, subscription_id)


def test_missed_is_a_sync_like_a_change_and_coalesces(setup: Setup, hook: Hook) -> None:
    """``missed``: some change notifications were lost; resync with delta (the lifecycle
    doc) — the same coalesced sync a change asks for."""
    setup.ensure()
    subscription_id = setup.cursor().channel_id
    recorded = RecordingQueue()

    setup.graph.state.subscriptions.lifecycle(subscription_id, "missed")
    notification = hook.next()
    first = on_notification(
        notification.channel, ChannelStore(), SyncRequestStore(), recorded, lifecycle=notification.lifecycle_event
    )
    again = on_notification(
        notification.channel, ChannelStore(), SyncRequestStore(), recorded, lifecycle=notification.lifecycle_event
    )

    assert (first, again) == ((200, "enqueued"), (200, "coalesced"))
    [message] = recorded.take()
    assert (message.reason, message.channel_id) == ("push", "")


def test_a_forged_client_state_on_a_lifecycle_event_is_refused(setup: Setup, hook: Hook) -> None:
    setup.ensure()
    subscription_id = setup.cursor().channel_id
    setup.graph.state.subscriptions.lifecycle(subscription_id, "reauthorizationRequired")
    body = json.loads(hook.bodies.get(timeout=WAIT))
    body["value"][0]["clientState"] = "forged"
    parsed = parse_notifications(json.dumps(body), False)
    assert not isinstance(parsed, str)
    recorded = RecordingQueue()

    status = on_notification(
        parsed[0].channel, ChannelStore(), SyncRequestStore(), recorded, lifecycle=parsed[0].lifecycle_event
    )

    assert status[0] == 403
    assert recorded.take() == []
