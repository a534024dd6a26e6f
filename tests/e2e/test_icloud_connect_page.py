"""Connecting iCloud on the Integrations page in headless Chromium (issue 15 deliverable 1),
against the local stack's CalDAV server standing in for iCloud: the Apple ID and an
app-specific password connect the account (its calendar then listed for the user), a wrong
password is explained and nothing is kept, an Apple ID password is told apart, and a revoked
password asks for a new one — at desktop and phone widths."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.test_integrations_api import check_accounts
from tests.support.caldav_user import CalDavUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WIDTHS = pytest.mark.parametrize("width", [1280, 375])


def open_page(page: Page, stack, unique: str) -> str:
    token = stack.issue_token(f"tenant-{unique}", "icloud-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    expect(page.get_by_text("No iCloud account is connected yet.")).to_be_visible()
    return token


def fill(page: Page, username: str, password: str) -> None:
    page.get_by_label("Apple ID").fill(username)
    page.get_by_label("App-specific password").fill(password)
    page.get_by_role("button", name="Connect iCloud").click()


@WIDTHS
def test_an_apple_id_and_app_specific_password_connect_icloud(
    page: Page, stack, unique: str, width: int, console_errors: list[str]
) -> None:
    user = CalDavUser(stack.caldav)
    token = open_page(page, stack, unique)
    expect(page.get_by_role("link", name="How to create one (Apple Support)")).to_have_attribute(
        "href", "https://support.apple.com/en-us/102654"
    )

    fill(page, user.email, user.password)

    row = page.locator(f'#icloud-accounts li.account[data-email="{user.email}"]')
    expect(row).to_have_attribute("data-status", "connected")
    expect(page.locator("#notice")).to_contain_text(f"{user.email} is connected.")
    expect(page.get_by_label("App-specific password")).to_have_value("")
    expect(page.locator("#accounts li.account")).to_have_count(0)  # not among the Google accounts
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert console_errors == []

    stack.drain()  # the connection's check lists its calendars
    calendars = requests.get(
        f"{stack.api_url}/v1/calendars", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()["items"]
    assert [c["calendar_id"] for c in calendars if c["account_email"] == user.email] == [user.calendar_url]


def test_a_wrong_password_is_explained_and_nothing_is_connected(page: Page, stack, unique: str) -> None:
    user = CalDavUser(stack.caldav)
    open_page(page, stack, unique)

    fill(page, user.email, "abcd-efgh-ijkl-mnop")

    error = page.locator("#icloud-error")
    expect(error).to_contain_text("iCloud did not accept this Apple ID and app-specific password")
    expect(page.get_by_label("App-specific password")).to_be_focused()
    expect(page.get_by_label("App-specific password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("No iCloud account is connected yet.")).to_be_visible()


def test_an_apple_id_password_is_told_apart_from_an_app_specific_one(page: Page, stack, unique: str) -> None:
    user = CalDavUser(stack.caldav)
    open_page(page, stack, unique)

    fill(page, user.email, "MyAppleIdPassword1!")

    expect(page.locator("#icloud-error")).to_contain_text("not your Apple ID password")


def test_without_a_session_the_icloud_form_is_not_offered(page: Page, stack) -> None:
    page.goto(f"{stack.api_url}/settings/integrations#token=not-a-jwt")
    expect(page.locator("#notice")).to_have_text("Your session has ended. Open this page from the CRM again.")
    expect(page.get_by_label("App-specific password")).to_be_hidden()


def test_an_empty_form_says_what_is_missing_without_asking_icloud(page: Page, stack, unique: str) -> None:
    open_page(page, stack, unique)
    before = stack.caldav.layer.count()

    page.get_by_role("button", name="Connect iCloud").click()

    expect(page.locator("#icloud-error")).to_have_text("Enter your Apple ID (the email you sign in to iCloud with).")
    expect(page.get_by_label("Apple ID")).to_be_focused()
    assert stack.caldav.layer.count() == before


def test_a_revoked_password_asks_for_a_new_one_through_the_form(page: Page, stack, unique: str) -> None:
    user = CalDavUser(stack.caldav)
    open_page(page, stack, unique)
    fill(page, user.email, user.password)
    row = page.locator(f'#icloud-accounts li.account[data-email="{user.email}"]')
    expect(row).to_have_attribute("data-status", "connected")

    stack.drain()  # the check queued at connect
    stack.caldav.remove_user(user.email)  # the user revokes it at account.apple.com
    check_accounts(stack, user.email)
    stack.drain()
    page.reload()

    expect(row).to_have_attribute("data-status", "needs_reauth")
    expect(row.locator(".status-text")).to_contain_text("Needs a new app-specific password")
    row.get_by_role("button", name=f"Reconnect {user.email}").click()
    expect(page.get_by_label("Apple ID")).to_have_value(user.email)
    expect(page.get_by_label("App-specific password")).to_be_focused()
    new_password = stack.caldav.add_user(user.email)
    page.get_by_label("App-specific password").fill(new_password)
    page.get_by_role("button", name="Connect iCloud").click()

    expect(row).to_have_attribute("data-status", "connected")
    expect(page.locator("#icloud-accounts li.account")).to_have_count(1)  # the same connection, mended
