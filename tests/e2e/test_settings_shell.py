"""The settings pages as one site, in headless Chromium at desktop (1280 px) and phone (375 px)
width: the same navigation on every page with the current one marked, the CRM session kept from
page to page, and every page in every state (no session, loading, empty, connected, needs
re-authorization) passing axe-core's accessibility rules, with a screenshot of each."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.browser_checks import axe_violations, shoot
from tests.e2e.test_integrations_api import Browser, needs_reauth
from tests.e2e.test_integrations_page import fits_the_width
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

NO_SESSION = "No CRM session: open this page from the CRM (in development, from the link that make dev prints)."
ADDRESS = re.compile(r"^u[a-z2-7]{26}@\S+$")
#: page → the name of its link in the navigation
NAV = {
    "integrations": "Integrations",
    "calendar": "My Profile › Calendar Settings",
    "email": "Email BCC address",
    "contacts/review": "Contacts New Contacts Found",
}


@pytest.fixture(params=[1280, 375], ids=lambda w: f"{w}px")
def width(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def the_navigation_marks(page: Page, current: str) -> None:
    """The navigation is shown, its link to `current` is marked as the page, and no other is."""
    nav = page.get_by_role("navigation", name="Settings")
    expect(nav).to_be_visible()
    for name, label in NAV.items():
        link = nav.get_by_role("link", name=label, exact=True)
        expect(link).to_be_visible()
        if name == current:
            expect(link).to_have_attribute("aria-current", "page")
        else:
            expect(link).not_to_have_attribute("aria-current", re.compile(".*"))
    expect(nav.get_by_role("link")).to_have_count(len(NAV))


def shot_name(page_name: str) -> str:
    return page_name.replace("/", "-")


def passes_axe(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], "\n".join(violations)


def check(page: Page, width: int, name: str) -> None:
    """The state the page is in: it fits the width, passes axe-core, and is shot."""
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, name)


def test_the_navigation_marks_the_current_page_and_keeps_the_session(
    page: Page, stack, alice: Browser, width: int
) -> None:
    email = GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email
    alice.connect(email)
    stack.drain()
    page.goto(f"{stack.api_url}/settings/integrations#token={alice.token}")
    expect(page.locator(f'li.account[data-email="{email}"]')).to_be_visible()
    the_navigation_marks(page, "integrations")
    fits_the_width(page, width)

    nav = page.get_by_role("navigation", name="Settings")
    nav.get_by_role("link", name=NAV["calendar"]).click()
    page.wait_for_url("**/settings/calendar")
    the_navigation_marks(page, "calendar")
    expect(page.locator(f'.account-block[data-email="{email}"] li.calendar')).to_have_count(3)
    expect(page.locator("#settings-content")).to_be_enabled()
    fits_the_width(page, width)

    nav.get_by_role("link", name=NAV["email"]).click()
    page.wait_for_url("**/settings/email")
    the_navigation_marks(page, "email")
    expect(page.locator("#bcc-address")).to_have_text(ADDRESS)
    fits_the_width(page, width)

    # The review sits one level deeper (/settings/contacts/review): its links lead back up.
    nav.get_by_role("link", name=NAV["contacts/review"]).click()
    page.wait_for_url("**/settings/contacts/review")
    the_navigation_marks(page, "contacts/review")
    expect(page.get_by_text("No contacts to review.")).to_be_visible()
    fits_the_width(page, width)

    nav.get_by_role("link", name=NAV["integrations"]).click()
    page.wait_for_url("**/settings/integrations")
    expect(page.locator(f'li.account[data-email="{email}"]')).to_be_visible()
    expect(page.locator("#notice")).not_to_have_text(NO_SESSION)


def test_each_sync_preference_is_explained_in_one_line(page: Page, stack, alice: Browser) -> None:
    page.goto(f"{stack.api_url}/settings/calendar#token={alice.token}")
    expect(page.locator("#loading")).to_be_hidden()
    explained = {
        "Two-way": "CRM appointments go to your linked calendar, and events created, moved or deleted "
        "there come back into the CRM.",
        "CRM → calendar only": "CRM appointments go to your linked calendar; changes made in the calendar "
        "stay out of the CRM.",
        "Calendar → CRM only": "Events of your linked calendar come into the CRM; CRM appointments are not "
        "written to the calendar.",
        "When an event is deleted in the calendar": "Cancel: the CRM appointment is cancelled too. "
        "Unlink: the appointment stays in the CRM, no longer tied to a calendar event.",
        "Days back": "How far into the past calendars are synced (0–365 days).",
        "Days ahead": "How far into the future calendars are synced (1–730 days).",
    }
    for label, line in explained.items():
        expect(page.get_by_label(label)).to_have_accessible_description(line)
    lines = [part for line in explained.values() for part in line.replace(" Unlink:", "\nUnlink:").split("\n")]
    expect(page.locator("#prefs-form .hint")).to_have_text(lines)
    for hint in page.locator("#prefs-form .hint").all():
        expect(hint).to_be_visible()


def hold(page: Page, pattern: str) -> list[Route]:
    """Answers to `pattern` wait until the test lets them go."""
    held: list[Route] = []
    page.route(pattern, lambda route: held.append(route))
    return held


def release(page: Page, pattern: str, held: list[Route]) -> None:
    for route in held:
        route.continue_()
    page.unroute(pattern)


def test_every_page_in_every_state_passes_axe_and_is_shot(page: Page, stack, alice: Browser, width: int) -> None:
    """axe-core's WCAG A/AA and best-practice rules, every impact level, and a screenshot of
    each page in each state into .devstack/screenshots/."""
    # No session (a fresh tab: nothing in its sessionStorage yet).
    for name in NAV:
        page.goto(f"{stack.api_url}/settings/{name}")
        expect(page.locator("#notice")).to_have_text(NO_SESSION)
        check(page, width, f"{shot_name(name)}-no-session")

    # Loading: the first answer is held while the page is checked.
    loads: dict[str, tuple[str, Callable[[], None]]] = {
        "integrations": (
            "**/v1/integrations",
            lambda: expect(page.get_by_text("No Google account is connected yet.")).to_be_visible(),
        ),
        "calendar": ("**/v1/settings/calendar", lambda: expect(page.locator("#no-accounts")).to_be_visible()),
        "email": ("**/v1/settings/bcc-address", lambda: expect(page.locator("#bcc-address")).to_have_text(ADDRESS)),
        "contacts/review": (
            "**/v1/contact-types",
            lambda: expect(page.get_by_text("No contacts to review.")).to_be_visible(),
        ),
    }
    for name, (pattern, loaded) in loads.items():
        held = hold(page, pattern)
        page.goto("about:blank")  # else only the fragment changes: no new load
        page.goto(f"{stack.api_url}/settings/{name}#token={alice.token}")
        # A page with several cards may show several; the held one stays.
        expect(page.locator("text=/^Loading/ >> visible=true").first).to_be_visible()
        check(page, width, f"{shot_name(name)}-loading")
        release(page, pattern, held)
        loaded()  # empty: nothing connected yet
        the_navigation_marks(page, name)
        check(page, width, f"{shot_name(name)}-empty")

    # Connected: a demo account (three calendars, one read-only), linked to the CRM.
    email = GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email
    alice.connect(email)
    stack.drain()
    (connection,) = alice.integrations()
    body = {"connection_id": connection["id"], "calendar_id": email}
    assert alice.api("PUT", "/v1/settings/linked-calendar", json=body).status_code == 200
    stack.drain()
    page.goto(f"{stack.api_url}/settings/integrations")
    row = page.locator(f'li.account[data-email="{email}"]')
    expect(row).to_have_attribute("data-status", "connected")
    check(page, width, "integrations-connected")
    row.get_by_role("button", name="Connected").click()
    expect(row.get_by_role("alertdialog")).to_be_visible()
    check(page, width, "integrations-disconnect-dialog")
    page.goto(f"{stack.api_url}/settings/calendar")
    expect(page.locator(f'.account-block[data-email="{email}"] li.calendar')).to_have_count(3)
    check(page, width, "calendar-connected")
    page.get_by_role("button", name="Change").click()
    expect(page.locator("#linked-form")).to_be_visible()
    check(page, width, "calendar-linked-picker")
    page.goto(f"{stack.api_url}/settings/email")
    expect(page.locator(f'li.sender[data-email="{email}"]')).to_be_visible()
    check(page, width, "email-connected")

    # Needs re-authorization: the user removed our access at Google; the health check noticed.
    needs_reauth(stack, email)
    page.goto(f"{stack.api_url}/settings/integrations")
    expect(row).to_have_attribute("data-status", "needs_reauth")
    check(page, width, "integrations-needs-reauth")
    page.goto(f"{stack.api_url}/settings/calendar")
    expect(page.locator(f'.account-block[data-email="{email}"] .warning')).to_be_visible()
    check(page, width, "calendar-needs-reauth")
