"""The Integrations page in headless Chromium: connect two demo accounts through the Google
emulator's consent page, see both with a green check, disconnect one, see one; the states a
user meets (needs re-authorization, no session, a bad token) at desktop and phone widths."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.browser_checks import shoot
from tests.e2e.test_integrations_api import needs_reauth
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: Desktop and phone: every state is checked at both widths.
WIDTHS = pytest.mark.parametrize("width", [1280, 375])


def fits_the_width(page: Page, width: int) -> None:
    """No horizontal scroll: nothing on the page is wider than the viewport."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width}px wide in a {width}px viewport"


def has_an_icon(page: Page) -> None:
    """The browser fetches the page's icon on its own, after the load, so its 404 may reach the
    console after a test looked: check the icon it would fetch instead."""
    href = page.evaluate(
        "(document.querySelector('link[rel~=icon]') || {}).href || new URL('/favicon.ico', location.href).href"
    )
    if not href.startswith("data:"):
        answer = page.request.get(href)
        assert answer.ok, f"the page's icon {href} answers {answer.status}"


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
    expect(page.locator("#notice")).to_have_text(f"{ada} is connected.")
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
    row.get_by_role("button", name=f"Disconnect {ada}", exact=True).click()

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


@WIDTHS
def test_without_a_crm_session_the_page_says_so_and_offers_nothing(page: Page, stack, width: int) -> None:
    page.goto(f"{stack.api_url}/settings/integrations")
    expect(page.locator("#notice")).to_have_text(
        "No CRM session: open this page from the CRM (in development, from the link that make dev prints)."
    )
    expect(page.get_by_role("button")).to_have_count(0)
    expect(page.get_by_text("Loading your connected accounts…")).to_be_hidden()
    expect(page.get_by_text("No Google account is connected yet.")).to_be_hidden()
    fits_the_width(page, width)


@WIDTHS
def test_with_a_bad_token_the_page_says_the_session_ended_and_offers_nothing(page: Page, stack, width: int) -> None:
    page.goto(f"{stack.api_url}/settings/integrations#token=not-a-jwt")
    expect(page.locator("#notice")).to_have_text("Your session has ended. Open this page from the CRM again.")
    expect(page.get_by_role("button")).to_have_count(0)
    expect(page.get_by_text("Loading your connected accounts…")).to_be_hidden()
    expect(page.get_by_text("No Google account is connected yet.")).to_be_hidden()
    fits_the_width(page, width)
    shoot(page, "integrations-session-ended")


@WIDTHS
def test_a_connected_account_fits_a_phone_and_its_notice_names_it(page: Page, stack, unique: str, width: int) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    fits_the_width(page, width)
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    sign_in_with(page, ada)
    expect(page.locator("#notice")).to_have_text(f"{ada} is connected.")
    row = page.locator(f'li.account[data-email="{ada}"]')
    expect(row.get_by_role("button", name="Connected")).to_be_visible()
    fits_the_width(page, width)
    row.get_by_role("button", name="Connected").click()
    expect(row.get_by_role("button", name=f"Disconnect {ada}", exact=True)).to_be_visible()
    fits_the_width(page, width)


