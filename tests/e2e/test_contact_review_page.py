"""The "New Contacts Found" page (F10, seed 004 steps 6–10) in headless Chromium on the local
stack: an account connected with Google Sync, more than a page of Google contacts the CRM does
not have, the contacts sync run; then from the Integrations page's "N Contacts Found" to the
review, paging through, a type and a consent chosen on rows of two pages (kept across paging
and a reload), and each of the three answers — one test each — with what the next sync offers:
exactly the promised rows. "Show declined" → "Bring back". Each state passes axe and is shot."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser_checks import axe_violations, shoot
from tests.e2e.test_contacts_sync_api import enable, sync_state
from tests.e2e.test_integrations_api import Browser
from tests.e2e.test_integrations_page import fits_the_width
from tests.support.google_consent import consent
from tests.support.google_people import GooglePeopleUser, person
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROWS = 55  # more than a page of 50
#: The rows' choices, by page: (index on the page, contact type, consent).
CHOSEN = {1: [(0, "client", "express"), (3, "vendor", "implied")], 2: [(2, "partner", "none")]}


@dataclass
class Review:
    """Alice's contacts account in Google, with ``ROWS`` contacts the CRM does not have."""

    email: str
    people: GooglePeopleUser


@pytest.fixture
def review(stack, alice: Browser) -> Review:
    """Google Sync on for a new account holding ``ROWS`` contacts; the first sync has run."""
    email = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    people = GooglePeopleUser(stack.google.base_url, email)
    for i in range(ROWS):
        people.add(person(f"Person{i:02d}", "Row", (f"row{i:02d}@example.com",), (f"+1 415 555 {1000 + i}",)))
    alice.callback(consent(enable(alice)["authorization_url"], email))
    stack.drain()
    state = sync_state(alice)
    assert (state["state"], state["candidates"]) == ("contacts_found", ROWS), state
    return Review(email, people)


def checked(page: Page, name: str) -> None:
    """The page as it is: it fits the width, passes axe-core, and is shot."""
    fits_the_width(page, page.viewport_size["width"] if page.viewport_size else 0)
    violations = axe_violations(page)
    assert violations == [], "\n".join(violations)
    shoot(page, name)


def at_both_widths(page: Page, name: str) -> None:
    checked(page, name)
    page.set_viewport_size({"width": 375, "height": 800})
    checked(page, name)
    page.set_viewport_size({"width": 1280, "height": 800})


def rows(page: Page) -> Locator:
    return page.locator("#rows li.review-row")


def saved(page: Page) -> None:
    """Every choice made on the page has been answered by the API."""
    expect(page.locator("body")).to_have_attribute("data-pending", "0")


