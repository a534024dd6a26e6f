"""The Gmail emulator's "acting as the user" surface: the control routes and the page.

A change made there must look to the API exactly like the same change made in Gmail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

MAIL = "https://mail.google.com/"


def test_page_shows_the_mailbox_escaped_and_its_forms_act_as_the_user(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any]
) -> None:
    address = f"u{uuid.uuid4().hex[:10]}@example.com"
    gmail = google_service("gmail", "v1", address, [MAIL])
    base = google_emulator.base_url
    start = gmail.users().getProfile(userId="me").execute()["historyId"]

    delivered = requests.post(
        f"{base}/_emulator/gmail/messages",
        data={"email": address, "from": "x@example.net", "subject": "<script>alert(1)</script>", "text": "hi"},
        allow_redirects=False,
        timeout=10,
    )
    assert delivered.status_code == 303
    page = requests.get(f"{base}/_emulator/ui/gmail", params={"email": address}, timeout=10).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page

    message_id = gmail.users().messages().list(userId="me").execute()["messages"][0]["id"]
    marked = requests.post(
        f"{base}/_emulator/gmail/messages/{message_id}/labels",
        data={"email": address, "remove": "UNREAD"},
        allow_redirects=False,
        timeout=10,
    )
    assert marked.status_code == 303

    history = gmail.users().history().list(userId="me", startHistoryId=start).execute()["history"]
    assert [sorted(k for k in r if k not in ("id", "messages")) for r in history] == [
        ["messagesAdded"],
        ["labelsRemoved"],
    ]
    assert "UNREAD" not in gmail.users().messages().get(userId="me", id=message_id).execute()["labelIds"]


def test_demo_mailbox_seeding_is_idempotent_and_threaded(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any]
) -> None:
    seed = f"{google_emulator.base_url}/_emulator/gmail/seed"
    # The first call seeds unless the emulator already seeded its demo accounts at start.
    requests.post(seed, json={"email": "grace@example.org"}, timeout=10).raise_for_status()
    again = requests.post(seed, json={"email": "grace@example.org"}, timeout=10).json()["seeded"]
    gmail = google_service("gmail", "v1", "grace@example.org", [MAIL])

    profile = gmail.users().getProfile(userId="me").execute()
    assert profile["messagesTotal"] == 4
    assert again == []
    assert profile["threadsTotal"] == 3
    labels = {label["name"] for label in gmail.users().labels().list(userId="me").execute()["labels"]}
    assert "Customers" in labels


def test_unknown_account_is_refused_by_the_control_routes(google_emulator: GoogleEmulator) -> None:
    response = requests.post(
        f"{google_emulator.base_url}/_emulator/gmail/messages",
        json={"email": "nobody@nowhere.example", "from": "a@b.example"},
        timeout=10,
    )
    assert response.status_code == 400


def test_trash_untrash_and_draft_control_routes_act_as_the_user(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any]
) -> None:
    address = f"u{uuid.uuid4().hex[:10]}@example.com"
    gmail = google_service("gmail", "v1", address, [MAIL])
    base = f"{google_emulator.base_url}/_emulator/gmail"
    message_id = requests.post(f"{base}/messages", json={"email": address, "from": "x@example.net"}, timeout=10).json()[
        "id"
    ]
    start = gmail.users().getProfile(userId="me").execute()["historyId"]

    trashed = requests.post(f"{base}/messages/{message_id}/trash", json={"email": address}, timeout=10)
    restored = requests.post(f"{base}/messages/{message_id}/untrash", json={"email": address}, timeout=10)
    draft = requests.post(f"{base}/drafts", json={"email": address, "subject": "Later"}, timeout=10)

    assert trashed.status_code == 200
    assert "TRASH" in trashed.json()["labelIds"]
    assert "TRASH" not in restored.json()["labelIds"]
    assert draft.status_code == 201
    assert gmail.users().drafts().get(userId="me", id=draft.json()["draftId"]).execute()["message"]["labelIds"] == [
        "DRAFT"
    ]
    history = gmail.users().history().list(userId="me", startHistoryId=start).execute()["history"]
    assert [sorted(k for k in r if k not in ("id", "messages")) for r in history] == [
        ["labelsAdded"],
        ["labelsRemoved"],
        ["messagesAdded"],
    ]


def test_a_frozen_clock_moves_only_when_advanced(google_emulator: GoogleEmulator) -> None:
    base = google_emulator.base_url
    frozen = requests.post(f"{base}/_emulator/clock/freeze", json={"frozen": True}, timeout=10)
    try:
        first = requests.get(f"{base}/_emulator/clock", timeout=10).json()
        second = requests.get(f"{base}/_emulator/clock", timeout=10).json()
        advanced = requests.post(f"{base}/_emulator/clock/advance", json={"seconds": 2}, timeout=10).json()
    finally:
        thawed = requests.post(f"{base}/_emulator/clock/freeze", json={"frozen": False}, timeout=10).json()

    assert frozen.status_code == 200
    assert first["frozen"] is True
    assert first["now"] == second["now"]
    assert advanced["now"] == first["now"] + 2
    assert thawed["now"] >= advanced["now"]
    assert requests.get(f"{base}/_emulator/clock", timeout=10).json()["frozen"] is False
    assert requests.post(f"{base}/_emulator/clock/freeze", json={"frozen": "no"}, timeout=10).status_code == 400
