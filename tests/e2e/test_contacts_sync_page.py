"""Google Sync on the Integrations page in headless Chromium (F10, seed 004 step 1 and the state
after step 5): "Enable Google Sync" on a connected account goes through Google's consent and
the account is then marked with its sync state; an unticked contacts box is explained and the
button stays; with no account the button connects one; "Turn off" brings the button back; an
API refusal shows in the notice. Each state passes axe and is photographed, at both widths
where the layout changes."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser_checks import axe_violations, shoot
from tests.e2e.test_integrations_api import Browser, needs_reauth
from tests.e2e.test_integrations_page import WIDTHS, fits_the_width, sign_in_with
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: The contacts box on Google's consent page (the words Google shows for the contacts scope).
CONTACTS_BOX = "See, edit, download, and permanently delete your contacts"
SCOPE_MISSING = (
    f"Google Sync was not turned on: the box “{CONTACTS_BOX}” was not ticked at Google, and the CRM "
    "needs it to sync your contacts. Click “Enable Google Sync” again and leave that box ticked."
)


def passes_axe(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], "\n".join(violations)


def press_tab_until_focused(page: Page, target: Locator, limit: int = 40) -> None:
    """Reach ``target`` with the Tab key alone, from the top of the page."""
    page.locator("body").focus()
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} is not reachable with Tab")


def open_page(page: Page, stack, alice: Browser) -> None:
    page.goto(f"{stack.api_url}/settings/integrations#token={alice.token}")
    expect(page.get_by_text("Loading your connected accounts…")).to_be_hidden()


def sync_state(alice: Browser) -> dict:
    response = alice.api("GET", "/v1/contacts/sync")
    assert response.status_code == 200, response.text
    return response.json()


def enable_button(row: Locator, email: str) -> Locator:
    return row.get_by_role("button", name=f"Enable Google Sync for {email}", exact=True)


#: The states of a contacts account right after enabling: the first sync runs in the
#: background, so it may already be done (an account with nothing to review: Complete).
ON = re.compile(r"^(syncing|complete)$")


def is_marked_syncing(row: Locator, email: str) -> None:
    """The contacts account: marked, its state instead of the button, and "Turn off"."""
    expect(row).to_have_attribute("data-sync", ON)
    expect(row.locator(".sync-mark .badge")).to_have_text("Google Sync")
    expect(row.locator(".sync-mark")).to_be_visible()
    expect(row.locator("span.sync-state")).to_have_text(re.compile(r"^(Syncing…|Complete)$"))
    expect(row.locator("span.sync-state")).to_be_visible()
    expect(enable_button(row, email)).to_be_hidden()
    expect(row.get_by_role("button", name=f"Turn off Google Sync for {email}", exact=True)).to_be_visible()


def is_not_marked(row: Locator, email: str) -> None:
    expect(row).not_to_have_attribute("data-sync", ON)
    expect(row.locator(".sync-mark")).to_be_hidden()
    expect(row.locator(".sync-state")).to_have_count(2)
    for state in row.locator(".sync-state").all():
        expect(state).to_be_hidden()
    expect(row.get_by_role("button", name=f"Turn off Google Sync for {email}")).to_have_count(0)
    expect(enable_button(row, email)).to_be_visible()
    expect(enable_button(row, email)).to_be_enabled()


def enable_through_the_page(page: Page, row: Locator, email: str) -> None:
    enable_button(row, email).click()
    expect(page.get_by_label(CONTACTS_BOX)).to_be_checked()
    page.locator(f'button[data-email="{email}"]').click()
    page.wait_for_url("**/settings/integrations**")


@WIDTHS
def test_enable_on_an_existing_account_by_keyboard_marks_it_syncing(
    page: Page, stack, alice: Browser, width: int, console_errors: list[str]
) -> None:
    open_page(page, stack, alice)
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    sign_in_with(page, ada)  # a plain sign-in: calendar only, no contacts
    row = page.locator(f'li.account[data-email="{ada}"]')
    is_not_marked(row, ada)
    expect(page.locator("#enable-sync-new")).to_be_hidden()  # there is an account: its own button
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "integrations-sync-offered")

    press_tab_until_focused(page, enable_button(row, ada))
    page.keyboard.press("Enter")
    # Google's consent: incremental, for the same account, the contacts box ticked.
    expect(page.locator("#email")).to_have_value(ada)
    expect(page.get_by_label(CONTACTS_BOX)).to_be_checked()
    page.locator(f'button[data-email="{ada}"]').click()
    page.wait_for_url("**/settings/integrations**")

    expect(page.locator("#notice")).to_have_text(f"Google Sync is on for {ada}.")
    is_marked_syncing(row, ada)
    state = sync_state(alice)
    assert (state["state"] in ("syncing", "complete"), state["account_email"]) == (True, ada)
    assert page.url.endswith("/settings/integrations")  # the outcome left the address bar
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "integrations-sync-syncing")
    # It stays marked on a later visit.
    page.reload()
    is_marked_syncing(row, ada)
    assert console_errors == []


@WIDTHS
def test_unticking_the_contacts_box_says_what_to_do_and_the_button_stays(
    page: Page, stack, alice: Browser, width: int, console_errors: list[str]
) -> None:
    open_page(page, stack, alice)
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    sign_in_with(page, ada)
    row = page.locator(f'li.account[data-email="{ada}"]')
    enable_button(row, ada).click()
    page.get_by_label(CONTACTS_BOX).uncheck()
    page.locator(f'button[data-email="{ada}"]').click()
    page.wait_for_url("**/settings/integrations**")

    expect(page.locator("#notice")).to_have_text(SCOPE_MISSING)
    expect(page.locator("#notice")).to_have_class("error")
    is_not_marked(row, ada)
    expect(row).to_have_attribute("data-status", "connected")  # the account is as it was
    assert sync_state(alice)["state"] == "off"
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "integrations-sync-scope-missing")

    # Trying again with the box ticked turns it on.
    enable_through_the_page(page, row, ada)
    is_marked_syncing(row, ada)
    assert console_errors == []


@WIDTHS
def test_enable_with_no_account_connects_one_for_calendar_and_contacts(
    page: Page, stack, alice: Browser, width: int, console_errors: list[str]
) -> None:
    open_page(page, stack, alice)
    expect(page.get_by_text("No Google account is connected yet.")).to_be_visible()
    new = page.get_by_role("button", name="Enable Google Sync", exact=True)
    expect(new).to_be_visible()
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "integrations-sync-no-account")

    grace = GoogleCalendarUser.new(stack.google.base_url, "grace").email
    new.click()
    expect(page.locator("#email")).to_have_value("")  # no account suggested: a new one
    expect(page.get_by_label(CONTACTS_BOX)).to_be_checked()
    page.locator(f'button[data-email="{grace}"]').click()
    page.wait_for_url("**/settings/integrations**")

    expect(page.locator("#notice")).to_have_text(f"Google Sync is on for {grace}.")
    expect(page.locator("li.account")).to_have_count(1)
    row = page.locator(f'li.account[data-email="{grace}"]')
    expect(row).to_have_attribute("data-status", "connected")
    is_marked_syncing(row, grace)
    expect(new).to_be_hidden()
    assert sync_state(alice)["account_email"] == grace
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "integrations-sync-new-account")
    assert console_errors == []


@WIDTHS
def test_turn_off_by_keyboard_brings_the_button_back(
    page: Page, stack, alice: Browser, width: int, console_errors: list[str]
) -> None:
    open_page(page, stack, alice)
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace", domain="example.org").email
    sign_in_with(page, ada)
    sign_in_with(page, grace)
    ada_row = page.locator(f'li.account[data-email="{ada}"]')
    grace_row = page.locator(f'li.account[data-email="{grace}"]')
    enable_through_the_page(page, ada_row, ada)
    is_marked_syncing(ada_row, ada)
    is_not_marked(grace_row, grace)  # one contacts account; the other may take over

    turn_off = ada_row.get_by_role("button", name=f"Turn off Google Sync for {ada}", exact=True)
    press_tab_until_focused(page, turn_off)
    page.keyboard.press("Enter")

    expect(page.locator("#notice")).to_have_text(f"Google Sync is off for {ada}. Nothing was deleted.")
    is_not_marked(ada_row, ada)
    is_not_marked(grace_row, grace)
    expect(ada_row).to_have_attribute("data-status", "connected")  # still connected
    assert sync_state(alice)["state"] == "off"
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "integrations-sync-turned-off")
    assert console_errors == []


def test_enabling_another_account_moves_the_mark(page: Page, stack, alice: Browser, console_errors: list[str]) -> None:
    open_page(page, stack, alice)
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace", domain="example.org").email
    sign_in_with(page, ada)
    sign_in_with(page, grace)
    ada_row = page.locator(f'li.account[data-email="{ada}"]')
    grace_row = page.locator(f'li.account[data-email="{grace}"]')
    enable_through_the_page(page, ada_row, ada)
    enable_through_the_page(page, grace_row, grace)

    expect(page.locator("#notice")).to_have_text(f"Google Sync is on for {grace}.")
    is_marked_syncing(grace_row, grace)
    is_not_marked(ada_row, ada)
    # ada's grant has the contacts scope now: enabling it again needs no trip to Google.
    enable_button(ada_row, ada).click()
    expect(page.locator("#notice")).to_have_text(f"Google Sync is on for {ada}.")
    is_marked_syncing(ada_row, ada)
    is_not_marked(grace_row, grace)
    assert page.url.endswith("/settings/integrations")
    assert sync_state(alice)["account_email"] == ada
    assert console_errors == []


def test_a_refusal_from_the_api_shows_in_the_notice_and_the_button_can_be_used_again(
    page: Page, stack, alice: Browser
) -> None:
    open_page(page, stack, alice)
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    sign_in_with(page, ada)
    row = page.locator(f'li.account[data-email="{ada}"]')
    expect(enable_button(row, ada)).to_be_visible()
    needs_reauth(stack, ada)  # Google stops accepting the account while the page is open

    enable_button(row, ada).click()
    expect(page.locator("#notice")).to_have_text(
        f"The account {ada} must be connected again before contacts sync can start."
    )
    expect(page.locator("#notice")).to_have_class("error")
    expect(enable_button(row, ada)).to_be_enabled()
    assert sync_state(alice)["state"] == "off"
    passes_axe(page)
    shoot(page, "integrations-sync-refused")
    # Reloaded, the broken account offers Reconnect, not Google Sync.
    page.reload()
    expect(row).to_have_attribute("data-status", "needs_reauth")
    expect(enable_button(row, ada)).to_be_hidden()


def test_held_contact_deletions_are_shown_and_ignore_puts_the_contacts_back(
    page: Page, stack, alice: Browser, console_errors: list[str]
) -> None:
    """Google deletes every synced contact at once: the sync holds it, the page says so with
    Apply and Ignore (at both widths: the flow behind it runs once, the layout is checked at
    each); Ignore (by keyboard) answers, and the next sync puts the contacts back in Google."""
    from tests.e2e.test_contacts_sync_schedule import contacts_account

    _, google = contacts_account(alice, stack)
    for i in range(20):
        made = alice.api(
            "POST", "/v1/contacts", json={"given_name": f"Held{i:02d}", "emails": [f"held{i}@example.org"]}
        )
        assert made.status_code == 201, made.text
    assert alice.api("POST", "/v1/contacts/sync/run", json={}).status_code == 202
    stack.drain()
    assert len(google.contacts()) == 20
    for person in google.contacts():
        google.delete(person["resourceName"])
    assert alice.api("POST", "/v1/contacts/sync/run", json={}).status_code == 202
    drained = stack.drain()
    state = sync_state(alice)
    # Said apart when it fails: the request was never delivered, or the sync ran and held nothing.
    assert drained.messages >= 1, (drained, state)
    assert not drained.failures, (drained, state)
    assert len(state["pending_deletions"]) == 1, (drained, state, len(google.contacts()))
    [held] = state["pending_deletions"]
    assert (held["side"], held["deletions"], held["decision"]) == ("google", 20, None)

    open_page(page, stack, alice)
    alert = page.get_by_role("alert").filter(has_text="Contact deletions waiting for you")
    expect(alert).to_contain_text(f"Google reports that 20 of the 20 synced contacts were deleted from {google.email}")
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        expect(alert).to_be_visible()
        fits_the_width(page, width)
        passes_axe(page)
        shoot(page, "integrations-held-contact-deletions")
    ignore = alert.get_by_role("button", name="Ignore", exact=True)
    press_tab_until_focused(page, ignore)
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("The contacts are kept")
    expect(alert).to_contain_text("Keeping the contacts…")
    expect(ignore).to_be_disabled()
    assert sync_state(alice)["pending_deletions"][0]["decision"] == "ignore"

    stack.drain()
    assert len(google.contacts()) == 20
    assert sync_state(alice)["pending_deletions"] == []
    page.reload()
    expect(page.get_by_text("Loading your connected accounts…")).to_be_hidden()
    expect(page.get_by_role("alert").filter(has_text="Contact deletions waiting for you")).to_have_count(0)
    assert console_errors == []
