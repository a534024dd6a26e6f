"""Issue 10 §3: the Calendar webhook under odd headers and bursts, through the local stack
(API Gateway stand-in, `google_webhook`, the SQS FIFO queue, `sync_worker`, the emulator)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests

from tests.e2e.test_integrations_api import Browser
from tests.support import clock
from tests.support.google_consent import consent
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.e2e

BURST = 200
SENDERS = 16


def connected(stack, unique: str, name: str) -> tuple[Browser, str, dict[str, Any]]:
    """A user with a synced primary calendar and its live watch channel (as the emulator
    knows it: id, resource id and the token only Google and we know)."""
    alice = Browser(stack, f"tenant-{unique}", "alice")
    email = f"{name}-{unique}@example.com"
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()
    stack.google.push.wait_idle()  # the channel's own "sync" message
    stack.drain()
    (channel,) = requests.get(
        f"{stack.google.base_url}/_emulator/calendar/channels", params={"email": email}, timeout=10
    ).json()
    return alice, email, channel


def notification(channel: dict[str, Any], number: int = 7, **over: str) -> dict[str, str]:
    return {
        "X-Goog-Channel-ID": channel["id"],
        "X-Goog-Channel-Token": channel["token"],
        "X-Goog-Resource-ID": channel["resourceId"],
        "X-Goog-Resource-URI": channel["resourceUri"],
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": str(number),
        **over,
    }


def events_lists(stack, email: str) -> int:
    answer = requests.get(
        f"{stack.google.base_url}/_emulator/calls",
        params={"method": "calendar.events.list", "email": email, "calendarId": email},
        timeout=10,
    )
    answer.raise_for_status()
    return int(answer.json()["count"])


def poll(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize(
    "odd",
    [
        {"X-Goog-Message-Number": "9" * 500},
        {"X-Goog-Message-Number": "twelve"},
        {"X-Goog-Message-Number": "1\x01"},
        {"X-Goog-Channel-Token": "t" * 8000},
        {"X-Goog-Resource-State": "exists\x7f"},
    ],
    ids=["500-digit-number", "non-numeric-number", "control-char", "huge-token", "del-in-state"],
)
def test_an_odd_header_on_a_live_channel_is_a_logged_4xx_never_a_500(stack, unique: str, odd: dict[str, str]) -> None:
    _, _, channel = connected(stack, unique, "odd")
    before = len(stack.logs)
    answer = requests.post(
        f"{stack.api_url}/webhooks/google/calendar", headers=notification(channel, **odd), timeout=30
    )
    assert answer.status_code == 400
    logged = [line for _, line in stack.logs.snapshot()[before:] if "calendar notification" in line]
    assert any('"outcome":"malformed x-goog-' in line for line in logged), logged
    assert not any(value in line for line in logged for value in odd.values())  # the value is not logged


def test_a_burst_is_acknowledged_without_errors_synced_at_most_thrice_and_the_last_change_arrives(
    stack, unique: str
) -> None:
    """DESIGN.md "Coalescing notifications": 200 authentic notifications from 16 concurrent
    senders while the worker runs; a change is made in Google just before the last one."""
    alice, email, channel = connected(stack, unique, "burst")
    before = events_lists(stack, email)
    marker = clock.next_weekday(clock.TUESDAY, 9)
    window = {
        "start": clock.z(marker - timedelta(hours=1)),
        "end": clock.z(marker + timedelta(hours=2)),
        "duration": 60,
    }
    assert alice.api("GET", "/v1/availability", params=window).json()["busy"] == []

    def send(number: int, **over: str) -> int:
        return requests.post(
            f"{stack.api_url}/webhooks/google/calendar", headers=notification(channel, number, **over), timeout=60
        ).status_code

    # The webhook's local workers are started first, with as many `sync` messages (a channel's
    # first, acknowledged and ignored): on 2 cores, parallel cold starts stall every sender for
    # seconds, which would split the burst in two (Lambda starts environments elsewhere).
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        warm = {"X-Goog-Resource-State": "sync", "X-Goog-Message-Number": "1"}
        assert set(pool.map(lambda _: send(1, **warm), range(SENDERS))) == {200}
    assert stack.sqs is not None
    stack.sqs.start()  # the worker syncs while the burst goes on, as deployed
    try:
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            statuses = list(pool.map(send, range(2, BURST + 1)))
        GoogleCalendarUser(stack.google.base_url, email).add(
            summary="marker",
            start={"dateTime": clock.z(marker)},
            end={"dateTime": clock.z(marker + timedelta(hours=1))},
        )
        statuses.append(send(BURST + 1))

        def visible() -> bool:
            return alice.api("GET", "/v1/availability", params=window).json()["busy"] != []

        poll(visible, 60, "the change made before the burst's last notification never reached the CRM")
        stack.google.push.wait_idle()
        stack.drain(timeout=60)
    finally:
        stack.sqs.stop()

    assert [s for s in statuses if s != 200] == []
    # The burst's 200 notifications: one sync and one trailing sync. The marker's own push
    # (the emulator notifies its change like Google does) may land once the trailing sync has
    # started, and rightly asks for one more: at most three lists, never one per notification.
    assert events_lists(stack, email) - before <= 3
    busy = alice.api("GET", "/v1/availability", params=window).json()["busy"]
    assert busy == [
        {"start": clock.offset(marker), "end": clock.offset(marker + timedelta(hours=1)), "source": "calendar"}
    ]
