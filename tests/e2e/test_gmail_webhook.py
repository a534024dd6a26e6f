"""Issue 14 §3: Gmail's Pub/Sub pushes through the local stack (API Gateway stand-in,
`google_webhook`, the mailbox's "sync requested" mark in DynamoDB Local, the SQS FIFO queue,
`sync_worker`). Tokens are real RS256 JWTs: signed by the emulator's key (the one its certs
URL publishes) or, forged, by a key made here."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import clock

pytestmark = pytest.mark.e2e

PATH = "/webhooks/google/gmail"
BURST = 30


@dataclass
class Mailbox:
    email: str
    principal: Any
    connection_id: str


@pytest.fixture
def tables(stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's tables, bound in this process (to register mailboxes and read marks)."""
    from crmsync.models import bind_tables

    env = stack.function_environment("GoogleWebhookFunction")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bind_tables(connections_table=env["CONNECTIONS_TABLE"], oauth_states_table=env["OAUTH_STATES_TABLE"])


@pytest.fixture
def mailbox(stack, tables: None, unique: str) -> Mailbox:
    """A mailbox a user of this test's tenant syncs (as enabling the Email sync registers it)."""
    from crmsync.dal.mail_sync import MailboxDirectory
    from crmsync.domain import Principal

    box = Mailbox(f"box-{unique}@example.com", Principal(f"tenant-{unique}", "alice"), f"conn-{unique}")
    MailboxDirectory().register(box.principal, box.connection_id, box.email)
    return box


def claims(stack, **over: Any) -> dict[str, Any]:
    """The claims of Pub/Sub's OIDC token for the stack's push subscription, at the running clock."""
    now = int(clock.now().timestamp())
    return {
        "iss": "https://accounts.google.com",
        "aud": stack.parameters["GmailPushAudience"],
        "azp": "108526617465520651379",
        "sub": "108526617465520651379",
        "email": stack.parameters["GmailPushServiceAccount"],
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        **over,
    }


def envelope(email: str, history_id: Any = "9876543210", **message: Any) -> str:
    data = base64.b64encode(json.dumps({"emailAddress": email, "historyId": history_id}).encode()).decode()
    return json.dumps(
        {
            "message": {"data": data, "messageId": str(uuid.uuid4().int)[:16], "publishTime": "x", **message},
            "subscription": "projects/emulator/subscriptions/crmsync-gmail-push",
        }
    )


