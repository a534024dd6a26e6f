"""Google's edge, shared by every emulated API: request validation against the discovery
documents, authentication and scopes, faults on demand, push disturbances, reset."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator
from tests.contract.conftest import mint_token
from tests.contract.test_calendar_push import Receiver
from tests.support import clock

pytestmark = pytest.mark.integration

CALENDAR = "https://www.googleapis.com/auth/calendar"


@pytest.fixture
def cal(google_service: Callable[..., Any], email: str) -> Any:
    return google_service("calendar", "v3", email, [CALENDAR])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _no_leftover_faults(google_emulator: GoogleEmulator) -> Iterator[None]:
    yield
    requests.delete(f"{google_emulator.base_url}/_emulator/faults", timeout=5)


def fault(emulator: GoogleEmulator, **rule: Any) -> None:
    requests.post(f"{emulator.base_url}/_emulator/faults", json=rule, timeout=5).raise_for_status()


def test_an_unknown_query_parameter_is_refused_like_google(google_emulator: GoogleEmulator, email: str) -> None:
    token = mint_token(google_emulator, email, [CALENDAR])
    answer = requests.get(
        f"{google_emulator.base_url}/calendar/v3/calendars/primary/events",
        params={"noSuchParameter": "1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["errors"][0]["reason"] == "badRequest"


def test_an_out_of_range_integer_is_refused(cal: Any) -> None:
    with pytest.raises(HttpError) as refused:
        cal.events().list(calendarId="primary", maxResults=0).execute()
    assert refused.value.status_code == 400
    assert refused.value.reason.startswith("Invalid value for maxResults")


def test_an_expired_access_token_is_401(google_emulator: GoogleEmulator, email: str) -> None:
    token = mint_token(google_emulator, email, [CALENDAR])
    url = f"{google_emulator.base_url}/calendar/v3/users/me/calendarList"
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    google_emulator.advance_clock(3600)
    expired = requests.get(url, headers=headers, timeout=5)
    assert expired.status_code == 401
    assert expired.json()["error"]["status"] == "UNAUTHENTICATED"


def test_a_token_without_the_methods_scope_is_403_insufficient_permissions(
    google_service: Callable[..., Any], email: str
) -> None:
    gmail_only = google_service("calendar", "v3", email, ["https://www.googleapis.com/auth/gmail.readonly"])
    with pytest.raises(HttpError) as refused:
        gmail_only.events().list(calendarId="primary").execute()
    assert refused.value.status_code == 403
    assert refused.value.error_details[0]["reason"] == "insufficientPermissions"


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        ("rate_limit_429", 429, "rateLimitExceeded"),
        ("rate_limit_403", 403, "rateLimitExceeded"),
        ("user_rate_limit_403", 403, "userRateLimitExceeded"),
        ("backend_500", 500, "backendError"),
        ("unavailable_503", 503, "backendError"),
    ],
)
def test_faults_fail_the_next_n_matching_requests_then_stop(
    cal: Any, google_emulator: GoogleEmulator, email: str, kind: str, status: int, reason: str
) -> None:
    fault(google_emulator, kind=kind, method="calendar.events.list", email=email, count=2)
    for _ in range(2):
        with pytest.raises(HttpError) as failed:
            cal.events().list(calendarId="primary").execute(num_retries=0)
        assert failed.value.status_code == status
        assert failed.value.error_details[0]["reason"] == reason
    cal.calendarList().list().execute()  # another method was never affected
    assert cal.events().list(calendarId="primary").execute()["kind"] == "calendar#events"


@pytest.mark.parametrize(
    ("kind", "domain"),
    [
        ("rate_limit_429", "usageLimits"),
        ("rate_limit_403", "usageLimits"),
        ("user_rate_limit_403", "usageLimits"),
        ("quota_429", "usageLimits"),
        ("backend_500", "global"),
    ],
)
def test_rate_limit_errors_are_in_the_usage_limits_domain(
    cal: Any, google_emulator: GoogleEmulator, email: str, kind: str, domain: str
) -> None:
    """Calendar's "Handle API errors" guide: rate limits and quotas come with
    ``"domain": "usageLimits"``; server errors stay ``global``."""
    fault(google_emulator, kind=kind, method="calendar.events.list", email=email)
    with pytest.raises(HttpError) as failed:
        cal.events().list(calendarId="primary").execute(num_retries=0)
    assert failed.value.error_details[0]["domain"] == domain


def test_a_hanging_request_outlasts_the_clients_timeout(google_emulator: GoogleEmulator, email: str) -> None:
    fault(google_emulator, kind="hang", method="calendar.calendarList.list", email=email, hang_seconds=5)
    token = mint_token(google_emulator, email, [CALENDAR])
    with pytest.raises(requests.Timeout):
        requests.get(
            f"{google_emulator.base_url}/calendar/v3/users/me/calendarList",
            headers={"Authorization": f"Bearer {token}"},
            timeout=0.3,
        )


def _watch(cal: Any, receiver: Receiver) -> None:
    cal.events().watch(
        calendarId="primary", body={"id": str(uuid.uuid4()), "type": "web_hook", "address": receiver.url}
    ).execute()
    receiver.wait_for(1)  # the sync message


def _change(cal: Any) -> None:
    cal.events().insert(
        calendarId="primary",
        body={
            "summary": "x",
            "start": {"dateTime": clock.z(clock.days_ahead(5, 10))},
            "end": {"dateTime": clock.z(clock.days_ahead(5, 11))},
        },
    ).execute()


def _disturb(emulator: GoogleEmulator, mode: str, count: int) -> None:
    requests.post(
        f"{emulator.base_url}/_emulator/push/disturb", json={"mode": mode, "count": count}, timeout=5
    ).raise_for_status()


def test_pushes_can_be_dropped(cal: Any, receiver: Receiver, google_emulator: GoogleEmulator) -> None:
    _watch(cal, receiver)
    _disturb(google_emulator, "drop", 1)
    _change(cal)
    _change(cal)
    receiver.wait_for(2)
    google_emulator.push.wait_idle()
    assert len(receiver.received) == 2  # sync + the second change only


def test_pushes_can_be_duplicated(cal: Any, receiver: Receiver, google_emulator: GoogleEmulator) -> None:
    _watch(cal, receiver)
    _disturb(google_emulator, "duplicate", 1)
    _change(cal)
    received = receiver.wait_for(3)
    assert received[1][0]["x-goog-message-number"] == received[2][0]["x-goog-message-number"]


def test_pushes_can_be_delayed_until_released(cal: Any, receiver: Receiver, google_emulator: GoogleEmulator) -> None:
    _watch(cal, receiver)
    _disturb(google_emulator, "delay", 1)
    _change(cal)
    google_emulator.push.wait_idle()
    assert len(receiver.received) == 1
    requests.post(f"{google_emulator.base_url}/_emulator/push/release", timeout=5).raise_for_status()
    assert len(receiver.wait_for(2)) == 2


def test_pushes_can_be_reordered(cal: Any, receiver: Receiver, google_emulator: GoogleEmulator) -> None:
    _watch(cal, receiver)
    _disturb(google_emulator, "reorder", 2)
    _change(cal)
    _change(cal)
    received = receiver.wait_for(3)
    numbers = [int(h["x-goog-message-number"]) for h, _ in received[1:]]
    assert numbers == sorted(numbers, reverse=True)


def test_reset_forgets_api_data_too(google_emulator: GoogleEmulator, email: str) -> None:
    base = google_emulator.base_url
    mint_token(google_emulator, email, [CALENDAR])  # the account exists
    requests.post(
        f"{base}/_emulator/calendar/events",
        json={
            "email": email,
            "calendarId": email,
            "event": {
                "summary": "before reset",
                "start": {"dateTime": clock.z(clock.days_ahead(5, 10))},
                "end": {"dateTime": clock.z(clock.days_ahead(5, 11))},
            },
        },
        timeout=5,
    ).raise_for_status()
    requests.post(f"{base}/_emulator/reset", timeout=5).raise_for_status()
    google_emulator.seed_demo_accounts()
    token = mint_token(google_emulator, email, [CALENDAR])
    events = requests.get(
        f"{base}/calendar/v3/calendars/primary/events", headers={"Authorization": f"Bearer {token}"}, timeout=5
    ).json()
    assert events["items"] == []


def test_seeding_a_new_account_gives_it_the_demo_calendars_at_once(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any], email: str
) -> None:
    """Tests seed an account of their own instead of sharing the demo accounts."""
    requests.post(
        f"{google_emulator.base_url}/_emulator/calendar/seed", json={"email": email}, timeout=5
    ).raise_for_status()
    listed = google_service("calendar", "v3", email, [CALENDAR]).calendarList().list().execute()["items"]
    assert sorted((c["summary"], c["accessRole"]) for c in listed) == sorted(
        [(email, "owner"), ("Holidays in United States", "reader"), ("Team", "owner")]
    )
