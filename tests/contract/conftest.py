"""Shared fixtures of the contract suites: one emulator per module, and authorized
google-api-python-client services pointed at it (only the root URL differs from Google)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from devstack.google import GoogleEmulator

#: Where each API lives on the emulator, as `client_options={"api_endpoint": ...}` needs it.
API_ROOTS = {"calendar": "/calendar/v3/", "gmail": "/", "people": "/"}


@pytest.fixture(scope="module")
def google_emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        emulator.seed_demo_accounts()
        yield emulator


def mint_token(emulator: GoogleEmulator, email: str, scopes: list[str]) -> str:
    response = requests.post(
        f"{emulator.base_url}/_emulator/tokens", json={"email": email, "scopes": scopes}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.fixture
def google_service(google_emulator: GoogleEmulator) -> Callable[..., Any]:
    """``google_service("calendar", "v3", email, scopes)`` → a googleapiclient Resource."""

    def make(name: str, version: str, email: str, scopes: list[str]) -> Any:
        credentials = Credentials(token=mint_token(google_emulator, email, scopes))
        return build(
            name,
            version,
            credentials=credentials,
            client_options={"api_endpoint": google_emulator.base_url + API_ROOTS[name]},
            static_discovery=True,
            cache_discovery=False,
        )

    return make


#: Google's scope for reading and writing contacts.
CONTACTS_SCOPE = "https://www.googleapis.com/auth/contacts"


@pytest.fixture
def email(request: pytest.FixtureRequest) -> str:
    """A fresh account per test (the emulator is shared by the module): an empty primary
    calendar in UTC, an empty address book and mailbox; named after the suite."""
    suite = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    return f"{suite}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def people(google_service: Callable[..., Any], email: str) -> Any:
    """The People API as ``email``, with the contacts scope."""
    return google_service("people", "v1", email, [CONTACTS_SCOPE])
