"""The Graph webhook's reading of what anyone may post: never an exception, always the
notifications or a reason (docs/API.md, "Microsoft Graph notifications")."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from crmsync.providers.graph.notifications import GraphNotification, parse_notifications, validation_token

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=4),
    max_leaves=20,
)
ITEM = st.fixed_dictionaries(
    {},
    optional={
        "subscriptionId": st.text(max_size=70) | st.uuids().map(str),
        "clientState": st.text(max_size=140) | st.integers(),
        "changeType": st.sampled_from(["created", "updated", "deleted"]) | st.integers(),
        "lifecycleEvent": st.sampled_from(["missed", "subscriptionRemoved", "reauthorizationRequired", "boom"]),
    },
)


@given(body=st.one_of(JSON.map(json.dumps), st.lists(ITEM, max_size=5).map(lambda v: json.dumps({"value": v}))))
def test_any_body_gives_notifications_or_a_reason(body: str) -> None:
    for encoded, flag in ((body, False), (base64.b64encode(body.encode()).decode(), True)):
        parsed = parse_notifications(encoded, flag)
        assert isinstance(parsed, str) or all(isinstance(n, GraphNotification) for n in parsed)


def test_a_change_and_a_lifecycle_notification_are_read() -> None:
    body = json.dumps(
        {
            "value": [
                {"subscriptionId": "7f105aaf-7a7a", "clientState": "s", "changeType": "created"},
                {"subscriptionId": "7f105aaf-7a7b", "clientState": "t", "lifecycleEvent": "missed"},
            ]
        }
    )
    parsed = parse_notifications(body, False)
    assert not isinstance(parsed, str)
    assert [(n.channel.channel_id, n.channel.token, n.lifecycle_event) for n in parsed] == [
        ("7f105aaf-7a7a", "s", None),
        ("7f105aaf-7a7b", "t", "missed"),
    ]


def test_bad_base64_and_oversize_bodies_are_refused() -> None:
    assert parse_notifications("not base64!", True) == "body is not base64"
    assert parse_notifications(json.dumps({"value": [{}] * 1001}), False) == "too many notifications"


@given(token=st.text(max_size=50))
def test_a_validation_token_is_echoed_only_when_printable(token: str) -> None:
    answer = validation_token({"validationToken": token})
    printable = bool(token) and all(ord(c) >= 0x20 and ord(c) != 0x7F for c in token)
    assert answer == (token if printable else "")
    assert validation_token({"other": token}) is None
    assert validation_token(None) is None
