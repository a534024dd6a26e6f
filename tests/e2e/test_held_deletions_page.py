"""The mass-deletion guard on the Calendar Settings page, in headless Chromium: Google stops
listing every event of the linked calendar, the page asks "Google reports that N of M events
were deleted from …", and its Apply and Ignore buttons do what they say."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_integrations_api import Browser
from tests.support import clock
from tests.support.google_consent import consent
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: The deployment's default threshold: at least 20 deletions.
EVENTS = 20


def appointments(alice: Browser) -> list[dict]:
    answer = alice.api("GET", "/v1/appointments")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def linked_calendar_loses_everything(stack, alice: Browser, email: str) -> None:
    """A linked calendar with ``EVENTS`` events, imported as appointments; then Google lists
    none of them any more (deleted, tombstones purged, sync token invalidated)."""
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()
    (connection,) = alice.integrations()
    linked = alice.api(
        "PUT", "/v1/settings/linked-calendar", json={"connection_id": connection["id"], "calendar_id": email}
    )
    assert linked.status_code == 200, linked.text
    stack.drain()
    google = GoogleCalendarUser(stack.google.base_url, email)
    first = clock.next_weekday(clock.TUESDAY, 8)
    google.add_many(
        [
            {
                "summary": f"visit {i}",
                "start": {"dateTime": clock.z(first + timedelta(hours=i))},
                "end": {"dateTime": clock.z(first + timedelta(hours=i, minutes=30))},
            }
            for i in range(EVENTS)
        ]
    )
    stack.google.push.wait_idle()
    stack.drain()
    assert len(appointments(alice)) == EVENTS

    for event in google.events(cancelled=False):
        google.delete(event["id"])
    google.expire_sync_tokens(purge_deleted=True)
    stack.google.push.wait_idle()
    stack.drain()


@pytest.mark.parametrize(
    ("button", "notice", "status", "in_google"),
    [
        ("Apply", "The deletions will be applied.", "cancelled", 0),
        ("Ignore", "Your CRM appointments are kept.", "confirmed", EVENTS),
    ],
)
def test_the_page_asks_before_a_mass_deletion_and_its_buttons_work(
    page: Page, stack, unique: str, button: str, notice: str, status: str, in_google: int
) -> None:
    tenant = f"tenant-{unique}"
    alice = Browser(stack, tenant, "alice")
    email = f"held-{unique}@example.com"
    linked_calendar_loses_everything(stack, alice, email)
    assert {a["status"] for a in appointments(alice)} == {"confirmed"}  # nothing cancelled yet

    page.goto(f"{stack.api_url}/settings/calendar#token={stack.issue_token(tenant, 'alice')}")
    prompt = page.locator(f'.held[data-calendar-id="{email}"]')
    expect(prompt.locator(".held-text")).to_have_text(
        f"Google reports that {EVENTS} of {EVENTS} events were deleted from {email}."
    )
    prompt.get_by_role("button", name=button, exact=True).click()
    expect(page.locator("#notice")).to_have_text(notice)
    expect(prompt.get_by_role("button", name="Apply", exact=True)).to_be_disabled()
    expect(prompt.get_by_role("button", name="Ignore", exact=True)).to_be_disabled()

    stack.drain()  # the sync that carries the answer out (and, for Ignore, the pushes)
    page.reload()
    expect(page.locator("#linked-current")).to_have_text(email)  # the name once: it is the account's
    expect(page.locator(".held")).to_have_count(0)
    assert {a["status"] for a in appointments(alice)} == {status}
    google = GoogleCalendarUser(stack.google.base_url, email)
    assert len(google.events(cancelled=False)) == in_google


def test_answering_when_nothing_is_held_is_a_problem_document(stack, unique: str) -> None:
    alice = Browser(stack, f"tenant-{unique}", "alice")
    email = f"calm-{unique}@example.com"
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()
    (connection,) = alice.integrations()

    answer = alice.api(
        "POST", "/v1/calendars/pending-deletions/apply", json={"connection_id": connection["id"], "calendar_id": email}
    )
    assert answer.status_code == 404, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert "No deletions are waiting" in answer.json()["detail"]

    answer = alice.api("POST", "/v1/calendars/pending-deletions/ignore", json={"calendar_id": email})
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
