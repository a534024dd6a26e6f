"""Contract tests of Calendar v3 push notifications (events.watch, channels.stop).

A local HTTP receiver plays the product's webhook; the emulator really POSTs to it.
Rules: https://developers.google.com/calendar/api/guides/push (PROVIDERS.md §2.2, §1 F).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

CALENDAR = "https://www.googleapis.com/auth/calendar"
SEVEN_DAYS_MS = 604800 * 1000


class Receiver:
    """A webhook endpoint on loopback that records each POST (headers, body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._arrived:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks/google-calendar"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def cal(google_service: Callable[..., Any], email: str) -> Any:
    return google_service("calendar", "v3", email, [CALENDAR])


def watch(cal: Any, address: str, calendar_id: str = "primary", **extra: Any) -> dict[str, Any]:
    body = {"id": str(uuid.uuid4()), "type": "web_hook", "address": address, **extra}
    return dict(cal.events().watch(calendarId=calendar_id, body=body).execute())


def insert(cal: Any, calendar_id: str = "primary") -> dict[str, Any]:
    body = {"start": {"dateTime": "2030-01-01T10:00:00Z"}, "end": {"dateTime": "2030-01-01T11:00:00Z"}}
    return dict(cal.events().insert(calendarId=calendar_id, body=body).execute())


def test_watch_returns_a_channel_with_default_ttl_of_7_days(
    cal: Any, receiver: Receiver, google_emulator: GoogleEmulator
) -> None:
    now_ms = google_emulator.advance_clock(0) * 1000
    channel = watch(cal, receiver.url, token="tenant-1")
    assert channel["kind"] == "api#channel"
    assert channel["resourceId"]
    assert channel["resourceUri"]
    assert channel["token"] == "tenant-1"
    assert isinstance(channel["expiration"], str)
    assert abs(int(channel["expiration"]) - (now_ms + SEVEN_DAYS_MS)) < 5000
    shorter = watch(cal, receiver.url, params={"ttl": "3600"})
    assert abs(int(shorter["expiration"]) - (now_ms + 3600 * 1000)) < 5000


def test_sync_message_first_then_exists_with_increasing_message_numbers(cal: Any, receiver: Receiver) -> None:
    channel = watch(cal, receiver.url)
    (sync_headers, _), *_ = receiver.wait_for(1)
    assert sync_headers["x-goog-resource-state"] == "sync"
    assert sync_headers["x-goog-message-number"] == "1"
    insert(cal)
    insert(cal)
    messages = receiver.wait_for(3)
    assert [h["x-goog-resource-state"] for h, _ in messages] == ["sync", "exists", "exists"]
    numbers = [int(h["x-goog-message-number"]) for h, _ in messages]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3
    assert all(h["x-goog-channel-id"] == channel["id"] for h, _ in messages)


def test_notifications_carry_documented_headers_and_no_body(cal: Any, receiver: Receiver) -> None:
    channel = watch(cal, receiver.url, token="s3cret")
    insert(cal)
    for headers, body in receiver.wait_for(2):
        assert body == b""
        assert headers["x-goog-channel-id"] == channel["id"]
        assert headers["x-goog-resource-id"] == channel["resourceId"]
        assert headers["x-goog-resource-uri"] == channel["resourceUri"]
        assert headers["x-goog-channel-token"] == "s3cret"
        expires = parsedate_to_datetime(headers["x-goog-channel-expiration"])  # human-readable RFC 1123 date
        assert abs(expires.timestamp() * 1000 - int(channel["expiration"])) < 1000


def test_channel_token_header_only_when_set(cal: Any, receiver: Receiver) -> None:
    watch(cal, receiver.url)
    (headers, _), *_ = receiver.wait_for(1)
    assert "x-goog-channel-token" not in headers


def test_resource_id_is_stable_per_calendar(cal: Any, receiver: Receiver) -> None:
    first = watch(cal, receiver.url)
    second = watch(cal, receiver.url)
    assert first["id"] != second["id"]
    assert first["resourceId"] == second["resourceId"]


def test_changes_made_as_the_user_notify_channels(
    cal: Any, email: str, receiver: Receiver, google_emulator: GoogleEmulator
) -> None:
    watch(cal, receiver.url)
    event = {"start": {"date": "2030-01-01"}, "end": {"date": "2030-01-02"}}
    response = requests.post(
        f"{google_emulator.base_url}/_emulator/calendar/events", json={"email": email, "event": event}, timeout=10
    )
    response.raise_for_status()
    assert [h["x-goog-resource-state"] for h, _ in receiver.wait_for(2)] == ["sync", "exists"]


def test_changes_to_other_calendars_do_not_notify(
    cal: Any, email: str, receiver: Receiver, google_emulator: GoogleEmulator
) -> None:
    watch(cal, receiver.url)
    receiver.wait_for(1)
    other = requests.post(
        f"{google_emulator.base_url}/_emulator/calendar/calendars", json={"email": email, "summary": "x"}, timeout=10
    ).json()
    insert(cal, other["id"])
    assert google_emulator.push.wait_idle()
    assert len(receiver.received) == 1


def test_channels_stop_ends_notifications(cal: Any, receiver: Receiver, google_emulator: GoogleEmulator) -> None:
    channel = watch(cal, receiver.url)
    cal.channels().stop(body={"id": channel["id"], "resourceId": channel["resourceId"]}).execute()
    insert(cal)
    assert google_emulator.push.wait_idle()
    assert [h["x-goog-resource-state"] for h, _ in receiver.received] == ["sync"]


def test_stopping_an_unknown_channel_is_404(cal: Any, receiver: Receiver) -> None:
    channel = watch(cal, receiver.url)
    with pytest.raises(HttpError) as exc:
        cal.channels().stop(body={"id": "no-such-channel", "resourceId": channel["resourceId"]}).execute()
    assert exc.value.status_code == 404


def test_expired_channel_stops_sending(
    google_service: Callable[..., Any], email: str, receiver: Receiver, google_emulator: GoogleEmulator
) -> None:
    cal = google_service("calendar", "v3", email, [CALENDAR])
    watch(cal, receiver.url, params={"ttl": "60"})
    google_emulator.advance_clock(61)
    insert(cal)
    assert google_emulator.push.wait_idle()
    assert [h["x-goog-resource-state"] for h, _ in receiver.received] == ["sync"]
    listed = requests.get(f"{google_emulator.base_url}/_emulator/calendar/channels?email={email}", timeout=10).json()
    assert listed == []


def test_deleted_calendar_sends_not_exists(
    cal: Any, email: str, receiver: Receiver, google_emulator: GoogleEmulator
) -> None:
    base = f"{google_emulator.base_url}/_emulator/calendar/calendars"
    other = requests.post(base, json={"email": email, "summary": "Projects"}, timeout=10).json()
    watch(cal, receiver.url, calendar_id=other["id"])
    requests.delete(base, json={"email": email, "calendarId": other["id"]}, timeout=10).raise_for_status()
    assert [h["x-goog-resource-state"] for h, _ in receiver.wait_for(2)] == ["sync", "not_exists"]


@pytest.mark.parametrize("address", ["http://example.com/hook", "ftp://127.0.0.1/hook"])
def test_watch_address_must_be_https_except_on_loopback(cal: Any, address: str) -> None:
    with pytest.raises(HttpError) as exc:
        watch(cal, address)
    assert exc.value.status_code == 400


def test_channel_ids_must_be_unique(cal: Any, receiver: Receiver) -> None:
    channel = watch(cal, receiver.url)
    with pytest.raises(HttpError) as exc:
        watch(cal, receiver.url, id=channel["id"])
    assert exc.value.status_code == 400
