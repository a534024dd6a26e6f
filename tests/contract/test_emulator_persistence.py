"""`make dev --persist`: the emulator's data survives a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from devstack.google import GoogleEmulator
from tests.support import clock

pytestmark = pytest.mark.integration

CALENDAR = "https://www.googleapis.com/auth/calendar"


def token(emulator: GoogleEmulator, email: str) -> dict[str, str]:
    answer = requests.post(
        f"{emulator.base_url}/_emulator/tokens", json={"email": email, "scopes": [CALENDAR]}, timeout=5
    )
    return {"Authorization": "Bearer " + answer.json()["access_token"]}


def test_accounts_grants_and_api_data_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "google.pickle"
    with GoogleEmulator(persist_path=path) as first:
        first.register_client("client", "secret", ["http://127.0.0.1/cb"])
        headers = token(first, "kept@example.com")
        created = requests.post(
            f"{first.base_url}/calendar/v3/calendars/primary/events",
            headers=headers,
            json={
                "summary": "kept",
                "start": {"dateTime": clock.z(clock.days_ahead(5, 10))},
                "end": {"dateTime": clock.z(clock.days_ahead(5, 11))},
            },
            timeout=5,
        )
        assert created.status_code == 200, created.text
    assert path.is_file()

    with GoogleEmulator(persist_path=path) as second:
        # The old access token still works: the whole OAuth state came back.
        events = requests.get(f"{second.base_url}/calendar/v3/calendars/primary/events", headers=headers, timeout=5)
        assert events.status_code == 200, events.text
        assert [e["summary"] for e in events.json()["items"]] == ["kept"]
        assert [c["client_id"] for c in requests.get(f"{second.base_url}/_emulator/clients", timeout=5).json()] == [
            "client"
        ]
        # And it keeps working: a change after the restart is served too.
        assert requests.get(f"{second.base_url}/calendar/v3/users/me/calendarList", headers=headers, timeout=5).ok
