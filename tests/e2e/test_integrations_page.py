"""The Integrations page in headless Chromium: connect two demo accounts through the Google
emulator's consent page, see both with a green check, disconnect one, see one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("stack")]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def sign_in_with(page: Page, email: str) -> None:
    page.get_by_role("button", name="Sign in with Google").click()
    page.locator(f'button[data-email="{email}"]').click()
    page.wait_for_url("**/settings/integrations**")


def test_connect_two_accounts_see_both_checked_disconnect_one(page: Page, stack, unique: str) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    expect(page.get_by_text("No Google account is connected yet.")).to_be_visible()
    assert "token=" not in page.url  # the token left the address bar

    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace", domain="example.org").email
    sign_in_with(page, ada)
    expect(page.locator("#notice")).to_have_text("Your Google account is connected.")
    sign_in_with(page, grace)

    rows = page.locator("li.account")
    expect(rows).to_have_count(2)
    for email in (ada, grace):
        row = page.locator(f'li.account[data-email="{email}"]')
        expect(row).to_have_attribute("data-status", "connected")
        expect(row.locator(".status-icon")).to_have_text("✔")

    row = page.locator(f'li.account[data-email="{ada}"]')
    row.get_by_role("button", name="Connected").click()
    expect(row.get_by_text(f"Disconnect {ada}?")).to_be_visible()
    row.get_by_role("button", name="Disconnect").click()

    expect(rows).to_have_count(1)
    expect(page.locator("li.account .email")).to_have_text(grace)
    expect(page.locator("#notice")).to_have_text(f"{ada} was disconnected.")


def test_cancelled_consent_shows_a_clear_message(page: Page, stack, unique: str) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    page.get_by_role("button", name="Sign in with Google").click()
    page.locator("#cancel").click()
    page.wait_for_url("**/settings/integrations**")
    expect(page.locator("#notice")).to_have_text("You cancelled the Google sign-in. Nothing was connected.")
    expect(page.get_by_text("No Google account is connected yet.")).to_be_visible()


def test_without_a_crm_session_the_page_says_so(page: Page, stack) -> None:
    page.goto(f"{stack.api_url}/settings/integrations")
    expect(page.locator("#notice")).to_contain_text("No CRM session")
    expect(page.get_by_role("button", name="Sign in with Google")).to_be_disabled()


def test_calendar_settings_link_a_calendar_choose_conflicts_and_preferences(page: Page, stack, unique: str) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email
    sign_in_with(page, ada)
    stack.drain()  # the worker reads the account's calendar list

    page.get_by_role("link", name="My Profile › Calendar Settings").click()
    account = page.locator(f'.account-block[data-email="{ada}"]')
    expect(account.locator(".status-icon")).to_have_text("✔")
    expect(account.locator("li.calendar")).to_have_count(3)
    primary = account.locator(f'li.calendar[data-calendar-id="{ada}"]')
    expect(primary.locator(".sync")).to_contain_text("· synced at ")  # the primary is a conflict calendar by default
    expect(page.locator("#linked-current")).to_have_text("No linked calendar.")

    page.get_by_role("button", name="Add").click()
    page.get_by_label("Account", exact=True).select_option(label=ada)
    calendar_choices = page.locator("#linked-calendar option")
    expect(calendar_choices).to_have_count(2)  # the read-only calendar cannot be linked
    page.get_by_label("Calendar", exact=True).select_option(label="Team")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#linked-current")).to_have_text(f"Team ({ada})")
    expect(page.get_by_label(f"Team — {ada}")).to_be_checked()  # linked → conflict by default

    page.get_by_label(f"{ada} — {ada}").uncheck()
    page.get_by_role("button", name="Save conflict calendars").click()
    expect(page.locator("#notice")).to_have_text("Conflict calendars saved.")

    page.get_by_label("Calendar → CRM only").check()
    page.get_by_label("Days back").fill("7")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#notice")).to_have_text("Sync preferences saved.")

    stack.drain()  # the settings changes queued a sync of Team and the retirement of the primary
    page.reload()
    expect(primary).to_have_attribute("data-sync", "off")
    expect(account.locator("li.calendar", has_text="Team").locator(".sync")).to_contain_text("· synced at ")
    expect(page.locator("#linked-current")).to_have_text(f"Team ({ada})")
    expect(page.get_by_label(f"{ada} — {ada}")).not_to_be_checked()
    expect(page.get_by_label(f"Team — {ada}")).to_be_checked()
    expect(page.get_by_label("Calendar → CRM only")).to_be_checked()
    expect(page.get_by_label("Days back")).to_have_value("7")
