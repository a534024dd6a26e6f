"""Contract tests of Gmail push notifications (users.watch / users.stop through an emulated
Pub/Sub push subscription), driven through google-api-python-client.

Notifications are real HTTP POSTs to a local receiver; the tests wait for the emulator's
push queue to drain (``push.wait_idle()``) instead of sleeping, and move the emulator clock
to cross the 1-notification-per-second and 7-day boundaries.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import google.auth.transport.requests
import pytest
import requests
from google.oauth2 import id_token
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

MAIL = "https://mail.google.com/"
PUSH_ACCOUNT = "gmail-api-push@system.gserviceaccount.com"
WEEK = 7 * 86400


class Receiver:
    """A local push endpoint that records every POST and answers 200, as Pub/Sub expects."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/pubsub/gmail"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Watched:
    """A fresh account with its own topic and push subscription to the receiver."""

    def __init__(self, emulator: GoogleEmulator, make: Callable[..., Any], receiver: Receiver, **subscription: str):
        self.emulator, self.make, self.receiver = emulator, make, receiver
        self.address = f"u{uuid.uuid4().hex[:10]}@example.com"
        self.topic = f"projects/crmsync-dev/topics/gmail-{uuid.uuid4().hex[:8]}"
        self.gmail = make("gmail", "v1", self.address, [MAIL])
        created = requests.post(
            f"{emulator.base_url}/_emulator/gmail/subscriptions",
            json={"topicName": self.topic, "pushEndpoint": receiver.url, **subscription},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        self.subscription = created.json()

    def refresh_token(self) -> None:
        self.gmail = self.make("gmail", "v1", self.address, [MAIL])

    def watch(self, **body: Any) -> dict[str, Any]:
        return dict(self.gmail.users().watch(userId="me", body={"topicName": self.topic, **body}).execute())

    def deliver(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("from", "marie@curie.example")
        fields.setdefault("subject", "Hello")
        response = requests.post(
            f"{self.emulator.base_url}/_emulator/gmail/messages", json={"email": self.address, **fields}, timeout=10
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def notifications(self) -> list[dict[str, Any]]:
        """Every push for this account so far (after the emulator's queue has drained)."""
        assert self.emulator.push.wait_idle(timeout=10)
        mine = []
        for item in self.receiver.received:
            data = json.loads(base64.b64decode(item["body"]["message"]["data"]))
            if data["emailAddress"] == self.address:
                mine.append({**item, "data": data})
        return mine

    def next_second(self) -> None:
        """Leave the 1-notification-per-second window."""
        self.emulator.advance_clock(1.01)


@pytest.fixture
def watched(google_emulator: GoogleEmulator, google_service: Callable[..., Any], receiver: Receiver) -> Watched:
    return Watched(google_emulator, google_service, receiver)


def test_watch_returns_history_id_and_an_expiration_7_days_ahead(
    watched: Watched, google_emulator: GoogleEmulator
) -> None:
    now_ms = requests.get(f"{google_emulator.base_url}/_emulator/clock", timeout=10).json()["now"] * 1000

    answer = watched.watch()

    profile = watched.gmail.users().getProfile(userId="me").execute()
    assert answer["historyId"] == profile["historyId"]
    assert isinstance(answer["expiration"], str)
    assert abs(int(answer["expiration"]) - (now_ms + WEEK * 1000)) < 60_000


def test_a_successful_watch_immediately_sends_one_notification(watched: Watched) -> None:
    answer = watched.watch()

    notifications = watched.notifications()

    assert len(notifications) == 1
    body = notifications[0]["body"]
    assert notifications[0]["data"] == {"emailAddress": watched.address, "historyId": answer["historyId"]}
    assert body["subscription"] == watched.subscription["name"]
    assert body["subscription"].startswith("projects/")
    assert "/subscriptions/" in body["subscription"]
    assert body["message"]["messageId"]
    assert body["message"]["publishTime"].endswith("Z")
    assert notifications[0]["path"] == "/pubsub/gmail"


def test_each_mailbox_change_notifies_the_new_history_id(watched: Watched) -> None:
    watched.watch()
    watched.next_second()

    watched.deliver()

    notifications = watched.notifications()
    profile = watched.gmail.users().getProfile(userId="me").execute()
    assert len(notifications) == 2
    assert notifications[-1]["data"]["historyId"] == profile["historyId"]
    assert int(notifications[-1]["data"]["historyId"]) > int(notifications[0]["data"]["historyId"])
    ids = [n["body"]["message"]["messageId"] for n in notifications]
    assert len(set(ids)) == 2


def test_push_carries_a_pubsub_oidc_token_that_verifies_against_published_keys(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any], receiver: Receiver
) -> None:
    watched = Watched(google_emulator, google_service, receiver)
    watched.watch()

    authorization = watched.notifications()[0]["headers"]["Authorization"]

    assert authorization.startswith("Bearer ")
    offset = int(requests.get(f"{google_emulator.base_url}/_emulator/clock", timeout=10).json()["offset"])
    claims = id_token.verify_token(
        authorization[7:],
        google.auth.transport.requests.Request(),
        audience=receiver.url,  # the audience defaults to the push endpoint URL
        certs_url=google_emulator.endpoints["certs_uri"],
        clock_skew_in_seconds=offset + 10,  # the emulator clock may run ahead of the wall clock
    )
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == PUSH_ACCOUNT
    assert claims["email_verified"] is True


def test_push_token_uses_the_configured_audience_and_service_account(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any], receiver: Receiver
) -> None:
    watched = Watched(
        google_emulator,
        google_service,
        receiver,
        audience="https://crm.example/gmail-push",
        serviceAccountEmail="push@crmsync-dev.iam.gserviceaccount.com",
    )
    watched.watch()

    token = watched.notifications()[0]["headers"]["Authorization"][7:]

    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["aud"] == "https://crm.example/gmail-push"
    assert payload["email"] == "push@crmsync-dev.iam.gserviceaccount.com"


def test_notifications_above_one_per_second_per_user_are_dropped(watched: Watched) -> None:
    watched.watch()
    watched.next_second()

    watched.deliver(subject="first")
    watched.deliver(subject="second, same second")
    assert len(watched.notifications()) == 2  # the watch's own + the first change

    watched.next_second()
    watched.deliver(subject="third, a second later")
    assert len(watched.notifications()) == 3


def test_label_filter_include_notifies_only_changes_with_those_labels(watched: Watched) -> None:
    watched.watch(labelIds=["INBOX"], labelFilterBehavior="include")
    watched.next_second()

    watched.deliver(labelIds=["SPAM"])
    assert len(watched.notifications()) == 1
    watched.next_second()
    watched.deliver(labelIds=["INBOX"])
    assert len(watched.notifications()) == 2


def test_label_filter_exclude_skips_changes_with_those_labels(watched: Watched) -> None:
    watched.watch(labelIds=["SPAM"], labelFilterBehavior="exclude")
    watched.next_second()

    watched.deliver(labelIds=["SPAM"])
    assert len(watched.notifications()) == 1
    watched.next_second()
    watched.deliver(labelIds=["INBOX"])
    assert len(watched.notifications()) == 2


def test_stop_ends_notifications(watched: Watched) -> None:
    watched.watch()
    watched.gmail.users().stop(userId="me").execute()
    watched.next_second()

    watched.deliver()

    assert len(watched.notifications()) == 1


def test_watch_must_be_renewed_within_7_days(watched: Watched) -> None:
    watched.watch()
    watched.emulator.advance_clock(WEEK + 1)
    watched.refresh_token()

    watched.deliver()
    assert len(watched.notifications()) == 1  # lapsed: nothing more

    watched.watch()  # renewal
    watched.next_second()
    watched.deliver()
    assert len(watched.notifications()) == 3


def test_watch_on_a_malformed_or_unknown_topic_fails(watched: Watched) -> None:
    with pytest.raises(HttpError) as malformed:
        watched.gmail.users().watch(userId="me", body={"topicName": "gmail-topic"}).execute()
    with pytest.raises(HttpError) as unknown:
        watched.gmail.users().watch(userId="me", body={"topicName": "projects/p/topics/missing"}).execute()

    assert malformed.value.status_code == 400
    assert unknown.value.status_code == 404
