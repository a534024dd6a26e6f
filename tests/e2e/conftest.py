from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

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
