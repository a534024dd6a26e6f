from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from devstack.faketime import without_clock_variables

#: Headless Chromium as Debian ships it (`playwright install` cannot download here).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def unique() -> str:
    """A fresh id per test: tests share one stack and stay apart by tenant."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is installed by `make deps`"
    with sync_playwright() as playwright:
        # Under libfaketime (`make test-at`) Chromium aborts at start: it runs at the real date.
        real_clock = without_clock_variables(os.environ)
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, env=real_clock)
        yield chromium
        chromium.close()


@pytest.fixture
def alice(stack, unique: str):
    """A CRM user of a tenant of this test's own (`Browser`: cookies and the bearer token)."""
    from tests.e2e.test_integrations_api import Browser

    return Browser(stack, f"tenant-{unique}", "alice")


@pytest.fixture
def bob(stack, unique: str):
    """Another user of alice's tenant."""
    from tests.e2e.test_integrations_api import Browser

    return Browser(stack, f"tenant-{unique}", "bob")


@pytest.fixture
def width() -> int:
    """The viewport's width (a test checks a phone by parametrizing it, e.g. 375)."""
    return 1280


@pytest.fixture
def console_errors() -> list[str]:
    """What the page logged as an error (console.error, failed loads, uncaught exceptions)."""
    return []


@pytest.fixture
def page(browser: Browser, stack, width: int, console_errors: list[str]) -> Iterator[Page]:
    """A fresh browser context and page on the local stack (clipboard allowed for its pages),
    recording console errors into ``console_errors``."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.api_url)
    page = context.new_page()
    page.set_default_timeout(20_000)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(f"{message.text} at {message.location.get('url')}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    yield page
    context.close()
