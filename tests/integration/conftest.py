"""In-process use cases wired to the session's local services, on fresh tables per test
(``service_env``, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from crmsync.security.tokens import TokenCipher
from tests.fakes.world import RecordingQueue
from tests.support.access import WrappedAccess
from tests.support.google_user import GoogleCalendarUser


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
def make_integrations(service_env: dict[str, str]) -> Callable[..., Integrations]:
    def make(counter: Callable[[str], None] | None = None, **overrides: Any) -> Integrations:
        settings = Settings.from_env(service_env)
        google = {k: overrides.pop(k) for k in list(overrides) if k in type(settings.google).model_fields}
        if google:
            settings = settings.model_copy(update={"google": settings.google.model_copy(update=google)})
        assert not overrides, f"unknown overrides {overrides}"
        return Graph(settings, counter=_Counter(counter) if counter else None).integrations

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
def ada(stack) -> str:
    """A Google account of this test's own, with the demo calendars (Team, a read-only one).
    The emulator serves the whole session: a test that deletes a calendar, revokes a grant or
    injects a fault must not reach an account another test uses."""
    return GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email


@pytest.fixture
def grace(stack) -> str:
    """A second account of this test's own (see ``ada``)."""
    return GoogleCalendarUser.new(stack.google.base_url, "grace", domain="example.org", demo=True).email


@pytest.fixture
def kms_cipher(service_env: dict[str, str]) -> TokenCipher:
    """The production cipher (credentials sealed under the month's data key), on this test's tables."""
    from crmsync.dal.data_keys import DataKeyStore
    from crmsync.models import bind_tables

    bind_tables(
        connections_table=service_env["CONNECTIONS_TABLE"], oauth_states_table=service_env["OAUTH_STATES_TABLE"]
    )
    return TokenCipher(service_env["TOKEN_KEY_ID"], data_keys=DataKeyStore())


@pytest.fixture
def graph(service_env: dict[str, str]) -> Graph:
    """The production object graph, on this test's tables (a new one per test)."""
    return Graph(Settings.from_env(service_env))


@pytest.fixture
def calendars(graph: Graph) -> Calendars:
    return graph.calendars


@pytest.fixture
def calendar_settings(graph: Graph) -> CalendarSettingsService:
    return graph.calendar_settings


@pytest.fixture
def recorded() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def make_appointments(graph: Graph, recorded: RecordingQueue) -> Callable[..., Appointments]:
    """Appointments wired like production, but with the recording queue (or ``queue``) and,
    optionally, a wrapper around the real Google Calendar adapter (to inject failures)."""

    def make(wrap: Callable[[Any], Any] | None = None, external_busy: Any = None, queue: Any = None) -> Appointments:
        return Appointments(
            store=graph.appointment_store,
            settings=graph.settings_store,
            connections=graph.connection_store,
            calendars=WrappedAccess(graph.connectors, wrap) if wrap else graph.connectors,
            queue=queue or recorded,
            external_busy=external_busy,
            created=graph.mirror_store.record_unlisted,
        )

    return make


@pytest.fixture
def calendar_sync(graph: Graph) -> Any:
    return graph.calendar_sync


@pytest.fixture
def availability(graph: Graph) -> Any:
    return graph.availability
