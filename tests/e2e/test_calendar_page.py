"""The Calendar Settings page in headless Chromium, at desktop (1280 px) and phone (375 px)
width: every state shown truthfully — loading, no session, a linked calendar, an account that
needs re-authorization, a failing sync, "Sync now", and each calendar's own colour."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Browser as Chromium
from playwright.sync_api import Page, Route, expect

from tests.e2e.browser_checks import shoot
from tests.e2e.test_integrations_api import Browser, needs_reauth
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WIDTHS = [1280, 375]
NO_SESSION = "No CRM session: open this page from the CRM (in development, from the link that make dev prints)."
SESSION_ENDED = "Your session has ended. Open this page from the CRM again."


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def page(request: pytest.FixtureRequest, browser: Chromium) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": request.param, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def connected_demo_account(stack, alice: Browser) -> tuple[str, str]:
    """A demo account (primary, Team, a read-only holidays calendar) connected and synced:
    its email and connection id."""
    email = GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email
    alice.connect(email)
    stack.drain()
    (connection,) = alice.integrations()
    return email, connection["id"]


def open_page(page: Page, stack, alice: Browser) -> None:
    page.goto(f"{stack.api_url}/settings/calendar#token={alice.token}")
    expect(page.locator("#loading")).to_be_hidden()


def calendars(alice: Browser) -> list[dict]:
    answer = alice.api("GET", "/v1/calendars")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


# ---------------------------------------------------------------------- 1. the picker


def test_the_linked_calendar_picker_shows_only_after_add_and_cancel_hides_it(page: Page, stack, alice: Browser) -> None:
    connected_demo_account(stack, alice)
    open_page(page, stack, alice)
    picker = page.locator("#linked-form")
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_visible()
    expect(picker).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()

    page.get_by_role("button", name="Add", exact=True).click()
    expect(picker).to_be_visible()
    expect(page.get_by_label("Account", exact=True)).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(picker).to_be_hidden()


# ---------------------------------------------------------------------- 6. no session, bad token


def test_without_a_session_one_clear_message_and_no_controls(page: Page, stack) -> None:
    page.goto(f"{stack.api_url}/settings/calendar")
    expect(page.locator("#notice")).to_have_text(NO_SESSION)
    expect(page.locator("#settings-content")).to_be_hidden()
    expect(page.locator("#loading")).to_be_hidden()
    for name in ("Add", "Save", "Save conflict calendars", "Save preferences"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
    expect(page.locator("#linked-form")).to_be_hidden()


def test_with_a_garbage_token_one_clear_message_and_no_controls(page: Page, stack) -> None:
    page.goto(f"{stack.api_url}/settings/calendar#token=not-a-token")
    expect(page.locator("#notice")).to_have_text(SESSION_ENDED)
    expect(page.locator("#settings-content")).to_be_hidden()
    expect(page.locator("#loading")).to_be_hidden()
    expect(page.get_by_role("button", name="Save preferences")).to_be_hidden()
    expect(page.get_by_label("Days back")).to_be_hidden()


# ---------------------------------------------------------------------- 5. loading


def test_while_loading_the_page_says_so_and_its_forms_are_disabled(page: Page, stack, alice: Browser) -> None:
    connected_demo_account(stack, alice)
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)  # the answer waits until the test lets it go

    page.route("**/v1/settings/calendar", hold)
    page.goto(f"{stack.api_url}/settings/calendar#token={alice.token}")
    expect(page.locator("#loading")).to_have_text("Loading…")
    expect(page.locator("#loading")).to_be_visible()
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Save preferences")).to_be_disabled()
    expect(page.get_by_label("Days back")).to_be_disabled()
    assert len(held) == 1
    shoot(page, "calendar-loading-held")

    held[0].continue_()
    expect(page.locator("#loading")).to_be_hidden()
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_enabled()
    expect(page.get_by_label("Days back")).to_have_value("30")
    expect(page.get_by_label("Days back")).to_be_enabled()


# ---------------------------------------------------------------------- 9, 10. colours, linked


def test_each_calendar_has_its_own_colour_and_the_linked_one_is_named_once_and_marked(
    page: Page, stack, alice: Browser
) -> None:
    email, connection_id = connected_demo_account(stack, alice)
    body = {"connection_id": connection_id, "calendar_id": email}
    linked = alice.api("PUT", "/v1/settings/linked-calendar", json=body)
    assert linked.status_code == 200, linked.text
    open_page(page, stack, alice)

    account = page.locator(f'.account-block[data-email="{email}"]')
    expect(account.locator("li.calendar")).to_have_count(3)
    colours = account.locator(".swatch").evaluate_all("els => els.map((el) => getComputedStyle(el).backgroundColor)")
    assert len(set(colours)) == 3, colours

    expect(page.locator("#linked-current")).to_have_text(email)
    primary = account.locator(f'li.calendar[data-calendar-id="{email}"]')
    expect(primary.locator(".linked-badge")).to_be_visible()
    expect(primary.locator(".linked-badge")).to_have_text("Linked")
    expect(account.locator(".linked-badge:visible")).to_have_count(1)
    # Among the conflict calendars too, a primary calendar is named once (not "x — x").
    expect(page.get_by_label(email, exact=True)).to_be_checked()
    expect(page.get_by_label(f"Team — {email}", exact=True)).to_be_visible()


def test_calendar_settings_items_carry_their_sync_state_and_account_status(stack, alice: Browser) -> None:
    email, _ = connected_demo_account(stack, alice)
    answer = alice.api("GET", "/v1/settings/calendar")
    assert answer.status_code == 200, answer.text
    (primary,) = answer.json()["conflict_calendars"]
    assert primary["calendar_id"] == email
    assert primary["connection_status"] == "connected"
    assert primary["sync"]["state"] == "synced"
    assert primary["sync"]["last_synced_at"] is not None
    assert primary["sync"]["last_error"] is None


# ---------------------------------------------------------------------- 3. account and sync state


def test_an_account_that_needs_reauthorization_says_so_and_reconnect_starts_google_sign_in(
    page: Page, stack, alice: Browser
) -> None:
    email, _ = connected_demo_account(stack, alice)
    needs_reauth(stack, email)
    (flagged,) = alice.integrations()
    assert flagged["status"] == "needs_reauth"

    open_page(page, stack, alice)
    account = page.locator(f'.account-block[data-email="{email}"]')
    expect(account.locator(".status-text")).to_have_text("Needs re-authorization")
    expect(account.locator(".warning")).to_be_visible()
    expect(account.locator(".warning")).to_contain_text("not syncing")
    primary = account.locator(f'li.calendar[data-calendar-id="{email}"]')
    expect(primary.locator(".sync")).to_have_text("· not syncing: the account must be reconnected")
    expect(account.get_by_role("button", name="Sync now")).to_have_count(0)
    shoot(page, "calendar-needs-reauth-sync-state")

    account.get_by_role("button", name=f"Reconnect {email}").click()
    page.wait_for_url(f"{stack.google.base_url}/**")
    assert parse_qs(urlsplit(page.url).query)["login_hint"] == [email]


def test_a_failing_sync_shows_its_error_until_a_sync_succeeds(page: Page, stack, alice: Browser) -> None:
    email, connection_id = connected_demo_account(stack, alice)
    # Every attempt of the next sync fails (the queue tries it 5 times before giving up).
    requests.post(
        f"{stack.google.base_url}/_emulator/faults",
        json={"kind": "unavailable_503", "method": "calendar.events.list", "email": email, "count": 5},
        timeout=10,
    ).raise_for_status()
    queued = alice.api("POST", f"/v1/integrations/{connection_id}/sync")
    assert queued.status_code == 202, queued.text
    assert queued.json() == {"calendars": 1}
    stack.drain()

    (primary,) = [c for c in calendars(alice) if c["calendar_id"] == email]
    assert primary["sync"]["state"] == "failing"
    assert primary["sync"]["last_error"]
    assert primary["sync"]["last_error_at"] is not None

    open_page(page, stack, alice)
    row = page.locator(f'li.calendar[data-calendar-id="{email}"]')
    expect(row).to_have_attribute("data-sync", "failing")
    expect(row.locator(".sync")).to_contain_text("· failing since ")
    expect(row.locator(".sync")).to_contain_text(primary["sync"]["last_error"])
    shoot(page, "calendar-sync-failing")

    assert alice.api("POST", f"/v1/integrations/{connection_id}/sync").status_code == 202
    stack.drain()
    (primary,) = [c for c in calendars(alice) if c["calendar_id"] == email]
    assert (primary["sync"]["state"], primary["sync"]["last_error"]) == ("synced", None)
    page.reload()
    expect(row).to_have_attribute("data-sync", "synced")
    expect(row.locator(".sync")).to_contain_text("· synced at ")


def test_sync_now_queues_the_accounts_syncs_and_shows_when_they_ran(page: Page, stack, alice: Browser) -> None:
    email, _ = connected_demo_account(stack, alice)
    (before,) = [c["sync"]["last_synced_at"] for c in calendars(alice) if c["calendar_id"] == email]
    open_page(page, stack, alice)
    account = page.locator(f'.account-block[data-email="{email}"]')
    expect(account.locator(".last-sync")).to_contain_text("Last synced ")

    account.get_by_role("button", name=f"Sync now {email}").click()
    expect(page.locator("#notice")).to_have_text(f"Syncing {email}…")
    stack.drain()
    expect(page.locator("#notice")).to_contain_text(f"{email} synced at ")
    (after,) = [c["sync"]["last_synced_at"] for c in calendars(alice) if c["calendar_id"] == email]
    assert datetime.fromisoformat(after) > datetime.fromisoformat(before)  # it ran, though nothing changed


def test_sync_now_refuses_unknown_and_malformed_connections(stack, alice: Browser, unique: str) -> None:
    missing = alice.api("POST", f"/v1/integrations/g{unique}/sync")
    assert missing.status_code == 404, missing.text
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    malformed = alice.api("POST", "/v1/integrations/a.b/sync")
    assert malformed.status_code == 422, malformed.text


def test_the_page_fits_its_width_and_logs_no_console_error(page: Page, stack, alice: Browser) -> None:
    """With a linked calendar, failing or pending states and long addresses, nothing scrolls
    sideways at 375 px, and the page (its icon included) logs no error."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    email, connection_id = connected_demo_account(stack, alice)
    linked = alice.api(
        "PUT", "/v1/settings/linked-calendar", json={"connection_id": connection_id, "calendar_id": email}
    )
    assert linked.status_code == 200, linked.text
    open_page(page, stack, alice)
    expect(page.locator(f'.account-block[data-email="{email}"] li.calendar')).to_have_count(3)

    width = page.viewport_size["width"] if page.viewport_size else 1280
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        """(w) => [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > w)
            .map((el) => `${el.tagName}#${el.id}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`)""",
        width,
    )
    assert scroll_width <= width, f"the page is {scroll_width}px wide in a {width}px viewport: {wide[:8]}"
    icon = page.evaluate(
        "(document.querySelector('link[rel~=icon]') || {}).href || new URL('/favicon.ico', location.href).href"
    )
    assert icon.startswith("data:") or page.request.get(icon).ok, icon
    assert errors == []


