"""The Calendar Settings page with an iCloud account beside a Google one, in headless Chromium
at desktop and phone widths: both accounts and their calendars are shown with their provider,
the iCloud calendar is chosen as the linked calendar and a conflict calendar through the page,
"Sync now" syncs it, opening the page polls it, and a revoked app-specific password is
explained in iCloud's words."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser as Chromium
from playwright.sync_api import Page, expect

from tests.e2e.test_calendar_page import connected_demo_account, open_page
from tests.e2e.test_integrations_api import Browser, check_accounts
from tests.support import clock
from tests.support.caldav_user import CalDavUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(params=[1280, 375], ids=lambda w: f"{w}px")
def sized(request: pytest.FixtureRequest, browser: Chromium) -> Iterator[tuple[Page, int]]:
    context = browser.new_context(viewport={"width": request.param, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page, request.param
    context.close()


def connect_icloud(stack, alice: Browser) -> tuple[CalDavUser, str]:
    user = CalDavUser(stack.caldav)
    made = alice.api("POST", "/v1/integrations/icloud", json={"username": user.email, "password": user.password})
    assert made.status_code == 201, made.text
    stack.drain()  # its check lists its calendars
    return user, made.json()["id"]


def test_icloud_and_google_accounts_side_by_side_and_the_icloud_calendar_chosen_through_the_page(
    sized: tuple[Page, int], stack, alice: Browser
) -> None:
    page, width = sized
    google_email, _ = connected_demo_account(stack, alice)
    user, connection_id = connect_icloud(stack, alice)
    open_page(page, stack, alice)

    google = page.locator(f'.account-block[data-email="{google_email}"]')
    icloud = page.locator(f'.account-block[data-email="{user.email}"]')
    expect(google.locator(".provider")).to_have_text("Google")
    expect(icloud.locator(".provider")).to_have_text("iCloud")
    expect(icloud.locator(".status-text")).to_have_text("Connected")
    expect(icloud.locator("li.calendar")).to_have_count(1)
    expect(icloud.locator("li.calendar .name")).to_have_text("Calendar")

    page.get_by_role("button", name="Add").click()
    page.get_by_label("Account", exact=True).select_option(label=user.email)
    page.get_by_label("Calendar", exact=True).select_option(label="Calendar")
    page.locator("#linked-save").click()
    expect(page.locator("#notice")).to_contain_text("Linked calendar saved.")
    expect(page.locator("#linked-current")).to_have_text(f"Calendar ({user.email})")
    expect(icloud.locator(".linked-badge")).to_be_visible()
    # Linking made it a conflict calendar too; the Google primary one is added beside it.
    expect(page.get_by_label(f"Calendar — {user.email}", exact=True)).to_be_checked()
    page.get_by_label(google_email, exact=True).check()
    page.locator("#conflict-save").click()
    expect(page.locator("#notice")).to_contain_text("Conflict calendars saved.")
    settings = alice.api("GET", "/v1/settings/calendar").json()
    assert settings["linked_calendar"]["calendar_id"] == user.calendar_url
    assert {(c["connection_id"], c["calendar_id"]) for c in settings["conflict_calendars"]} >= {
        (connection_id, user.calendar_url)
    }
    stack.drain()  # the chosen calendars' first syncs

    start = clock.next_weekday(clock.MONDAY, 15)
    user.add("Piano lesson", start, start + timedelta(hours=1))
    icloud.get_by_role("button", name=f"Sync now {user.email}").click()
    expect(page.locator("#notice")).to_contain_text(f"Syncing {user.email}")  # queued
    stack.drain()
    expect(page.locator("#notice")).to_contain_text(f"{user.email} synced at", timeout=20_000)
    expect(icloud.locator("li.calendar .sync")).to_contain_text("synced at")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    window = {"start": clock.z(start), "end": clock.z(start + timedelta(hours=1)), "duration": 30}
    assert alice.api("GET", "/v1/availability", params=window).json()["busy"] != []


def test_a_revoked_app_specific_password_is_explained_and_reconnect_opens_the_icloud_form(
    sized: tuple[Page, int], stack, alice: Browser
) -> None:
    page, _ = sized
    user, _ = connect_icloud(stack, alice)
    stack.caldav.remove_user(user.email)  # revoked at account.apple.com
    check_accounts(stack, user.email)
    stack.drain()
    open_page(page, stack, alice)

    icloud = page.locator(f'.account-block[data-email="{user.email}"]')
    expect(icloud.locator(".status-text")).to_have_text("Needs re-authorization")
    expect(icloud.locator(".warning")).to_contain_text("iCloud no longer accepts this account's app-specific password")
    icloud.get_by_role("button", name=f"Reconnect {user.email}").click()
    page.wait_for_url("**/settings/integrations**")
    expect(page.get_by_label("App-specific password")).to_be_visible()
