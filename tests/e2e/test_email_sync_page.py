"""Email (2-way sync) on the Email settings page in headless Chromium (F8): with no account,
"Enable" connects one through Google's consent (Gmail's boxes ticked) and comes back to the
page; the backfill brings a contact's past mail into their conversation and the sync turns
live; new mail arrives through Gmail's signed Pub/Sub push; a never-log contact's mail stays
out; unticking Gmail's box is explained and sync stays off;
"Disable" (confirmed) turns it off and removes the mail brought in. Each state passes axe,
at both widths."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser_checks import axe_violations, shoot
from tests.e2e.test_integrations_api import Browser
from tests.e2e.test_integrations_page import WIDTHS, fits_the_width
from tests.support.gmail_user import GmailUser, message
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

READ_BOX = "View your email messages and settings"
SEND_BOX = "Send email on your behalf"


def passes_axe(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], "\n".join(violations)


def open_page(page: Page, stack, alice: Browser) -> None:
    page.goto(f"{stack.api_url}/settings/email#token={alice.token}")
    expect(page.locator("#sync-loading")).to_be_hidden()


def new_contact(alice: Browser, email: str) -> str:
    response = alice.api(
        "POST",
        "/v1/contacts",
        json={"given_name": "Marie", "emails": [email]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def conversation(alice: Browser, contact_id: str) -> list[str]:
    response = alice.api("GET", f"/v1/contacts/{contact_id}/conversation")
    assert response.status_code == 200, response.text
    return [entry["subject"] for entry in response.json()["items"]]


def enable_with_a_new_account(page: Page, email: str, untick: tuple[str, ...] = ()) -> None:
    expect(page.get_by_label("Gmail account")).to_have_value("")  # no account yet: connect one
    page.get_by_role("button", name="Enable").click()
    # Google's consent page: Gmail's read and send boxes are asked for and ticked.
    expect(page.get_by_label(READ_BOX)).to_be_checked()
    expect(page.get_by_label(SEND_BOX)).to_be_checked()
    for box in untick:
        page.get_by_label(box).uncheck()
    page.locator(f'button[data-email="{email}"]').click()
    page.wait_for_url("**/settings/email**")


@WIDTHS
def test_enable_backfill_sync_now_and_disable(
    page: Page, stack, alice: Browser, width: int, console_errors: list[str]
) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    gmail = GmailUser(stack.google.base_url, ada)
    marie_email = f"marie-{uuid.uuid4().hex[:8]}@curie.example"
    marie = new_contact(alice, marie_email)
    gmail.receive(message(f"Marie <{marie_email}>", [ada], "Before sync", "Old news"))
    gmail.receive(message(f"someone-{uuid.uuid4().hex[:6]}@elsewhere.example", [ada], "Not a contact", "x"))
    open_page(page, stack, alice)
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "email-sync-off")

    enable_with_a_new_account(page, ada)

    expect(page.locator("#notice")).to_have_text(re.compile("Email sync is on"))
    expect(page.locator("#sync-email")).to_have_text(ada)
    # The backfill runs in the worker (the test plays the queue); the page follows it until live.
    stack.drain()
    expect(page.locator("#sync-state")).to_have_attribute("data-state", "live", timeout=15_000)
    expect(page.locator("#sync-state")).to_have_text(re.compile("^Live"))
    assert conversation(alice, marie) == ["Before sync"]
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "email-sync-live")

    # New mail reaches the conversation through Gmail's own push: the watch the sync opened,
    # the emulator's Pub/Sub subscription (a signed OIDC token), the webhook, the worker.
    box = gmail.mailbox()
    assert box["watch"] is not None
    dropped = box["pushesDroppedByRate"]
    gmail.receive(message(marie_email, [ada], "After push", "New news"))
    assert stack.google.push.wait_idle(timeout=30)
    # Gmail drops notifications above 1/s; the checks above took longer than that.
    assert gmail.mailbox()["pushesDroppedByRate"] == dropped
    stack.drain()
    assert sorted(conversation(alice, marie)) == ["After push", "Before sync"]

    # Mail from a contact on the never-log list is not brought in; "Sync now" syncs at once.
    pierre_email = f"pierre-{uuid.uuid4().hex[:8]}@curie.example"
    pierre = new_contact(alice, pierre_email)
    added = alice.api("POST", "/v1/settings/never-log", json={"entry": pierre_email})
    assert added.status_code == 201, added.text
    gmail.receive(message(pierre_email, [ada], "Personal", "private"))
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#notice")).to_have_text("A sync was started.")
    stack.drain()
    assert conversation(alice, pierre) == []
    assert sorted(conversation(alice, marie)) == ["After push", "Before sync"]

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("alertdialog")).to_be_visible()
    page.get_by_role("button", name="Disable sync").click()
    expect(page.locator("#notice")).to_have_text(re.compile("Email sync is off"))
    expect(page.locator("#sync-form")).to_be_visible()
    expect(page.get_by_label("Gmail account")).to_have_value(re.compile(".+"))  # the account stays connected
    stack.drain()
    assert conversation(alice, marie) == []
    assert console_errors == []


def test_unticking_gmail_access_is_explained_and_sync_stays_off(
    page: Page, stack, alice: Browser, console_errors: list[str]
) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    open_page(page, stack, alice)

    enable_with_a_new_account(page, ada, untick=(READ_BOX,))

    expect(page.locator("#notice")).to_have_text(re.compile("Google did not grant access to your mail"))
    expect(page.locator("#sync-form")).to_be_visible()
    state = alice.api("GET", "/v1/settings/email-sync").json()
    assert state["state"] == "off"
    passes_axe(page)
    assert console_errors == []
