"""Issue 16 §3: Microsoft Graph's change and lifecycle notifications through the local stack
(API Gateway stand-in, `graph_webhook`, the calendar's "sync requested" mark in DynamoDB
Local, the SQS FIFO queue): the validation handshake with odd tokens, clientState forged,
unknown subscriptions, malformed bodies and a flood — rejected, 202 or coalesced, never 5xx.

Graph's side (subscriptions created by the adapter, notifications posted by the Microsoft
emulator) joins in a later step; here the subscription is registered as the adapter will."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests

from tests.support import clock

pytestmark = pytest.mark.e2e

CHANGES = "/webhooks/microsoft/calendar"
LIFECYCLE = "/webhooks/microsoft/lifecycle"
FLOOD = 60


@dataclass
class Subscription:
    subscription_id: str
    client_state: str
    principal: Any
    connection_id: str
    calendar_id: str


@pytest.fixture
def tables(stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's tables, bound in this process (to register subscriptions, read marks)."""
    from crmsync.models import bind_tables

    env = stack.function_environment("GraphWebhookFunction")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bind_tables(connections_table=env["CONNECTIONS_TABLE"], oauth_states_table=env["OAUTH_STATES_TABLE"])


@pytest.fixture
def subscription(tables: None, unique: str) -> Subscription:
    """A subscription of one calendar, stored as the channel upkeep stores it: the client
    state only as its hash."""
    from crmsync.dal.channels import Channel, ChannelStore
    from crmsync.domain import Principal
    from crmsync.security.secrets import sha256_hex

    made = Subscription(
        str(uuid.uuid4()), f"state-{uuid.uuid4().hex}", Principal(f"tenant-{unique}", "alice"), f"o{unique}", "AAMk-cal"
    )
    ChannelStore().put(
        Channel(
            channel_id=made.subscription_id,
            tenant_id=made.principal.tenant_id,
            user_id=made.principal.user_id,
            connection_id=made.connection_id,
            calendar_id=made.calendar_id,
            resource_id="",
            token_hash=sha256_hex(made.client_state),
            expires_at=clock.now() + timedelta(days=3),
        )
    )
    return made


def post(stack, path: str, body: Any = None, **params: str) -> requests.Response:
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    return requests.post(
        f"{stack.api_url}{path}", data=data, params=params, headers={"Content-Type": "application/json"}, timeout=30
    )


def change(sub: Subscription, **over: Any) -> dict[str, Any]:
    """A change notification as Graph posts it (learn.microsoft.com, change notification
    payload for Outlook events)."""
    return {
        "subscriptionId": sub.subscription_id,
        "subscriptionExpirationDateTime": (clock.now() + timedelta(days=2)).isoformat(),
        "changeType": "updated",
        "resource": f"Users/{uuid.uuid4()}/Events/AAMkAG{uuid.uuid4().hex}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": "AAMkAG…"},
        "clientState": sub.client_state,
        "tenantId": str(uuid.uuid4()),
        **over,
    }


def requested(sub: Subscription) -> bool:
    from crmsync.dal.sync_requests import SyncRequestStore

    return SyncRequestStore().read(sub.principal, sub.connection_id, sub.calendar_id).requested_at is not None


def logged(stack, since: int) -> list[dict[str, Any]]:
    return [json.loads(line) for _, line in stack.logs.snapshot()[since:] if '"graph notification"' in line]


# ---------------------------------------------------------------------- the handshake

TOKENS = {
    "graph-like": "Validation: Testing client application reachability for subscription Request-Id: "
    + str(uuid.uuid4()),
    "url-specials": "a+b/c=d&e?f%20g#h:i",
    "non-ascii": "Prüfung – ✓ 検証",
    "markup": "<script>alert(1)</script>",
    "one-char": "x",
}


@pytest.mark.parametrize(("path", "case"), [(CHANGES, case) for case in sorted(TOKENS)] + [(LIFECYCLE, "url-specials")])
def test_the_validation_token_is_echoed_url_decoded_as_plain_text(stack, path: str, case: str) -> None:
    """Graph POSTs ``?validationToken=<url-encoded>`` and wants it back decoded, 200,
    ``text/plain``, within 10 s (learn.microsoft.com, "Receive change notifications through
    webhooks": notification endpoint validation)."""
    answer = post(stack, path, validationToken=TOKENS[case])

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"
    assert answer.text == TOKENS[case]
    assert answer.elapsed.total_seconds() < 10


@pytest.mark.parametrize("token", ["", "line\nbreak", "x" * 5000])
def test_a_validation_token_graph_never_sends_is_refused(stack, token: str) -> None:
    assert post(stack, CHANGES, validationToken=token).status_code == 400


# ---------------------------------------------------------------------- notifications


def test_an_authentic_notification_is_accepted_and_requests_a_sync(stack, subscription: Subscription) -> None:
    before = len(stack.logs.snapshot())

    assert post(stack, CHANGES, {"value": [change(subscription)]}).status_code == 202

    assert requested(subscription)
    assert [entry["outcome"] for entry in logged(stack, before)] == ["enqueued"]


def test_a_forged_client_state_is_refused_and_requests_nothing(stack, subscription: Subscription) -> None:
    forged = "state-" + uuid.uuid4().hex
    before = len(stack.logs.snapshot())

    assert post(stack, CHANGES, {"value": [change(subscription, clientState=forged)]}).status_code == 403
    assert post(stack, CHANGES, {"value": [change(subscription, clientState="")]}).status_code == 403

    assert not requested(subscription)
    lines = [line for _, line in stack.logs.snapshot()[before:]]
    assert not any(forged in line or subscription.client_state in line for line in lines)


