"""The BCC Logging Address page in headless Chromium: see and copy the address, rotate it
(confirmed), add a sender address (code and instructions shown), verify it by mail, remove it;
the never-log list: add, see, remove, a refused entry's reason."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser_checks import axe_violations, shoot
from tests.e2e.test_bcc_logging import message
from tests.e2e.test_integrations_page import WIDTHS, fits_the_width, has_an_icon

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADDRESS = re.compile(r"^u[a-z2-7]{26}@\S+$")


def test_address_copy_rotate_and_sender_addresses(page: Page, stack: Any, unique: str) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Email").click()
    page.wait_for_url("**/settings/email")

    shown = page.locator("#bcc-address")
    expect(shown).to_have_text(ADDRESS)
    first = shown.inner_text()

    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#notice")).to_have_text("Address copied.")
    assert page.evaluate("navigator.clipboard.readText()") == first

    page.get_by_role("button", name="Rotate", exact=True).click()
    expect(page.get_by_text("The current one stops logging immediately")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(shown).to_have_text(first)
    page.get_by_role("button", name="Rotate", exact=True).click()
    page.get_by_role("button", name="Rotate address").click()
    expect(page.locator("#notice")).to_have_text("A new address was issued. The previous one no longer logs mail.")
    expect(shown).not_to_have_text(first)
    expect(shown).to_have_text(ADDRESS)
    second = shown.inner_text()

    alias = f"alias-{unique}@other.example"
    page.get_by_label("Email address").fill(alias)
    page.get_by_role("button", name="Add address").click()
    code = page.locator("#verification-code")
    expect(code).to_have_text(re.compile(r"^CRM-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$"))
    expect(page.locator("#verification-instructions")).to_contain_text(second)
    row = page.locator(f'li.sender[data-email="{alias}"]')
    expect(row).to_have_attribute("data-status", "pending")

    # The user sends the verification mail; the page shows the address verified after a reload.
    received = stack.deliver_mail(message(alias, [second], f"Verify {code.inner_text()}"), alias, [second])
    assert all(d.ok for d in stack.mail_drain() if d.source_id == received.message_id)
    page.reload()
    expect(page.locator(f'li.sender[data-email="{alias}"]')).to_have_attribute("data-status", "verified")
    expect(shown).to_have_text(second)

    page.get_by_role("button", name=f"Remove {alias}").click()
    expect(page.locator("#notice")).to_have_text(f"{alias} was removed.")
    expect(page.locator(f'li.sender[data-email="{alias}"]')).to_have_count(0)


def test_a_refused_sender_address_shows_the_reason(page: Page, stack: Any, unique: str) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/email#token={token}")
    expect(page.locator("#bcc-address")).to_have_text(ADDRESS)
    domain = page.locator("#bcc-address").inner_text().split("@")[1]
    page.get_by_label("Email address").fill(f"someone@{domain}")
    page.get_by_role("button", name="Add address").click()
    expect(page.locator("#notice")).to_have_text("An address on the logging domain cannot be a sender address.")
    expect(page.locator("li.sender")).to_have_count(0)


def test_without_a_crm_session_the_page_says_so(page: Page, stack: Any) -> None:
    page.goto(f"{stack.api_url}/settings/email")
    expect(page.locator("#notice")).to_contain_text("No CRM session")
    expect(page.get_by_role("button", name="Add address")).to_be_disabled()


@WIDTHS
def test_every_state_fits_the_width_and_logs_no_error(
    page: Page, stack: Any, unique: str, width: int, console_errors: list[str]
) -> None:
    """No session, the address, the rotate confirmation, a pending sender with its code: no
    sideways scroll at phone width, nothing in the console."""
    page.goto(f"{stack.api_url}/settings/email")
    expect(page.locator("#notice")).to_contain_text("No CRM session")
    fits_the_width(page, width)
    page.goto("about:blank")  # else adding the fragment is a same-document navigation

    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/email#token={token}")
    expect(page.locator("#bcc-address")).to_have_text(ADDRESS)
    fits_the_width(page, width)
    page.get_by_role("button", name="Rotate", exact=True).click()
    expect(page.get_by_role("button", name="Rotate address")).to_be_visible()
    fits_the_width(page, width)
    shoot(page, "email-rotate-confirm")
    page.get_by_role("button", name="Cancel").click()

    alias = f"a-long-alias-for-the-phone-{unique}@other.example"
    page.get_by_label("Email address").fill(alias)
    page.get_by_role("button", name="Add address").click()
    expect(page.locator(f'li.sender[data-email="{alias}"]')).to_have_attribute("data-status", "pending")
    expect(page.locator("#verification-instructions")).to_be_visible()
    fits_the_width(page, width)
    shoot(page, "email-sender-pending")
    has_an_icon(page)
    assert console_errors == []


def passes_axe(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], "\n".join(violations)


@WIDTHS
def test_never_log_add_see_remove_and_a_refused_entry(
    page: Page, stack: Any, unique: str, width: int, console_errors: list[str]
) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/email#token={token}")
    card = page.get_by_role("region", name="Never log")
    expect(card.get_by_text("Nothing is on your never-log list.")).to_be_visible()
    field = card.get_by_label("Address or domain")

    # A garbage entry: the problem's detail is shown beside the field and announced.
    field.fill("not a domain")
    card.get_by_role("button", name="Add to never log").click()
    error = page.locator("#never-log-error")
    expect(error).to_have_text(re.compile(r"^'not a domain' is not a domain \(like example\.com\)"))
    expect(error).to_be_visible()
    expect(page.locator("#notice")).to_have_text(error.inner_text())
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(card.locator("li.never-log-entry")).to_have_count(0)
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "email-never-log-refused")

    # By keyboard: type a domain, Enter adds it (lower-cased), the error goes.
    field.fill("")
    field.press_sequentially(f"Family-{unique}.Example")
    field.press("Enter")
    domain = f"family-{unique}.example"
    row = card.locator(f'li.never-log-entry[data-entry="{domain}"]')
    expect(row).to_have_attribute("data-kind", "domain")
    expect(row).to_contain_text("This domain and its subdomains")
    expect(page.locator("#notice")).to_have_text(f"{domain} is on the never-log list: its mail will not be logged.")
    expect(error).to_be_hidden()
    expect(field).not_to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("")
    expect(card.get_by_text("Nothing is on your never-log list.")).to_be_hidden()

    address = f"a-long-personal-address-{unique}@home.example"
    field.fill(address)
    card.get_by_role("button", name="Add to never log").click()
    expect(card.locator(f'li.never-log-entry[data-entry="{address}"]')).to_contain_text("This address only")
    # Stored, not only drawn: a reload shows both, sorted as the API lists them.
    page.reload()
    expect(card.locator("li.never-log-entry")).to_have_count(2)
    assert card.locator("li.never-log-entry").evaluate_all("rows => rows.map(r => r.dataset.entry)") == sorted(
        [domain, address]
    )
    fits_the_width(page, width)
    passes_axe(page)
    shoot(page, "email-never-log-list")

    # Remove by keyboard: the button is reachable with Tab and named after its entry.
    remove = card.get_by_role("button", name=f"Remove {domain} from the never-log list")
    remove.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_have_text(
        f"{domain} was removed from the never-log list; its mail is logged again from now on."
    )
    expect(row).to_have_count(0)
    expect(field).to_be_focused()
    card.get_by_role("button", name=f"Remove {address} from the never-log list").click()
    expect(card.get_by_text("Nothing is on your never-log list.")).to_be_visible()
    page.reload()
    expect(card.locator("li.never-log-entry")).to_have_count(0)
    has_an_icon(page)
    # The browser reports the refused request itself; nothing else went wrong.
    assert [e for e in console_errors if "status of 422" not in e] == []
    assert len(console_errors) == 1, console_errors


def test_never_log_without_a_session_offers_nothing(page: Page, stack: Any) -> None:
    page.goto(f"{stack.api_url}/settings/email")
    expect(page.locator("#notice")).to_contain_text("No CRM session")
    expect(page.get_by_role("button", name="Add to never log")).to_be_disabled()