def api_offered(alice: Browser, status: str = "offered") -> list[dict]:
    found: list[dict] = []
    cursor = None
    while True:
        params = {"status": status, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = alice.api("GET", "/v1/contacts/review", params=params)
        assert response.status_code == 200, response.text
        found += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            return found


def crm_contacts(alice: Browser) -> list[dict]:
    response = alice.api("GET", "/v1/contacts", params={"limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def open_from_integrations(page: Page, stack, alice: Browser, review: Review) -> None:
    """Integrations → "55 Contacts Found" → the review's first page."""
    page.goto(f"{stack.api_url}/settings/integrations#token={alice.token}")
    account = page.locator(f'li.account[data-email="{review.email}"]')
    found = account.get_by_role("link", name=f"{ROWS} Contacts Found", exact=True)
    expect(found).to_be_visible()
    found.click()
    page.wait_for_url("**/settings/contacts/review")
    expect(page.get_by_role("heading", level=1)).to_have_text("New Contacts Found")
    expect(page.locator("#total")).to_have_text(f"{ROWS} contacts to review")
    expect(rows(page)).to_have_count(50)
    expect(page.locator("#page-info")).to_have_text(f"Rows 1–50 of {ROWS}")
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()


def choose(page: Page, index: int, contact_type: str, consent_id: str) -> str:
    """Tick a row and choose its type and consent; the row's email."""
    row = rows(page).nth(index)
    row.get_by_role("checkbox").check()
    row.get_by_label("Contact type").select_option(contact_type)
    row.get_by_label("Consent").select_option(consent_id)
    saved(page)
    return row.locator(".emails").inner_text()


def shows_choice(page: Page, email: str, contact_type: str, consent_id: str) -> None:
    row = page.locator("#rows li.review-row", has=page.get_by_text(email, exact=True))
    expect(row.get_by_role("checkbox")).to_be_checked()
    expect(row.get_by_label("Contact type")).to_have_value(contact_type)
    expect(row.get_by_label("Consent")).to_have_value(consent_id)


def choose_on_two_pages(page: Page) -> dict[str, tuple[str, str]]:
    """The seed's steps 8–9: tick rows and sort them on page 1, Next, the same on page 2; the
    choices are kept going back, and after a reload (which opens page 1 again). Returns the
    chosen rows: email → (type, consent)."""
    chosen: dict[str, tuple[str, str]] = {}
    for index, contact_type, consent_id in CHOSEN[1]:
        chosen[choose(page, index, contact_type, consent_id)] = (contact_type, consent_id)
    expect(page.locator("#select-page")).not_to_be_checked()  # some of the page, not all
    assert page.locator("#select-page").evaluate("box => box.indeterminate")

    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-info")).to_have_text(f"Rows 51–{ROWS} of {ROWS}")
    expect(rows(page)).to_have_count(ROWS - 50)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    for index, contact_type, consent_id in CHOSEN[2]:
        chosen[choose(page, index, contact_type, consent_id)] = (contact_type, consent_id)
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#page-info")).to_have_text(f"Rows 1–50 of {ROWS}")
    page1 = [e for e in chosen if page.get_by_text(e, exact=True).count()]
    assert len(page1) == len(CHOSEN[1])
    for email in page1:
        shows_choice(page, email, *chosen[email])

    page.reload()  # the choices are the server's: a reload shows them
    expect(rows(page)).to_have_count(50)
    for email in page1:
        shows_choice(page, email, *chosen[email])
    return chosen


def answer(page: Page, button: str, confirm: str, question: re.Pattern[str]) -> None:
    """One of the three answers, through its confirmation (which says what it does to rows
    not seen: after the reload only page 1 was seen in this visit)."""
    page.get_by_role("button", name=button, exact=True).click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-question")).to_have_text(question)
    expect(dialog).to_contain_text(f"That includes {ROWS - 50} contacts on pages you have not looked at.")
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    checked(page, f"contact-review-confirm-{button.split()[0].lower()}")
    dialog.get_by_role("button", name=confirm, exact=True).click()
    expect(dialog).to_be_hidden()


def next_sync_offers(stack, alice: Browser, review: Review) -> dict:
    """A contact new to Google, and the next sync (the seed's "next login"); the new one's row."""
    review.people.add(person("Newcomer", "Later", ("newcomer@example.com",)))
    response = alice.api("POST", "/v1/contacts/sync/run", json={"reason": "login"})
    assert response.status_code == 202, response.text
    stack.drain()
    (newcomer,) = [r for r in api_offered(alice) if r["emails"] == ["newcomer@example.com"]]
    return newcomer


def test_proceed_no_import_declines_every_row_and_offers_only_contacts_new_to_google(
    page: Page, stack, alice: Browser, review: Review, console_errors: list[str]
) -> None:
    open_from_integrations(page, stack, alice, review)
    at_both_widths(page, "contact-review-page-1")
    choose_on_two_pages(page)

    answer(
        page,
        "Proceed – No Import",
        "Decline them all",
        re.compile(rf"^Decline all {ROWS} contacts of the review\? Nothing is imported"),
    )
    # The declining runs in the worker: the page says so instead of the total about to change.
    expect(page.locator("#import-text")).to_have_text("Applying your answer…")
    expect(page.locator("#total")).to_have_text("Applying your answer…")
    expect(page.get_by_role("button", name="Proceed – No Import")).to_be_disabled()
    assert len(api_offered(alice)) == ROWS  # nothing declined inside the request
    stack.drain()
    expect(page.locator("#import-text")).to_have_text("Done: nothing was imported; the contacts found were declined.")
    expect(page.get_by_text("No contacts to review.")).to_be_visible()
    expect(page.locator("#total")).to_have_text("0 contacts to review")
    expect(page.get_by_role("button", name="Proceed – No Import")).to_be_hidden()
    at_both_widths(page, "contact-review-empty")
    assert crm_contacts(alice) == []
    assert len(api_offered(alice, "declined")) == ROWS

    newcomer = next_sync_offers(stack, alice, review)
    assert [r["id"] for r in api_offered(alice)] == [newcomer["id"]]  # none of the declined
    page.reload()
    expect(page.locator("#total")).to_have_text("1 contact to review")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).locator(".name")).to_have_text("Newcomer Later")
    assert console_errors == []


def test_import_selected_done_imports_the_chosen_rows_and_never_offers_the_rest(
    page: Page, stack, alice: Browser, review: Review, console_errors: list[str]
) -> None:
    open_from_integrations(page, stack, alice, review)
    chosen = choose_on_two_pages(page)

    answer(
        page,
        "Import Selected – Done",
        "Import and finish",
        re.compile(rf"^Import the ticked contacts \(on every page\) and decline every other one of the {ROWS} "),
    )
    # The answer runs in the worker (declines, then the import): the page shows it until done.
    expect(page.locator("#import-text")).to_have_text("Applying your answer…")
    expect(page.get_by_role("button", name="Import Selected – Done")).to_be_disabled()
    checked(page, "contact-review-importing")
    stack.drain()
    expect(page.locator("#import-text")).to_have_text(
        f"Done: {len(chosen)} contacts imported; the others were declined and will not be offered again."
    )
    expect(page.locator("#import-card")).to_have_attribute("data-state", "done")
    expect(page.get_by_text("No contacts to review.")).to_be_visible()
    checked(page, "contact-review-imported-done")

    imported = {c["emails"][0]: (c["contact_type"], c["consent"], c["source"]) for c in crm_contacts(alice)}
    assert imported == {email: (t, c, "google") for email, (t, c) in chosen.items()}
    assert len(api_offered(alice, "declined")) == ROWS - len(chosen)

    newcomer = next_sync_offers(stack, alice, review)
    assert [r["id"] for r in api_offered(alice)] == [newcomer["id"]]  # the declined are never offered
    assert len(crm_contacts(alice)) == len(chosen)
    assert console_errors == []


def test_import_revisit_later_imports_the_chosen_rows_and_offers_the_rest_again(
    page: Page, stack, alice: Browser, review: Review, console_errors: list[str]
) -> None:
    open_from_integrations(page, stack, alice, review)
    chosen: dict[str, tuple[str | None, str | None]] = dict(choose_on_two_pages(page))
    # By keyboard: a tick with Space, the answer with Enter; Escape leaves the confirmation.
    extra = rows(page).nth(10)
    extra.get_by_role("checkbox").focus()
    page.keyboard.press("Space")
    saved(page)
    chosen[extra.locator(".emails").inner_text()] = (None, None)  # ticked, nothing chosen
    later = page.get_by_role("button", name="Import – Revisit Later", exact=True)
    later.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("alertdialog")).to_be_hidden()
    expect(later).to_be_focused()

    answer(
        page,
        "Import – Revisit Later",
        "Import the ticked ones",
        re.compile(rf"^Import the ticked contacts \(on every page\)\? The others of the {ROWS} contacts stay here"),
    )
    expect(page.locator("#import-text")).to_have_text(f"Importing… 0 of {len(chosen)} imported.")
    stack.drain()
    expect(page.locator("#import-text")).to_have_text(
        f"Done: {len(chosen)} contacts imported; the others stay here and are offered again at the next sync."
    )
    expect(page.locator("#total")).to_have_text(f"{ROWS - len(chosen)} contacts to review")
    checked(page, "contact-review-imported-later")

    imported = {c["emails"][0]: (c["contact_type"], c["consent"]) for c in crm_contacts(alice)}
    assert set(imported) == set(chosen)
    for email, (contact_type, consent_id) in chosen.items():
        if contact_type is not None:
            assert imported[email] == (contact_type, consent_id)
    rest = {r["id"] for r in api_offered(alice)}
    assert len(rest) == ROWS - len(chosen)
    assert api_offered(alice, "declined") == []

    newcomer = next_sync_offers(stack, alice, review)
    offered = api_offered(alice)
    assert {r["id"] for r in offered} == rest | {newcomer["id"]}  # the rest again, and the new one
    assert not {e for r in offered for e in r["emails"]} & set(chosen)
    assert console_errors == []


