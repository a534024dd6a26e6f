"""PROVIDERS.md §1 E and F: a notification Google never delivers (an outage, a lapsed channel)
must not leave the CRM silently stale. The scheduled health check sweeps every synced
calendar, so the change arrives at the latest one period later."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from crmsync.domain.sweeps import Sweep
from tests.e2e.test_integrations_api import Browser
from tests.support import clock
from tests.support.google_consent import consent
from tests.support.google_user import GoogleCalendarUser
from tests.support.sweeps import fire_sweep_for

pytestmark = pytest.mark.e2e


def test_a_change_whose_notification_was_lost_arrives_with_the_scheduled_sweep(stack, unique: str) -> None:
    alice = Browser(stack, f"tenant-{unique}", "alice")
    email = f"sweep-{unique}@example.com"
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()  # the first sync of the primary calendar, and its watch channel
    dentist = clock.next_weekday(clock.WEDNESDAY, 10)
    window = {
        "start": clock.z(dentist - timedelta(hours=1)),
        "end": clock.z(dentist + timedelta(hours=2)),
        "duration": 60,
    }
    assert alice.api("GET", "/v1/availability", params=window).json()["busy"] == []

    requests.post(f"{stack.google.base_url}/_emulator/push/disturb", json={"mode": "drop", "count": 1}, timeout=10)
    GoogleCalendarUser(stack.google.base_url, email).add(
        summary="dentist", start={"dateTime": clock.z(dentist)}, end={"dateTime": clock.z(dentist + timedelta(hours=1))}
    )
    stack.google.push.wait_idle()
    stack.drain()
    assert alice.api("GET", "/v1/availability", params=window).json()["busy"] == []  # nothing told us

    # The 6-hourly health check, at the tick whose slot holds this connection.
    (connection,) = alice.api("GET", "/v1/integrations").json()["items"]
    fire_sweep_for(stack, Sweep.HEALTH, f"tenant-{unique}", "alice", connection["id"])
    stack.drain()  # health checks, then the syncs they queue

    busy = alice.api("GET", "/v1/availability", params=window).json()["busy"]
    assert busy == [
        {"start": clock.offset(dentist), "end": clock.offset(dentist + timedelta(hours=1)), "source": "calendar"}
    ]
