"""Outlook calendars through the Calendar Settings page in headless Chromium (issue 16's end to
end acceptance, first half): "Sign in with Microsoft" on the emulator's consent page; the page
shows the Outlook account and its calendar beside a Google account; the Outlook calendar is
linked through the page; a CRM booking whose first create's answer is lost makes exactly one
Outlook event; an event the user creates in Outlook reaches the CRM through Graph's change
notification (no "Sync now") and blocks availability; once Microsoft revokes the grant, the page's Reconnect goes to
Microsoft's consent page. Chromium trusts only the emulator's server key
(test_microsoft_signin_page.py says why)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser as Chromium
from playwright.sync_api import Page, expect

from devstack.microsoft.graph.faults import Fault
from tests.e2e.browser_checks import axe_violations, shoot
from tests.e2e.test_calendar_page import open_page
from tests.e2e.test_integrations_api import Browser, check_accounts

# Chromium trusting the emulator's server key only (that module says why): its fixture, shared.
from tests.e2e.test_microsoft_signin_page import browser  # noqa: F401
from tests.support import clock
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def page(browser: Chromium) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def when(moment: Any) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def test_an_outlook_calendar_linked_through_the_page_gets_one_event_per_booking_and_blocks_availability(
    page: Page, stack: Any, alice: Browser, unique: str
) -> None:
    outlook = f"ada-{unique}@contoso.test"
    stack.microsoft.add_user(outlook, f"Ada {unique}")

    # Sign in with Microsoft on the Integrations page, through the emulator's consent page.
    page.goto(f"{stack.api_url}/settings/integrations#token={alice.token}")
    expect(page.get_by_text("No Microsoft account is connected yet.")).to_be_visible()
    page.get_by_role("button", name="Sign in with Microsoft").click()
    page.wait_for_url(f"{stack.microsoft.base_url}/**")
    page.locator(f'input[name="account"][value="{outlook}"]').check()
    page.locator("#accept").click()
    page.wait_for_url(f"{stack.api_url}/settings/integrations**")
    expect(page.locator("#notice")).to_have_text(f"{outlook} is connected.")
    # A Google demo account beside it (connected through the API; the drain runs both checks,
    # which list each account's calendars).
    google_email = GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email
    alice.connect(google_email)
    stack.drain()

    open_page(page, stack, alice)
    google = page.locator(f'.account-block[data-email="{google_email}"]')
    account = page.locator(f'.account-block[data-email="{outlook}"]')
    expect(google.locator(".provider")).to_have_text("Google")
    expect(account.locator(".provider")).to_have_text("Outlook")
    expect(account.locator(".status-text")).to_have_text("Connected")
    expect(account.locator("li.calendar .name")).to_have_text(["Calendar"])

    page.get_by_role("button", name="Add").click()
    page.get_by_label("Account", exact=True).select_option(label=outlook)
    page.get_by_label("Calendar", exact=True).select_option(label="Calendar")
    page.locator("#linked-save").click()
    expect(page.locator("#notice")).to_contain_text("Linked calendar saved.")
    expect(page.locator("#linked-current")).to_have_text(f"Calendar ({outlook})")
    expect(account.locator(".linked-badge")).to_be_visible()
    stack.drain()  # the linked calendar's first sync
    graph = stack.microsoft_graph.state
    calendar_id = graph.default_calendar(outlook).id

    # A booking whose first create's answer is lost: the retry carries the same transactionId.
    start = clock.next_weekday(clock.TUESDAY, 10)
    fault = Fault("lost_answer", method="POST", path="/v1.0/me/calendars/", email=outlook)
    graph.faults.add(fault)
    try:
        booked = alice.api(
            "POST",
            "/v1/appointments",
            json={
                "title": f"Intro {unique}",
                "start": clock.z(start),
                "end": clock.z(start + timedelta(hours=1)),
                "time_zone": "UTC",
            },
        )
        assert booked.status_code == 201, booked.text
        stack.drain()  # the push: its answer lost, the message comes back and is retried
        assert graph.faults.list() == []  # the fault was spent
    finally:
        graph.faults.clear()
    with graph.lock:
        ours = [e for e in graph.events.values() if e.owner == outlook and e.subject == f"Intro {unique}"]
    assert len(ours) == 1
    appointment = alice.api("GET", f"/v1/appointments/{booked.json()['id']}").json()
    assert appointment["sync_state"] == "synced", appointment
    assert appointment["calendar_event"]["calendar_id"] == calendar_id

    # The user adds an event in Outlook: Graph's change notification (the emulator posts it to
    # the stack's graph_webhook) queues the sync; nobody presses "Sync now".
    busy_start = clock.next_weekday(clock.WEDNESDAY, 15)
    busy_end = busy_start + timedelta(hours=1)
    dentist = {"subject": "Dentist", "start": when(busy_start), "end": when(busy_end)}
    graph.user_create_event(outlook, dentist, calendar_id)
    assert graph.notifications.wait_idle(30.0)
    stack.drain()
    open_page(page, stack, alice)
    window = {"start": clock.z(busy_start), "end": clock.z(busy_end), "duration": 30}
    busy = alice.api("GET", "/v1/availability", params=window).json()["busy"]
    assert [(b["start"], b["end"]) for b in busy] == [(clock.offset(busy_start), clock.offset(busy_end))]
    imported = [a for a in alice.api("GET", "/v1/appointments").json()["items"] if a["title"] == "Dentist"]
    assert [(a["start"], a["end"]) for a in imported] == [(clock.z(busy_start), clock.z(busy_end))]
    expect(account.locator("li.calendar .sync")).to_contain_text("synced at")
    shoot(page, "calendar-outlook-linked")
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 375, "height": 900})
    expect(account.locator(".provider")).to_have_text("Outlook")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shoot(page, "calendar-outlook-linked")

    # Microsoft revokes the grant: the health check marks the account; its Reconnect on this
    # page goes to Microsoft's consent (not Google's) for the same account.
    stack.microsoft.revoke_grants(outlook)
    check_accounts(stack, outlook)
    stack.drain()
    page.reload()
    expect(account.locator(".warning")).to_contain_text("Outlook no longer accepts this account's access")
    account.get_by_role("button", name=f"Reconnect {outlook}").click()
    page.wait_for_url(f"{stack.microsoft.base_url}/**")
    expect(page.locator(f'input[name="account"][value="{outlook}"]')).to_be_visible()