def test_show_declined_brings_a_row_back_into_the_review(
    page: Page, stack, alice: Browser, review: Review, console_errors: list[str]
) -> None:
    assert alice.api("POST", "/v1/contacts/review/answer", json={"action": "no-import"}).status_code == 202
    # While the worker has not carried the answer out, Integrations says so (not a stale count).
    page.goto(f"{stack.api_url}/settings/integrations#token={alice.token}")
    account = page.locator(f'li.account[data-email="{review.email}"]')
    expect(account.locator("span.sync-state")).to_have_text("Applying your answer…")
    expect(account.locator(".sync-found")).to_be_hidden()
    stack.drain()
    page.goto(f"{stack.api_url}/settings/contacts/review#token={alice.token}")
    expect(page.get_by_text("No contacts to review.")).to_be_visible()
    expect(page.locator("#declined-heading")).to_have_text(f"Declined contacts ({ROWS})")
    show = page.get_by_role("button", name="Show declined")
    expect(show).to_have_attribute("aria-expanded", "false")
    show.click()
    expect(page.get_by_role("button", name="Hide declined")).to_have_attribute("aria-expanded", "true")
    declined = page.locator("#declined-rows li")
    expect(declined).to_have_count(50)
    page.locator("#declined-next").click()
    expect(declined).to_have_count(ROWS - 50)
    expect(page.locator("#declined-info")).to_have_text(f"Rows 51–{ROWS} of {ROWS}")
    at_both_widths(page, "contact-review-declined")

    row = declined.first
    name = row.locator(".name").inner_text()
    row.get_by_role("button", name=f"Bring back {name}", exact=True).click()
    expect(page.locator("#notice")).to_have_text(f"{name} is back in the review.")
    expect(page.locator("#declined-heading")).to_have_text(f"Declined contacts ({ROWS - 1})")
    expect(page.locator("#total")).to_have_text("1 contact to review")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).locator(".name")).to_have_text(name)
    assert [r["name"] for r in api_offered(alice)] == [name]
    assert len(api_offered(alice, "declined")) == ROWS - 1
    assert console_errors == []
