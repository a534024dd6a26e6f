"""In-process use cases wired to the session's local services, on fresh tables per test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from crmsync.config import Settings
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from crmsync.logic.wiring import build_calendar_settings, build_calendars, build_integrations
from crmsync.security.tokens import TokenCipher


class GoogleControl:
    """The emulator's control API, over HTTP like any other client of it."""

    def __init__(self, base_url: str, client_id: str) -> None:
        self.base_url = base_url
        self.client_id = client_id

    def issued(self) -> dict[str, list[str]]:
        return requests.get(f"{self.base_url}/_emulator/issued", timeout=10).json()

    def revocations(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.base_url}/_emulator/revocations", timeout=10).json()

    def revoke_grant(self, email: str) -> None:
        requests.post(
            f"{self.base_url}/_emulator/grants/revoke", json={"email": email, "client_id": self.client_id}, timeout=10
        ).raise_for_status()


@pytest.fixture
def service_env(stack, tables, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a deployed function gets, pointed at this test's own tables."""
    env = dict(stack.function_environment("ApiFunction"))
    env["CONNECTIONS_TABLE"] = tables["ConnectionsTable"]
    env["OAUTH_STATES_TABLE"] = tables["OAuthStatesTable"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def make_integrations(service_env: dict[str, str]) -> Callable[..., Integrations]:
    def make(counter: Callable[[str], None] | None = None, **overrides: Any) -> Integrations:
        settings = Settings.from_env(service_env)
        google = {k: overrides.pop(k) for k in list(overrides) if k in type(settings.google).model_fields}
        if google:
            settings = settings.model_copy(update={"google": settings.google.model_copy(update=google)})
        assert not overrides, f"unknown overrides {overrides}"
        return build_integrations(settings, counter=_Counter(counter) if counter else None)

    return make


class _Counter:
    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink

    def count(self, name: str) -> None:
        self.sink(name)


@pytest.fixture
def integrations(make_integrations: Callable[..., Integrations]) -> Integrations:
    return make_integrations()


@pytest.fixture
def google(stack, service_env: dict[str, str]) -> GoogleControl:
    return GoogleControl(stack.google.base_url, service_env["GOOGLE_CLIENT_ID"])


@pytest.fixture
def kms_cipher(service_env: dict[str, str]) -> TokenCipher:
    return TokenCipher(service_env["TOKEN_KEY_ID"])


@pytest.fixture
def calendars(service_env: dict[str, str]) -> Calendars:
    return build_calendars(Settings.from_env(service_env))


@pytest.fixture
def calendar_settings(service_env: dict[str, str]) -> CalendarSettingsService:
    return build_calendar_settings(Settings.from_env(service_env))