def test_an_unknown_subscription_is_acknowledged(stack, tables: None) -> None:
    unknown = Subscription(str(uuid.uuid4()), "whatever", None, "", "")
    before = len(stack.logs.snapshot())
    assert post(stack, CHANGES, {"value": [change(unknown)]}).status_code == 202
    assert [entry["outcome"] for entry in logged(stack, before)] == ["unknown channel"]


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
def test_a_lifecycle_notification_requests_a_sync(stack, subscription: Subscription, event: str) -> None:
    """learn.microsoft.com, "Reduce missing subscriptions and change notifications": the
    lifecycle events. ``missed`` asks for the coalesced sync a change asks for (it catches
    up); the other two queue a sync of their own, naming the event and the subscription, so
    the worker renews or recreates it after the sync (the webhook calls no provider)."""
    item = {
        "subscriptionId": subscription.subscription_id,
        "subscriptionExpirationDateTime": (clock.now() + timedelta(hours=1)).isoformat(),
        "tenantId": str(uuid.uuid4()),
        "clientState": subscription.client_state,
        "lifecycleEvent": event,
    }
    before = len(stack.logs.snapshot())
    assert post(stack, LIFECYCLE, {"value": [item]}).status_code == 202
    assert [entry["lifecycle_event"] for entry in logged(stack, before)] == [event]
    assert requested(subscription) is (event == "missed")
    stack.drain()
    synced = [
        json.loads(line)
        for _, line in stack.logs.snapshot()[before:]
        if '"calendar synced"' in line and subscription.connection_id in line
    ]
    # The connection is made up: the worker finds it not connected, after reading the message.
    assert [(e["reason"], e["outcome"]) for e in synced] == [("push" if event == "missed" else event, "not_connected")]


def test_a_lifecycle_event_with_a_forged_client_state_is_refused_and_one_of_an_unknown_subscription_acknowledged(
    stack, subscription: Subscription
) -> None:
    """The lifecycle route authenticates like the change route: a wrong ``clientState`` → 403
    and nothing queued (not even the uncoalesced sync of ``reauthorizationRequired``); an
    unknown subscription → 202, nothing queued."""
    forged = {
        "subscriptionId": subscription.subscription_id,
        "clientState": "state-" + uuid.uuid4().hex,
        "lifecycleEvent": "reauthorizationRequired",
    }
    unknown = {**forged, "subscriptionId": str(uuid.uuid4())}
    before = len(stack.logs.snapshot())

    assert post(stack, LIFECYCLE, {"value": [forged]}).status_code == 403
    assert post(stack, LIFECYCLE, {"value": [unknown]}).status_code == 202
    stack.drain()

    assert [entry["outcome"] for entry in logged(stack, before)] == [
        "channel token or resource mismatch",
        "unknown channel",
    ]
    assert not any(
        '"calendar synced"' in line and subscription.connection_id in line for _, line in stack.logs.snapshot()[before:]
    )


MALFORMED: dict[str, Any] = {
    "empty": "",
    "not-json": "{not json",
    "no-value": {"values": []},
    "value-not-a-list": {"value": {"subscriptionId": "x"}},
    "empty-value": {"value": []},
    "item-not-an-object": {"value": ["x"]},
    "no-subscription-id": {"value": [{"changeType": "updated", "clientState": "s"}]},
    "odd-subscription-id": {"value": [{"subscriptionId": "../../etc", "changeType": "updated"}]},
    "client-state-too-long": {"value": [{"subscriptionId": "a-b", "changeType": "updated", "clientState": "s" * 129}]},
    "client-state-not-text": {"value": [{"subscriptionId": "a-b", "changeType": "updated", "clientState": 7}]},
    "unknown-lifecycle": {"value": [{"subscriptionId": "a-b", "lifecycleEvent": "explode"}]},
    "neither": {"value": [{"subscriptionId": "a-b"}]},
    "deep-nesting": "[" * 100_000 + "]" * 100_000,
    "json-array": [1, 2, 3],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_body_is_refused_with_a_logged_reason(stack, tables: None, case: str) -> None:
    before = len(stack.logs.snapshot())
    assert post(stack, CHANGES, MALFORMED[case]).status_code == 400
    assert any('"rejected graph notification"' in line for _, line in stack.logs.snapshot()[before:])


def test_a_flood_is_accepted_and_coalesced_into_one_sync(stack, subscription: Subscription) -> None:
    """Graph may deliver many notifications at once (and again): all are accepted, one sync
    is queued, the others join its request (DESIGN.md "Coalescing notifications")."""
    body = {"value": [change(subscription)]}
    before = len(stack.logs.snapshot())
    # Four at a time: each concurrent request may start a sandbox, and eight cold starts at
    # once on a loaded 2-core machine can pass the stack's 10 s init limit (as Lambda's can).
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: post(stack, CHANGES, body).status_code, range(FLOOD)))
    assert answers == [202] * FLOOD
    outcomes = [entry["outcome"] for entry in logged(stack, before)]
    assert len(outcomes) == FLOOD
    assert outcomes.count("enqueued") == 1
    assert set(outcomes) == {"enqueued", "coalesced"}


def test_a_batch_with_a_forged_item_takes_the_authentic_ones_and_is_refused(stack, subscription: Subscription) -> None:
    answer = post(stack, CHANGES, {"value": [change(subscription, clientState="forged"), change(subscription)]})
    assert answer.status_code == 403
    assert requested(subscription)