def push(stack, body: str, authorization: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return requests.post(f"{stack.api_url}{PATH}", data=body, headers=headers, timeout=30).status_code


def bearer(stack, **over: Any) -> str:
    return "Bearer " + stack.google.sign(claims(stack, **over))


def requested(box: Mailbox) -> bool:
    """Whether a push opened a sync request for the mailbox (its coalescing mark)."""
    from crmsync.dal.sync_requests import SyncRequestStore
    from crmsync.sync.mail_requests import MAILBOX_RESOURCE

    return SyncRequestStore().read(box.principal, box.connection_id, MAILBOX_RESOURCE).requested_at is not None


def pushes_logged(stack, since: int) -> list[str]:
    return [line for _, line in stack.logs.snapshot()[since:] if '"gmail push"' in line]


def synced(stack, box: Mailbox) -> int:
    """Runs of the mail sync the worker made for the mailbox's connection."""
    return sum(1 for line in stack.logs.lines() if '"gmail synced"' in line and box.connection_id in line)


def forged(stack) -> str:
    """A token with every right claim and the emulator's key id, signed by another key."""
    kid = jwt.get_unverified_header(stack.google.sign(claims(stack)))["kid"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return "Bearer " + jwt.encode(claims(stack), key, algorithm="RS256", headers={"kid": kid})


REFUSED = {
    "forged-signature": (forged, 401),
    "expired": (lambda s: bearer(s, iat=claims(s)["iat"] - 7200, exp=claims(s)["iat"] - 3600), 401),
    "wrong-audience": (lambda s: bearer(s, aud="https://elsewhere.example.com/webhooks/google/gmail"), 401),
    "wrong-issuer": (lambda s: bearer(s, iss=s.google.base_url), 401),
    "wrong-email": (lambda s: bearer(s, email="someone@attacker.iam.gserviceaccount.com"), 403),
    "email-not-verified": (lambda s: bearer(s, email_verified=False), 403),
    "no-authorization": (lambda s: None, 401),
    "not-bearer": (lambda s: "Basic " + s.google.sign(claims(s)), 401),
    "no-scheme": (lambda s: s.google.sign(claims(s)), 401),
    "garbled-token": (lambda s: "Bearer not-a-jwt", 401),
    "garbled-segments": (lambda s: "Bearer eyJhbGciOiJSUzI1NiJ9.e30.AAAA", 401),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_push_without_pubsubs_token_for_our_subscription_is_refused_and_requests_nothing(
    stack, mailbox: Mailbox, case: str
) -> None:
    make, status = REFUSED[case]
    authorization = make(stack)
    before = len(stack.logs.snapshot())
    assert push(stack, envelope(mailbox.email), authorization) == status
    assert not requested(mailbox)
    logged = pushes_logged(stack, before)
    assert logged
    assert all(f'"status":{status}' in line for line in logged), logged
    if authorization:
        token = authorization.split(" ")[-1]
        assert not any(token in line for _, line in stack.logs.snapshot()[before:])  # never the token


def test_an_authentic_push_requests_one_sync_that_the_worker_runs(stack, mailbox: Mailbox) -> None:
    before = synced(stack, mailbox)
    assert push(stack, envelope(mailbox.email.upper(), history_id=12345), bearer(stack)) == 200
    assert requested(mailbox)
    stack.drain()
    assert synced(stack, mailbox) == before + 1


def test_gmails_own_push_through_the_emulators_pubsub_subscription_requests_a_sync(
    stack, tables: None, unique: str
) -> None:
    """The whole way: users.watch on the stack's topic makes Gmail push at once; the emulator's
    Pub/Sub subscription (created by the stack) signs it and posts it to the webhook."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    from crmsync.dal.mail_sync import MailboxDirectory
    from crmsync.domain import Principal

    box = Mailbox(f"watched-{unique}@example.com", Principal(f"tenant-{unique}", "alice"), f"conn-{unique}")
    MailboxDirectory().register(box.principal, box.connection_id, box.email)
    minted = requests.post(
        f"{stack.google.base_url}/_emulator/tokens",
        json={"email": box.email, "scopes": ["https://www.googleapis.com/auth/gmail.readonly"]},
        timeout=10,
    )
    minted.raise_for_status()
    gmail = build(
        "gmail",
        "v1",
        credentials=Credentials(token=minted.json()["access_token"]),
        client_options={"api_endpoint": stack.google.base_url + "/"},
        static_discovery=True,
        cache_discovery=False,
    )
    before = len(stack.logs.snapshot())
    gmail.users().watch(userId="me", body={"topicName": stack.parameters["GmailTopic"]}).execute()
    assert stack.google.push.wait_idle(timeout=30)
    logged = pushes_logged(stack, before)
    assert len(logged) == 1, logged
    assert '"outcome":"enqueued 1 of 1"' in logged[0]
    stack.drain()
    assert synced(stack, box) == 1


def test_a_burst_requests_one_sync_and_a_push_after_it_started_one_trailing_sync(stack, mailbox: Mailbox) -> None:
    """DESIGN.md "Coalescing notifications", for a mailbox: the pushes of a burst join the first
    one's request; once the worker has taken it, the next push opens one more."""
    token = bearer(stack)
    before = len(stack.logs.snapshot())
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: push(stack, envelope(mailbox.email), token), range(BURST)))
    assert answers == [200] * BURST
    outcomes = [json.loads(line)["outcome"] for line in pushes_logged(stack, before)]
    assert sorted(set(outcomes)) == ["coalesced", "enqueued 1 of 1"], outcomes
    assert outcomes.count("enqueued 1 of 1") == 1
    stack.drain()
    assert synced(stack, mailbox) == 1

    assert push(stack, envelope(mailbox.email), token) == 200  # after the sync took the mark
    stack.drain()
    assert synced(stack, mailbox) == 2


def test_a_push_for_a_mailbox_nobody_syncs_is_acknowledged_and_requests_nothing(
    stack, tables: None, unique: str
) -> None:
    before = len(stack.logs.snapshot())
    assert push(stack, envelope(f"nobody-{unique}@example.com"), bearer(stack)) == 200
    logged = pushes_logged(stack, before)
    assert len(logged) == 1, logged
    assert '"outcome":"unknown mailbox"' in logged[0]


def _data(raw: bytes) -> str:
    return json.dumps({"message": {"data": base64.b64encode(raw).decode(), "messageId": "1"}})


MALFORMED = {
    "not-json": lambda box: "{not json",
    "json-array": lambda box: "[]",
    "no-message": lambda box: json.dumps({"subscription": "s"}),
    "message-not-object": lambda box: json.dumps({"message": "hello"}),
    "no-message-id": lambda box: json.dumps({"message": {"data": "e30="}}),
    "no-data": lambda box: json.dumps({"message": {"messageId": "1"}}),
    "data-not-base64": lambda box: json.dumps({"message": {"data": "%%%", "messageId": "1"}}),
    "data-not-json": lambda box: _data(b"\xff\xfe"),
    "data-not-object": lambda box: _data(b'"text"'),
    "no-email": lambda box: _data(json.dumps({"historyId": "1"}).encode()),
    "email-with-newline": lambda box: _data(json.dumps({"emailAddress": box.email + "\n", "historyId": "1"}).encode()),
    "history-not-numeric": lambda box: envelope(box.email, history_id="12a"),
    "history-negative": lambda box: envelope(box.email, history_id=-1),
    "history-boolean": lambda box: envelope(box.email, history_id=True),
    "huge-body": lambda box: envelope(box.email, padding="x" * 40_000),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_an_authentic_push_with_a_malformed_envelope_is_a_logged_400(stack, mailbox: Mailbox, case: str) -> None:
    before = len(stack.logs.snapshot())
    assert push(stack, MALFORMED[case](mailbox), bearer(stack)) == 400
    assert not requested(mailbox)
    logged = pushes_logged(stack, before)
    assert len(logged) == 1, logged
    assert '"status":400' in logged[0]