# ---------------------------------------------------------------------- long work is visible


def test_a_full_sync_under_way_shows_its_events_so_far_until_it_is_done(
    page: Page, stack, alice: Browser, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A calendar whose full sync is between two pages of events.list (the count recorded as
    the sync worker records it) shows "Syncing… N events so far"; a finished sync clears it."""
    from crmsync.app.wiring import Graph
    from crmsync.config import Settings
    from crmsync.dal.mirror import MirrorStore
    from crmsync.domain import Principal

    email, connection_id = connected_demo_account(stack, alice)
    env = stack.function_environment("ApiFunction")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    Graph(Settings.from_env(env))  # binds the stack's tables in this process
    MirrorStore().record_progress(Principal(f"tenant-{unique}", "alice"), connection_id, email, 2500)

    (primary,) = [c for c in calendars(alice) if c["calendar_id"] == email]
    assert primary["sync"]["events_so_far"] == 2500
    open_page(page, stack, alice)
    row = page.locator(f'li.calendar[data-calendar-id="{email}"]')
    expect(row.locator(".sync")).to_have_text("· Syncing… 2500 events so far")

    assert alice.api("POST", f"/v1/integrations/{connection_id}/sync").status_code == 202
    stack.drain()
    (primary,) = [c for c in calendars(alice) if c["calendar_id"] == email]
    assert primary["sync"]["events_so_far"] is None
    page.reload()
    expect(row.locator(".sync")).to_contain_text("· synced at ")
