"""Two-way email sync over HTTP on the local stack (F8): enable through the consent (the
callback returns to the Email page), the watch the sync opens, and what a disconnect of the
mail account does — the watch stopped before the grant is revoked, pushes no longer accepted,
the synced mail forgotten — plus refusals of bad input."""

from __future__ import annotations

import uuid

import pytest

from crmsync.domain.sweeps import Sweep
from tests.e2e.test_integrations_api import Browser
from tests.support.gmail_user import GmailUser, message
from tests.support.google_consent import consent
from tests.support.google_user import GoogleCalendarUser
from tests.support.sweeps import fire_sweep_for

pytestmark = [pytest.mark.e2e]


def enable(alice: Browser, email: str) -> str:
    answer = alice.api("POST", "/v1/settings/email-sync", json={"window_days": 30})
    assert answer.status_code == 200, answer.text
    url = answer.json()["authorization_url"]
    assert url  # a new account: Google's consent first
    back = alice.http.get(consent(url, email), allow_redirects=False, timeout=30)
    assert back.status_code == 303
    assert "/settings/email?connected=" in back.headers["Location"]
    state = alice.api("GET", "/v1/settings/email-sync").json()
    assert state["account_email"] == email
    return str(state["connection_id"])


def test_disconnecting_the_mail_account_stops_its_watch_and_forgets_its_mail(stack, alice: Browser) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    gmail = GmailUser(stack.google.base_url, ada)
    marie = f"marie-{uuid.uuid4().hex[:8]}@curie.example"
    made = alice.api("POST", "/v1/contacts", json={"emails": [marie]}, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert made.status_code == 201, made.text
    contact_id = made.json()["id"]
    assert made.json()["email_sync"] is False  # no mailbox synced yet
    gmail.receive(message(marie, [ada], "Hello", "x"))

    connection_id = enable(alice, ada)
    stack.drain()

    assert alice.api("GET", "/v1/settings/email-sync").json()["state"] == "live"
    assert gmail.mailbox()["watch"] is not None
    assert alice.api("GET", f"/v1/contacts/{contact_id}").json()["email_sync"] is True
    assert [e["subject"] for e in alice.api("GET", f"/v1/contacts/{contact_id}/conversation").json()["items"]] == [
        "Hello"
    ]

    assert alice.api("DELETE", f"/v1/integrations/{connection_id}").status_code == 204
    stack.drain()

    assert gmail.mailbox()["watch"] is None  # stopped while the grant still worked
    assert alice.api("GET", "/v1/settings/email-sync").json()["state"] == "off"
    assert alice.api("GET", f"/v1/contacts/{contact_id}").json()["email_sync"] is False
    assert alice.api("GET", f"/v1/contacts/{contact_id}/conversation").json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"window_days": 0}, 422),
        ({"window_days": 366}, 422),
        ({"window_days": "90"}, 422),
        ({"connection_id": "g" + "x" * 200}, 422),
        ({"connection_id": "gnotmine"}, 404),
        ({"extra": True}, 422),
    ],
)
def test_enable_refuses_bad_input_with_a_problem(alice: Browser, body: dict, status: int) -> None:
    answer = alice.api("POST", "/v1/settings/email-sync", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["detail"]


def test_sync_now_with_sync_off_is_a_conflict(alice: Browser) -> None:
    answer = alice.api("POST", "/v1/settings/email-sync/run")
    assert answer.status_code == 409
    assert answer.json()["detail"] == "Two-way email sync is off; enable it first."


def test_the_hourly_safety_net_queues_the_mailbox_at_its_tick(stack, alice: Browser) -> None:
    """The mail sweep (every 5 minutes, one slot of the mailboxes a tick: each hourly) queues a
    sync of alice's mailbox at her tick — through the sweeps index and the batched sends — and
    the worker runs it: mail that arrived while Gmail published nothing (the watch lapsed) is
    synced by the sweep alone. Other tests' mailboxes may share the slot, so the tick's count
    is at least alice's."""
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    gmail = GmailUser(stack.google.base_url, ada)
    marie = f"marie-{uuid.uuid4().hex[:8]}@curie.example"
    made = alice.api("POST", "/v1/contacts", json={"emails": [marie]}, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert made.status_code == 201, made.text
    conversation = f"/v1/contacts/{made.json()['id']}/conversation"
    enable(alice, ada)
    stack.drain()

    gmail.lapse_watch()
    gmail.receive(message(marie, [ada], "Missed by the push", "x"))
    stack.drain()
    assert alice.api("GET", conversation).json()["items"] == []  # nothing told us

    fired = fire_sweep_for(stack, Sweep.MAIL, alice.tenant, alice.user)
    assert fired.payload["failed"] == 0
    stack.drain()

    assert [e["subject"] for e in alice.api("GET", conversation).json()["items"]] == ["Missed by the push"]
    after = alice.api("GET", "/v1/settings/email-sync").json()
    assert (after["state"], after["last_error"]) == ("live", None)
