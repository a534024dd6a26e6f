"""Schedules: fire with Input, the Scheduled Event payload, the control API."""

from __future__ import annotations

import pytest
import requests

from devstack.stack import Stack

pytestmark = pytest.mark.integration


def test_fire_passes_the_input_json(runtime_stack: Stack) -> None:
    result = runtime_stack.fire("fixture-local-nightly")
    assert result.ok
    assert result.payload == {"job": "nightly", "full": True}
    assert runtime_stack.fire("Nightly").payload == result.payload
    assert runtime_stack.fire("ScheduledFunction.Nightly").payload == result.payload


def test_fire_without_input_sends_a_scheduled_event(runtime_stack: Stack) -> None:
    payload = runtime_stack.fire("Hourly").payload
    assert payload["detail-type"] == "Scheduled Event"
    assert payload["account"] == "123456789012"
    assert payload["region"] == "us-east-1"
    assert payload["detail"] == {}
    assert payload["resources"][0].endswith("ScheduledFunction-Hourly")


def test_unknown_schedule(runtime_stack: Stack) -> None:
    with pytest.raises(KeyError, match="unknown schedule"):
        runtime_stack.fire("never")


def test_fire_over_the_control_api(runtime_stack: Stack) -> None:
    response = requests.post(f"{runtime_stack.api_url}/.devstack/schedules/Nightly/fire", timeout=30)
    assert response.status_code == 200
    assert response.json()["payload"] == {"job": "nightly", "full": True}
    missing = requests.post(f"{runtime_stack.api_url}/.devstack/schedules/never/fire", timeout=30)
    assert missing.status_code == 404


@pytest.mark.parametrize("ticks", ["3", 0, -1, 1.5, True, None, 289])
def test_fire_refuses_ticks_that_are_not_a_count(runtime_stack: Stack, ticks: object) -> None:
    """A tick count that is not a whole number from 1 to a day's 288 is the caller's mistake
    (400), not an unknown schedule (404)."""
    response = requests.post(
        f"{runtime_stack.api_url}/.devstack/schedules/Nightly/fire", json={"ticks": ticks}, timeout=30
    )
    assert response.status_code == 400, response.text
    assert "ticks" in response.json()["message"]
