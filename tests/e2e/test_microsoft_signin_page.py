"""The Integrations page's "Sign in with Microsoft" in headless Chromium: the button, the
Microsoft emulator's consent page (https), back on the page with the account listed, then
Disconnect; an organisation that needs admin consent ends with a clear message.

Chromium must trust the emulator's certificate, which a CA made at the emulator's start
signed. Its Linux trust store is an NSS database (no certutil here to add the CA), so this
module's own browser is told to accept that one server key only
(``--ignore-certificate-errors-spki-list`` with the SHA-256 of its SubjectPublicKeyInfo),
not every certificate (``--ignore-certificate-errors``). Loopback only, as the whole stack."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack.faketime import without_clock_variables
from tests.e2e.conftest import CHROMIUM_FLAGS
from tests.e2e.test_integrations_api import check_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _server_key_pin(stack: Any) -> str:
    """base64(SHA-256(SPKI)) of the emulator's server certificate (the first of its chain)."""
    chain = stack.microsoft.tls.files()[1].read_bytes()
    leaf = x509.load_pem_x509_certificates(chain)[0]
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def browser(stack: Any) -> Iterator[Browser]:
    """This module's Chromium: the conftest's flags plus the emulator's key pinned as trusted."""
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is installed by `make deps`"
    flags = [*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={_server_key_pin(stack)}"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=flags, env=without_clock_variables(os.environ)
        )
        yield chromium
        chromium.close()


@pytest.fixture
def account(stack: Any, unique: str) -> str:
    """A work account of this test's own at the emulator (no other test's grants)."""
    email = f"ada-{unique}@contoso.test"
    stack.microsoft.add_user(email, f"Ada {unique}")
    return email


def open_page(page: Page, stack: Any, unique: str) -> None:
    token = stack.issue_token(f"tenant-{unique}", "browser-user")
    page.goto(f"{stack.api_url}/settings/integrations#token={token}")


def sign_in_with_microsoft(page: Page, stack: Any, email: str) -> None:
    """The button, then the emulator's consent page: pick the account, Accept."""
    page.get_by_role("button", name="Sign in with Microsoft").click()
    page.wait_for_url(f"{stack.microsoft.base_url}/**")
    page.locator(f'input[name="account"][value="{email}"]').check()
    page.locator("#accept").click()


def test_sign_in_with_microsoft_lists_the_account_and_disconnect_removes_it(
    page: Page, stack: Any, unique: str, account: str
) -> None:
    open_page(page, stack, unique)
    expect(page.get_by_text("No Microsoft account is connected yet.")).to_be_visible()
    sign_in_with_microsoft(page, stack, account)
    page.wait_for_url(f"{stack.api_url}/settings/integrations**")
    expect(page.locator("#notice")).to_have_text(f"{account} is connected.")
    row = page.locator(f'#microsoft-accounts li.account[data-email="{account}"]')
    expect(row).to_have_attribute("data-status", "connected")
    expect(row.locator(".status-icon")).to_have_text("✔")
    expect(page.locator("#accounts li.account")).to_have_count(0)  # not among Google's

    row.get_by_role("button", name="Connected").click()
    row.get_by_role("button", name=f"Disconnect {account}", exact=True).click()
    expect(page.locator("#notice")).to_have_text(f"{account} was disconnected.")
    expect(page.locator("#microsoft-accounts li.account")).to_have_count(0)
    expect(page.get_by_text("No Microsoft account is connected yet.")).to_be_visible()


def test_an_organisation_that_needs_admin_consent_gets_a_clear_message(page: Page, stack: Any, unique: str) -> None:
    open_page(page, stack, unique)
    sign_in_with_microsoft(page, stack, "linus@fabrikam.test")
    expect(page.get_by_text("Need admin approval")).to_be_visible()
    page.locator("#return-to-app").click()
    page.wait_for_url(f"{stack.api_url}/settings/integrations**")
    expect(page.locator("#notice")).to_contain_text("Your organisation's administrator must approve crmsync first")
    expect(page.locator("#microsoft-accounts li.account")).to_have_count(0)


def test_cancelling_at_microsoft_says_so_with_microsofts_name(page: Page, stack: Any, unique: str) -> None:
    open_page(page, stack, unique)
    page.get_by_role("button", name="Sign in with Microsoft").click()
    page.wait_for_url(f"{stack.microsoft.base_url}/**")
    page.locator("#cancel").click()
    page.wait_for_url(f"{stack.api_url}/settings/integrations**")
    expect(page.locator("#notice")).to_have_text("You cancelled the Microsoft sign-in. Nothing was connected.")


def test_a_microsoft_account_that_needs_reauthorization_is_reconnected_in_place(
    page: Page, stack: Any, unique: str, account: str
) -> None:
    """The user's sessions were revoked at Microsoft; the health check marks the account; its
    Reconnect goes through Microsoft's consent again and the same row is connected again."""
    open_page(page, stack, unique)
    sign_in_with_microsoft(page, stack, account)
    row = page.locator(f'#microsoft-accounts li.account[data-email="{account}"]')
    expect(row).to_have_attribute("data-status", "connected")
    connection_id = row.get_attribute("data-id")
    stack.drain()
    stack.microsoft.revoke_grants(account)
    check_accounts(stack, account)
    stack.drain()
    page.reload()
    expect(row).to_have_attribute("data-status", "needs_reauth")
    expect(row.locator(".status-text")).to_have_text(
        "Needs re-authorization: Microsoft no longer accepts this connection. Reconnect it."
    )
    row.get_by_role("button", name=f"Reconnect {account}").click()
    page.wait_for_url(f"{stack.microsoft.base_url}/**")
    page.locator(f'input[name="account"][value="{account}"]').check()
    page.locator("#accept").click()
    page.wait_for_url(f"{stack.api_url}/settings/integrations**")
    expect(page.locator("#notice")).to_have_text(f"{account} is connected.")
    expect(row).to_have_attribute("data-status", "connected")
    expect(row).to_have_attribute("data-id", connection_id or "")
