"""Mail sent from the CRM over HTTP on the local stack (F8): an attachment uploaded through the
presigned S3 PUT, a message sent with it through the Gmail emulator and shown in the
conversation, the same Idempotency-Key replayed, and hostile input refused with problem
documents — never a header injected, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.e2e.test_integrations_api import Browser
from tests.support.gmail_user import GmailUser
from tests.support.google_consent import consent
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e]

MARIE = "marie@curie.example"


def enable_email_sync(alice: Browser, stack) -> GmailUser:
    """Alice connects a Google account of her own with Gmail's scopes through the consent page."""
    address = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    started = alice.api("POST", "/v1/settings/email-sync", json={})
    assert started.status_code == 200, started.text
    landing = alice.http.get(consent(started.json()["authorization_url"], address), allow_redirects=False, timeout=30)
    assert landing.status_code == 303, landing.text
    stack.drain()
    assert alice.api("GET", "/v1/settings/email-sync").json()["state"] == "live"
    return GmailUser(stack.google.base_url, address)


def new_contact(alice: Browser) -> str:
    made = alice.api("POST", "/v1/contacts", json={"given_name": "Marie", "emails": [MARIE]})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def send(alice: Browser, contact_id: str, body: dict[str, Any], key: str | None = None) -> requests.Response:
    headers = {"Idempotency-Key": key or str(uuid.uuid4())} if key != "" else {}
    return alice.api("POST", f"/v1/contacts/{contact_id}/messages", json=body, headers=headers)


def sent(user: GmailUser) -> list[dict[str, Any]]:
    return [m for m in user.mailbox()["messages"] if "SENT" in m["labelIds"]]


def test_upload_then_send_with_it_lands_in_sent_and_in_the_conversation_once(alice: Browser, stack) -> None:
    user = enable_email_sync(alice, stack)
    marie = new_contact(alice)
    data = b"%PDF-1.4 polonium\n" * 64
    ticket = alice.api(
        "POST", "/v1/uploads", json={"filename": "Notes (1).pdf", "content_type": "application/pdf", "size": len(data)}
    )
    assert ticket.status_code == 201, ticket.text
    upload = ticket.json()
    assert upload["method"] == "PUT"
    put = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=10)
    assert put.status_code == 200, put.text

    key = str(uuid.uuid4())
    body = {"subject": "Polonium", "text": "Attached.", "attachments": [upload["upload_id"]]}
    first = send(alice, marie, body, key)
    again = send(alice, marie, body, key)

    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    entry = first.json()
    assert (entry["subject"], entry["direction"], entry["text"].strip()) == ("Polonium", "outbound", "Attached.")
    shown = alice.api("GET", f"/v1/contacts/{marie}/conversation/{entry['message_key']}")
    assert shown.status_code == 200
    assert shown.json() == entry
    [out] = sent(user)
    assert (out["subject"], out["to"]) == ("Polonium", MARIE)
    assert [a["filename"] for a in entry["attachments"]] == ["Notes (1).pdf"]

    stack.drain()  # the sync sees the message in Sent: still one entry
    alice.api("POST", "/v1/settings/email-sync/run", json={})
    stack.drain()
    items = alice.api("GET", f"/v1/contacts/{marie}/conversation").json()["items"]
    assert [i["message_key"] for i in items] == [entry["message_key"]]
    events = [e for e in stack.bus_events("EmailSent") if e["detail"]["message_key"] == entry["message_key"]]
    assert len(events) == 1


def test_an_upload_over_gmails_limit_or_of_a_bad_type_is_a_422(alice: Browser) -> None:
    for body in (
        {"filename": "big.bin", "content_type": "application/octet-stream", "size": 25 * 1024 * 1024 + 1},
        {"filename": "a.pdf", "content_type": "pdf", "size": 10},
        {"filename": "a.pdf", "content_type": "application/pdf", "size": 0},
    ):
        refused = alice.api("POST", "/v1/uploads", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.headers["Content-Type"] == "application/problem+json"


def test_sending_without_an_idempotency_key_is_refused(alice: Browser, stack) -> None:
    user = enable_email_sync(alice, stack)
    marie = new_contact(alice)
    refused = send(alice, marie, {"subject": "x", "text": "x"}, key="")
    assert refused.status_code == 400, refused.text
    assert refused.json()["type"] == "urn:crmsync:problem:idempotency-key-missing"
    assert sent(user) == []


@pytest.mark.parametrize(
    "body",
    [
        {"subject": "Hello\r\nBcc: spy@evil.example", "text": "x"},
        {"subject": "Hello\nX-Injected: yes", "text": "x"},
        {"subject": "x" * 5000, "text": "x"},
        {"subject": "Hello", "text": "x", "to": ["marie@curie.example\r\nBcc: spy@evil.example"]},
        {"subject": "Hello", "text": "x", "cc": ["spy@evil.example>, <other@evil.example"]},
        {"subject": "Hello", "text": "x", "bcc": ["not-an-address"]},
        {"subject": "Hello"},
        {"subject": "Hello", "text": "x", "attachments": ["../../../bodies/x"]},
        {"subject": "Hello", "text": "x", "attachments": ["A" * 24]},
        {"subject": "Hello", "text": "x", "in_reply_to": "m" + "0" * 64},
        {"subject": "Hello", "text": "x", "unknown": 1},
    ],
)
def test_hostile_input_is_a_422_problem_and_nothing_is_sent(alice: Browser, stack, body: dict[str, Any]) -> None:
    user = enable_email_sync(alice, stack)
    marie = new_contact(alice)

    refused = send(alice, marie, body)

    assert refused.status_code == 422, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert sent(user) == []
    assert alice.api("GET", f"/v1/contacts/{marie}/conversation").json()["items"] == []


def test_another_tenants_contact_is_a_404_and_sending_without_mail_sync_a_409(alice: Browser, stack) -> None:
    mallory = Browser(stack, f"other-{uuid.uuid4().hex[:8]}", "mallory")
    marie = new_contact(alice)
    assert send(alice, marie, {"subject": "x", "text": "x"}).status_code == 409
    theirs = send(mallory, marie, {"subject": "x", "text": "x"})
    assert theirs.status_code == 404, theirs.text
    off = send(alice, marie, {"subject": "x", "text": "x"})
    assert off.json()["type"] == "urn:crmsync:problem:mail-send-unavailable"
