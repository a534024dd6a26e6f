"""Contract tests of Calendar v3 incremental sync: paging, nextSyncToken, syncToken deltas, 410.

The rules quoted are from the events.list reference and the sync guide (PROVIDERS.md §2.1).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

CALENDAR = "https://www.googleapis.com/auth/calendar"


@pytest.fixture
def cal(google_service: Callable[..., Any], email: str) -> Any:
    return google_service("calendar", "v3", email, [CALENDAR])


def reason(exc: pytest.ExceptionInfo[HttpError]) -> str:
    return str(exc.value.error_details[0]["reason"])


def timed(day: int, **extra: Any) -> dict[str, Any]:
    return {
        "start": {"dateTime": f"2030-01-{day:02d}T10:00:00Z"},
        "end": {"dateTime": f"2030-01-{day:02d}T11:00:00Z"},
        **extra,
    }


def insert(cal: Any, body: dict[str, Any]) -> dict[str, Any]:
    return dict(cal.events().insert(calendarId="primary", body=body).execute())


def bulk(emulator: GoogleEmulator, email: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = requests.post(
        f"{emulator.base_url}/_emulator/calendar/events", json={"email": email, "events": events}, timeout=60
    )
    response.raise_for_status()
    return list(response.json())


def full_sync(cal: Any, **params: Any) -> tuple[list[dict[str, Any]], str, int]:
    """Page to the end; returns (items, nextSyncToken, pages)."""
    items: list[dict[str, Any]] = []
    token, pages = None, 0
    while True:
        page = cal.events().list(calendarId="primary", pageToken=token, **params).execute()
        pages += 1
        items.extend(page["items"])
        token = page.get("nextPageToken")
        if not token:
            return items, page["nextSyncToken"], pages
        assert "nextSyncToken" not in page


def test_next_sync_token_only_on_last_page(cal: Any) -> None:
    for day in range(1, 6):
        insert(cal, timed(day))
    pages = []
    token = None
    while True:
        page = cal.events().list(calendarId="primary", maxResults=2, pageToken=token).execute()
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            break
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert ["nextSyncToken" in p for p in pages] == [False, False, True]


def test_max_results_defaults_to_250(cal: Any, email: str, google_emulator: GoogleEmulator) -> None:
    bulk(google_emulator, email, [timed(1 + i % 28) for i in range(260)])
    first = cal.events().list(calendarId="primary").execute()
    assert len(first["items"]) == 250
    assert "nextPageToken" in first


def test_full_sync_of_3000_events_pages_at_2500(cal: Any, email: str, google_emulator: GoogleEmulator) -> None:
    """Not a benchmark: shows a large calendar syncs in two capped pages, quickly."""
    bulk(google_emulator, email, [timed(1 + i % 28, summary=f"e{i}") for i in range(3000)])
    started = time.monotonic()
    first = cal.events().list(calendarId="primary", maxResults=5000).execute()  # capped like Google
    second = cal.events().list(calendarId="primary", maxResults=5000, pageToken=first["nextPageToken"]).execute()
    assert (len(first["items"]), len(second["items"])) == (2500, 500)
    assert "nextSyncToken" in second
    assert "nextPageToken" not in second
    assert len({e["id"] for e in first["items"] + second["items"]}) == 3000
    assert time.monotonic() - started < 10


def test_sync_token_returns_only_changes_including_deleted_as_cancelled(cal: Any) -> None:
    kept = insert(cal, timed(1))
    changed = insert(cal, timed(2, summary="before"))
    deleted = insert(cal, timed(3))
    _, token, _ = full_sync(cal)
    cal.events().patch(calendarId="primary", eventId=changed["id"], body={"summary": "after"}).execute()
    cal.events().delete(calendarId="primary", eventId=deleted["id"]).execute()
    added = insert(cal, timed(4))
    items, next_token, _ = full_sync(cal, syncToken=token)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {changed["id"], deleted["id"], added["id"]}
    assert kept["id"] not in by_id
    assert by_id[changed["id"]]["summary"] == "after"
    assert by_id[deleted["id"]] == {
        "kind": "calendar#event",
        "etag": by_id[deleted["id"]]["etag"],
        "id": deleted["id"],
        "status": "cancelled",
    }
    again, _, _ = full_sync(cal, syncToken=next_token)
    assert again == []


def test_show_deleted_cannot_be_false_with_sync_token(cal: Any) -> None:
    _, token, _ = full_sync(cal)
    with pytest.raises(HttpError) as exc:
        cal.events().list(calendarId="primary", syncToken=token, showDeleted=False).execute()
    assert exc.value.status_code == 400


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("iCalUID", "x@y"),
        ("orderBy", "updated"),
        ("privateExtendedProperty", "a=b"),
        ("q", "lunch"),
        ("sharedExtendedProperty", "a=b"),
        ("timeMin", "2030-01-01T00:00:00Z"),
        ("timeMax", "2030-01-01T00:00:00Z"),
        ("updatedMin", "2030-01-01T00:00:00Z"),
    ],
)
def test_parameters_forbidden_with_sync_token_are_400(cal: Any, name: str, value: str) -> None:
    _, token, _ = full_sync(cal)
    with pytest.raises(HttpError) as exc:
        cal.events().list(calendarId="primary", syncToken=token, **{name: value}).execute()
    assert exc.value.status_code == 400


def test_invalidated_sync_token_is_410_full_sync_required(
    cal: Any, email: str, google_emulator: GoogleEmulator
) -> None:
    insert(cal, timed(1))
    _, token, _ = full_sync(cal)
    response = requests.post(
        f"{google_emulator.base_url}/_emulator/calendar/expire-sync-tokens", json={"email": email}, timeout=10
    )
    response.raise_for_status()
    with pytest.raises(HttpError) as exc:
        cal.events().list(calendarId="primary", syncToken=token).execute()
    assert exc.value.status_code == 410
    assert reason(exc) == "fullSyncRequired"
    items, fresh, _ = full_sync(cal)  # the documented recovery: a full sync without syncToken
    assert len(items) == 1
    assert full_sync(cal, syncToken=fresh)[0] == []


def test_full_sync_window_stays_fixed_for_incremental_syncs(cal: Any) -> None:
    _, token, _ = full_sync(cal, timeMin="2030-01-10T00:00:00Z")
    inside = insert(cal, timed(20))
    insert(cal, timed(5))  # outside the initial window
    items, _, _ = full_sync(cal, syncToken=token)
    assert [i["id"] for i in items] == [inside["id"]]


def test_changes_made_while_paging_arrive_in_the_next_incremental_sync(cal: Any) -> None:
    for day in range(1, 4):
        insert(cal, timed(day))
    first = cal.events().list(calendarId="primary", maxResults=2).execute()
    late = insert(cal, timed(9))
    last = cal.events().list(calendarId="primary", maxResults=2, pageToken=first["nextPageToken"]).execute()
    assert late["id"] not in {i["id"] for i in first["items"] + last["items"]}
    delta, _, _ = full_sync(cal, syncToken=last["nextSyncToken"])
    assert [i["id"] for i in delta] == [late["id"]]


def test_incremental_sync_with_single_events_returns_changed_instances(cal: Any) -> None:
    series = insert(
        cal,
        {
            "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"],
        },
    )
    items, token, _ = full_sync(cal, singleEvents=True)
    assert len(items) == 3
    instance_id = f"{series['id']}_20300108T090000Z"
    cal.events().delete(calendarId="primary", eventId=instance_id).execute()
    delta, _, _ = full_sync(cal, singleEvents=True, syncToken=token)
    assert [(i["id"], i["status"], i["recurringEventId"]) for i in delta] == [(instance_id, "cancelled", series["id"])]


def test_changes_made_as_the_user_appear_in_incremental_sync(
    cal: Any, email: str, google_emulator: GoogleEmulator
) -> None:
    _, token, _ = full_sync(cal)
    base = f"{google_emulator.base_url}/_emulator/calendar/events"
    created = requests.post(base, json={"email": email, "event": timed(3, summary="by hand")}, timeout=10).json()
    delta, token, _ = full_sync(cal, syncToken=token)
    assert [(i["id"], i["summary"]) for i in delta] == [(created["id"], "by hand")]
    patch = {"email": email, "eventId": created["id"], "event": {"summary": "renamed"}}
    requests.patch(base, json=patch, timeout=10).raise_for_status()
    requests.delete(base, json={"email": email, "eventId": created["id"]}, timeout=10).raise_for_status()
    delta, _, _ = full_sync(cal, syncToken=token)
    assert [(i["id"], i["status"]) for i in delta] == [(created["id"], "cancelled")]


def test_page_token_is_bound_to_its_request_parameters(cal: Any) -> None:
    for day in range(1, 4):
        insert(cal, timed(day, summary="standup"))
    first = cal.events().list(calendarId="primary", maxResults=1, q="standup").execute()
    with pytest.raises(HttpError) as exc:
        cal.events().list(calendarId="primary", maxResults=1, q="other", pageToken=first["nextPageToken"]).execute()
    assert exc.value.status_code == 400


def test_tokens_are_bound_to_the_account(cal: Any, google_service: Callable[..., Any]) -> None:
    for day in range(1, 3):
        insert(cal, timed(day))
    page = cal.events().list(calendarId="primary", maxResults=1).execute()
    _, sync_token, _ = full_sync(cal)
    other = google_service("calendar", "v3", f"other-{uuid.uuid4().hex[:8]}@example.com", [CALENDAR])
    for params in ({"pageToken": page["nextPageToken"], "maxResults": 1}, {"syncToken": sync_token}):
        with pytest.raises(HttpError) as exc:
            other.events().list(calendarId="primary", **params).execute()
        assert exc.value.status_code == 400


def test_sync_tokens_are_opaque(cal: Any, email: str) -> None:
    _, first, _ = full_sync(cal)
    _, second, _ = full_sync(cal)
    assert first != second
    for token in (first, second):
        assert email.split("@")[0] not in token
        assert "primary" not in token
        assert len(token) >= 32
