"""Domain events reach the EventBridge bus through the deployed wiring (template → env →
functions → moto's EventBridge), with the right origin."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.test_integrations_api import Browser
from tests.support import clock
from tests.support.google_consent import consent
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.e2e


def test_bookings_and_calendar_changes_are_announced_on_the_bus(stack, unique: str) -> None:
    alice = Browser(stack, f"tenant-{unique}", "alice")
    email = f"events-{unique}@example.com"
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()
    linked = alice.api(
        "PUT", "/v1/settings/linked-calendar", json={"connection_id": _connection(alice), "calendar_id": email}
    )
    assert linked.status_code == 200, linked.text
    stack.drain()

    kickoff = clock.next_weekday(clock.MONDAY, 9)
    created = alice.api(
        "POST",
        "/v1/appointments",
        json={
            "title": "Kick-off",
            "start": clock.z(kickoff),
            "end": clock.z(kickoff + timedelta(hours=1)),
            "time_zone": "UTC",
        },
    )
    assert created.status_code == 201, created.text
    appointment_id = created.json()["id"]
    stack.drain()  # the push to Google
    stack.google.push.wait_idle()  # Google's notification of our own event reached the webhook
    stack.drain()  # the sync it queued

    def mine(detail_type: str) -> list[dict]:
        return [
            e["detail"]
            for e in stack.bus_events(detail_type)
            if e["detail"]["tenant_id"] == f"tenant-{unique}" and e["source"] == "crmsync"
        ]

    (booked,) = mine("AppointmentCreated")
    assert (booked["appointment_id"], booked["origin"], booked["revision"]) == (appointment_id, "crm", 1)
    assert booked["event_id"] == f"appointment:{appointment_id}:1"

    event_id = alice.api("GET", f"/v1/appointments/{appointment_id}").json()["calendar_event"]["event_id"]
    GoogleCalendarUser(stack.google.base_url, email).patch(
        event_id,
        start={"dateTime": clock.z(kickoff + timedelta(hours=2))},
        end={"dateTime": clock.z(kickoff + timedelta(hours=3))},
    )
    stack.google.push.wait_idle()
    stack.drain()

    (moved,) = mine("AppointmentChanged")
    assert (moved["appointment_id"], moved["origin"]) == (appointment_id, "provider")
    assert moved["start"] == clock.z(kickoff + timedelta(hours=2))
    assert {e["calendar_id"] for e in mine("ExternalBusyChanged")} == {email}


def _connection(browser: Browser) -> str:
    (connection,) = browser.integrations()
    return str(connection["id"])
