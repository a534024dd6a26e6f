"""The Graph calendar adapter's subscriptions (``watch``, ``renew_watch``, ``stop_watch``)
against the Microsoft emulator's Graph part on a loopback server, with a loopback webhook
that answers Graph's validation handshake (Graph POSTs ``?validationToken=…`` to the
notification and lifecycle URLs before it answers 201). One rule each.

Sources (learn.microsoft.com): graph/api/subscription-post-subscriptions (create, the
handshake), graph/api/resources/subscription (fields, the 10,080-minute maximum for Outlook
events, clientState), graph/api/subscription-update (renew), graph/api/subscription-delete,
graph/change-notifications-lifecycle-events (lifecycleNotificationUrl is set at creation; a
renewal also reauthorizes), graph/throttling (429 with Retry-After).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from crmsync.ports.errors import ProviderError, ProviderNotFound, RateLimited
from crmsync.providers.graph.calendar import SUBSCRIPTION_LIFETIME, GraphCalendar
from devstack.microsoft.graph import Fault, GraphState
from tests.support import clock
from tests.support.graph_user import GraphServer, GraphUser

pytestmark = pytest.mark.integration

TENANT = "tenant-graph-watch"
WAIT = 5.0  # seconds to wait for a delivery that must come (never a sleep)
SECRET = "client-state-known-only-to-graph-and-us"


class ManualClock:
    def __init__(self) -> None:
        self.now = clock.now()

    def __call__(self) -> datetime:
        return self.now


class Hook:
    """A webhook on 127.0.0.1: echoes validation tokens (or refuses them when ``refuse``),
    records notifications."""

    def __init__(self) -> None:
        self.refuse = False
        self.handshakes: queue.Queue[str] = queue.Queue()
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if "validationToken" in request.args:
            self.handshakes.put(request.path)
            response = (
                Response("no", status=500)
                if self.refuse
                else Response(request.args["validationToken"], content_type="text/plain")
            )
        else:
            self.notifications.put(request.get_json(force=True))
            response = Response(status=202)
        return response(environ, start_response)

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


@pytest.fixture
def user(graph: GraphServer) -> GraphUser:
    return GraphUser(graph)


def adapter(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook, *, lifecycle: bool = True
) -> GraphCalendar:
    return GraphCalendar(
        graph.base_url,
        lambda: user.token,
        tenant_id=TENANT,
        clock=ticks,
        lifecycle_url=hook.url("/lifecycle") if lifecycle else "",
    )


def test_watch_subscribes_to_the_calendars_events_and_returns_graphs_id_and_expiry(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """subscription-post-subscriptions: Graph answers 201 with the subscription it made; its
    ``id`` names it in every notification (``subscriptionId``), so the channel is keyed by
    Graph's id, not ours, and its expiry is Graph's answer."""
    port = adapter(graph, user, ticks, hook)

    watch = port.watch(user.calendar_id, channel_id="ours-not-graphs", address=hook.url("/calendar"), token=SECRET)

    [made] = graph.state.subscriptions.active(user.email)
    assert watch.channel_id == made.id != "ours-not-graphs"
    assert watch.resource_id == ""
    assert watch.expires_at == made.expiration
    assert (made.resource, made.change_types) == (
        f"me/calendars/{user.calendar_id}/events",
        ("created", "updated", "deleted"),
    )


def test_the_expiry_asked_for_is_just_under_graphs_maximum_for_events(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """resources/subscription: an Outlook event subscription lives at most 10,080 minutes;
    we ask for just under it (an hour's margin for clock skew)."""
    watch = adapter(graph, user, ticks, hook).watch(
        user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET
    )

    lifetime = watch.expires_at - ticks.now
    assert timedelta(minutes=10_080) - timedelta(hours=2) < lifetime < timedelta(minutes=10_080)
    assert abs(lifetime - SUBSCRIPTION_LIFETIME) < timedelta(seconds=1)


def test_both_urls_pass_the_handshake_before_the_subscription_exists(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """change-notifications-lifecycle-events: the lifecycleNotificationUrl can only be set when
    the subscription is created, and with webhooks both endpoints are validated."""
    adapter(graph, user, ticks, hook).watch(
        user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET
    )

    assert sorted([hook.handshakes.get(timeout=WAIT), hook.handshakes.get(timeout=WAIT)]) == [
        "/calendar",
        "/lifecycle",
    ]
    [made] = graph.state.subscriptions.active(user.email)
    assert (made.notification_url, made.lifecycle_url) == (hook.url("/calendar"), hook.url("/lifecycle"))


def test_without_a_lifecycle_url_none_is_asked_for(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """lifecycleNotificationUrl is optional (resources/subscription)."""
    adapter(graph, user, ticks, hook, lifecycle=False).watch(
        user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET
    )

    [made] = graph.state.subscriptions.active(user.email)
    assert made.lifecycle_url is None


def test_notifications_carry_the_token_as_client_state(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """resources/subscription, clientState: "the value of the clientState property sent with
    the subscription is compared with the value … received with each change notification"."""
    watch = adapter(graph, user, ticks, hook).watch(
        user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET
    )

    user.add("Dentist", ticks.now + timedelta(days=1), ticks.now + timedelta(days=1, hours=1))

    [notification] = hook.notifications.get(timeout=WAIT)["value"]
    assert (notification["subscriptionId"], notification["clientState"]) == (watch.channel_id, SECRET)
    assert notification["changeType"] == "created"


def test_a_failed_handshake_is_refused_for_good(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """subscription-post-subscriptions: a notification URL that does not echo the validation
    token gets 400 and no subscription; retrying the same request cannot help."""
    hook.refuse = True

    with pytest.raises(ProviderError) as refused:
        adapter(graph, user, ticks, hook).watch(
            user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET
        )

    assert not refused.value.retryable
    assert graph.state.subscriptions.active(user.email) == []


def test_renew_moves_the_expiry_and_the_subscription_keeps_notifying(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """subscription-update: PATCH ``expirationDateTime`` renews; the answer holds the new
    expiry. (A renewal also reauthorizes: change-notifications-lifecycle-events.)"""
    port = adapter(graph, user, ticks, hook)
    watch = port.watch(user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET)
    ticks.now += timedelta(days=3)  # the emulator's and the adapter's clock

    renewed = port.renew_watch(watch.channel_id)

    [made] = graph.state.subscriptions.active(user.email)
    assert renewed == made.expiration
    assert renewed - watch.expires_at == timedelta(days=3)
    user.add("After renewal", ticks.now + timedelta(days=1), ticks.now + timedelta(days=1, hours=1))
    [notification] = hook.notifications.get(timeout=WAIT)["value"]
    assert notification["subscriptionId"] == watch.channel_id


def test_stop_deletes_the_subscription(graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook) -> None:
    """subscription-delete: 204; Graph sends nothing more for it."""
    port = adapter(graph, user, ticks, hook)
    watch = port.watch(user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET)

    port.stop_watch(watch.channel_id, "")

    assert graph.state.subscriptions.active(user.email) == []
    user.add("Unseen", ticks.now + timedelta(days=1), ticks.now + timedelta(days=1, hours=1))
    assert graph.state.notifications.wait_idle(WAIT)
    assert hook.notifications.empty()


def test_renewing_or_stopping_a_gone_subscription_is_not_found(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook
) -> None:
    """A deleted or expired subscription is 404 (subscription-get/-update/-delete): the
    caller opens a new one (renewal) or counts it as stopped."""
    port = adapter(graph, user, ticks, hook)
    watch = port.watch(user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET)
    port.stop_watch(watch.channel_id, "")

    with pytest.raises(ProviderNotFound):
        port.renew_watch(watch.channel_id)
    with pytest.raises(ProviderNotFound):
        port.stop_watch(watch.channel_id, "")


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("POST", lambda port, cal, hook, sub: port.watch(cal, channel_id="c", address=hook, token=SECRET)),
        ("PATCH", lambda port, cal, hook, sub: port.renew_watch(sub)),
        ("DELETE", lambda port, cal, hook, sub: port.stop_watch(sub, "")),
    ],
)
def test_throttling_on_subscriptions_is_rate_limited_with_the_delay(
    graph: GraphServer, user: GraphUser, ticks: ManualClock, hook: Hook, method: str, call: Any
) -> None:
    """graph/throttling: 429 with Retry-After (seconds) — the queue retries after it."""
    port = adapter(graph, user, ticks, hook)
    watch = port.watch(user.calendar_id, channel_id="c", address=hook.url("/calendar"), token=SECRET)
    graph.state.faults.add(
        Fault("throttled_429", method=method, path="/v1.0/subscriptions", email=user.email, retry_after=17)
    )
    try:
        with pytest.raises(RateLimited) as limited:
            call(port, user.calendar_id, hook.url("/calendar"), watch.channel_id)
    finally:
        graph.state.faults.clear()

    assert limited.value.retry_after == 17


def test_an_expiry_in_another_offset_is_read_as_the_same_instant() -> None:
    """Graph writes instants with ``Z`` and seven fractional digits; an offset is read right."""
    from crmsync.providers.graph.calendar import _instant_of

    assert _instant_of("2031-05-06T07:08:09.1234567Z") == datetime(2031, 5, 6, 7, 8, 9, 123456, UTC)
    assert _instant_of("2031-05-06T09:08:09+02:00") == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