@WIDTHS
def test_a_broken_connection_offers_reconnect_and_remove_not_connected(
    page: Page, stack, unique: str, width: int
) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace", domain="example.org").email
    sign_in_with(page, ada)
    needs_reauth(stack, ada)
    page.reload()

    row = page.locator(f'li.account[data-email="{ada}"]')
    expect(row).to_have_attribute("data-status", "needs_reauth")
    expect(row.locator(".status-text")).to_have_text(
        "Needs re-authorization: Google no longer accepts this connection. Reconnect it."
    )
    expect(row.get_by_role("button", name="Reconnect")).to_be_visible()
    expect(row.get_by_role("button", name=f"Remove {ada}", exact=True)).to_be_visible()
    expect(row.get_by_text("Connected", exact=True)).to_be_hidden()
    expect(row.locator("button.connected")).to_be_hidden()
    fits_the_width(page, width)
    shoot(page, "integrations-broken-connection")

    # Remove asks first, like disconnecting a working account.
    row.get_by_role("button", name=f"Remove {ada}").click()
    expect(row.get_by_role("button", name=f"Disconnect {ada}", exact=True)).to_be_visible()
    row.get_by_role("button", name="Cancel").click()

    # Reconnect suggests ada at Google; the user picks grace instead: a second connection,
    # ada stays broken, and the page says so.
    row.get_by_role("button", name="Reconnect").click()
    expect(page.locator("#email")).to_have_value(ada)  # login_hint
    page.locator(f'button[data-email="{grace}"]').click()
    page.wait_for_url("**/settings/integrations**")
    expect(page.locator("#notice")).to_have_text(
        f"You signed in as {grace}, so it was connected as another account. "
        f"{ada} still needs re-authorization: click its Reconnect and choose {ada} at Google."
    )
    shoot(page, "integrations-another-account-chosen")
    expect(page.locator("li.account")).to_have_count(2)
    expect(page.locator(f'li.account[data-email="{grace}"]')).to_have_attribute("data-status", "connected")
    expect(row).to_have_attribute("data-status", "needs_reauth")
    fits_the_width(page, width)

    # Reconnecting with ada repairs the same connection.
    row.get_by_role("button", name="Reconnect").click()
    page.locator(f'button[data-email="{ada}"]').click()
    page.wait_for_url("**/settings/integrations**")
    expect(page.locator("#notice")).to_have_text(f"{ada} is connected.")
    expect(page.locator("li.account")).to_have_count(2)
    expect(row).to_have_attribute("data-status", "connected")
    expect(row.get_by_role("button", name="Connected")).to_be_visible()
    expect(row.get_by_role("button", name="Reconnect")).to_be_hidden()


@WIDTHS
def test_the_disconnect_dialog_by_keyboard(page: Page, stack, unique: str, width: int) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    sign_in_with(page, ada)
    row = page.locator(f'li.account[data-email="{ada}"]')
    opener = row.get_by_role("button", name="Connected")

    opener.focus()
    page.keyboard.press("Enter")
    dialog = row.get_by_role("alertdialog", name=f"Disconnect {ada}?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()

    page.keyboard.press("Enter")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Enter")  # Cancel
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    fits_the_width(page, width)


@WIDTHS
def test_disconnect_shows_progress_then_replaces_the_connected_notice(
    page: Page, stack, unique: str, width: int
) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    sign_in_with(page, ada)
    expect(page.locator("#notice")).to_have_text(f"{ada} is connected.")

    held: list[Route] = []  # the DELETE waits here until the test has seen the progress
    page.route("**/v1/integrations/*", lambda route: held.append(route))
    row = page.locator(f'li.account[data-email="{ada}"]')
    row.get_by_role("button", name="Connected").click()
    row.get_by_role("button", name=f"Disconnect {ada}", exact=True).click()
    expect(page.locator("#notice")).to_have_text(f"Disconnecting {ada}…")
    expect(row.get_by_role("button", name=f"Disconnect {ada}", exact=True)).to_have_text("Disconnecting…")
    expect(row.get_by_role("button", name=f"Disconnect {ada}", exact=True)).to_be_disabled()
    fits_the_width(page, width)
    shoot(page, "integrations-disconnecting")
    assert [r.request.method for r in held] == ["DELETE"]
    held[0].continue_()

    expect(page.locator("#notice")).to_have_text(f"{ada} was disconnected.")
    expect(page.get_by_text("No Google account is connected yet.")).to_be_visible()
    expect(page.locator("li.account")).to_have_count(0)


@WIDTHS
def test_no_console_errors(page: Page, stack, unique: str, width: int, console_errors: list[str]) -> None:
    """Empty, connected, disconnect dialog, needs re-authorization, no session: nothing logged."""
    page.goto(f"{stack.api_url}/settings/integrations")
    expect(page.locator("#notice")).to_be_visible()
    page.goto("about:blank")  # else adding the fragment is a same-document navigation
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    expect(page.get_by_text("No Google account is connected yet.")).to_be_visible()
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    sign_in_with(page, ada)
    row = page.locator(f'li.account[data-email="{ada}"]')
    row.get_by_role("button", name="Connected").click()
    row.get_by_role("button", name="Cancel").click()
    needs_reauth(stack, ada)
    page.reload()
    expect(row).to_have_attribute("data-status", "needs_reauth")
    has_an_icon(page)
    assert console_errors == []


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

    page.get_by_label(ada, exact=True).uncheck()
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
    expect(page.get_by_label(ada, exact=True)).not_to_be_checked()
    expect(page.get_by_label(f"Team — {ada}")).to_be_checked()
    expect(page.get_by_label("Calendar → CRM only")).to_be_checked()
    expect(page.get_by_label("Days back")).to_have_value("7")
