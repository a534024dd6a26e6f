"""Idempotency-Key on POST /v1/appointments through the local stack: a client retrying after
a timeout gets the first appointment back, and Google gets one event (issue 10, section 2).
The in-progress case (409 + Retry-After) is tested at the integration level, where a record
can be held deterministically (tests/integration/test_idempotency.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.e2e.test_integrations_api import Browser
from tests.support import clock
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e]


def booking(title: str, day: int = clock.THURSDAY) -> dict[str, str]:
    start = clock.next_weekday(day, 11)
    return {"title": title, "start": clock.z(start), "end": clock.z(start + timedelta(hours=1)), "time_zone": "UTC"}


def test_a_retried_create_with_the_same_key_makes_one_appointment_and_one_event(alice: Browser, stack) -> None:
    google = GoogleCalendarUser.new(stack.google.base_url, "ada")
    alice.connect(google.email)
    stack.drain()
    primary = next(c for c in alice.api("GET", "/v1/calendars").json()["items"] if c["primary"])
    linked = alice.api(
        "PUT",
        "/v1/settings/linked-calendar",
        json={"connection_id": primary["connection_id"], "calendar_id": primary["calendar_id"]},
    )
    assert linked.status_code == 200, linked.text

    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = alice.api("POST", "/v1/appointments", json=booking("Retried"), headers=key)
    retried = alice.api("POST", "/v1/appointments", json=booking("Retried"), headers=key)
    assert first.status_code == 201, first.text
    assert retried.status_code == 201, retried.text
    assert retried.json() == first.json()
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [a["id"] for a in alice.api("GET", "/v1/appointments").json()["items"]] == [first.json()["id"]]

    stack.drain()
    events = [e for e in google.events(primary["calendar_id"], cancelled=False) if e.get("summary") == "Retried"]
    assert len(events) == 1

    other = alice.api("POST", "/v1/appointments", json=booking("Another body"), headers=key)
    assert other.status_code == 422
    assert other.headers["Content-Type"] == "application/problem+json"
    assert other.json()["type"] == "urn:crmsync:problem:idempotency-key-reused"
    assert len(alice.api("GET", "/v1/appointments").json()["items"]) == 1


def test_two_users_with_the_same_key_get_two_appointments(alice: Browser, bob: Browser) -> None:
    key = {"Idempotency-Key": "order-42"}
    mine = alice.api("POST", "/v1/appointments", json=booking("Same key"), headers=key)
    theirs = bob.api("POST", "/v1/appointments", json=booking("Same key"), headers=key)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_a_problem_document(alice: Browser, key: str) -> None:
    refused = alice.api(
        "POST", "/v1/appointments", json=booking("Bad key"), headers={"Idempotency-Key": key.encode("utf-8")}
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:crmsync:problem:validation"
    assert alice.api("GET", "/v1/appointments").json()["items"] == []
