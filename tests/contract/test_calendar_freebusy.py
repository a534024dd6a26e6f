"""Contract tests of Calendar v3 freebusy.query (PROVIDERS.md §2.1 freeBusy, §1 D)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

CALENDAR = "https://www.googleapis.com/auth/calendar"
DAY = {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-02T00:00:00Z"}


@pytest.fixture
def cal(google_service: Callable[..., Any], email: str) -> Any:
    return google_service("calendar", "v3", email, [CALENDAR])


def event(start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {
        "start": {"dateTime": f"2030-01-01T{start}:00Z"},
        "end": {"dateTime": f"2030-01-01T{end}:00Z"},
        **extra,
    }


def insert(cal: Any, body: dict[str, Any], calendar_id: str = "primary") -> dict[str, Any]:
    return dict(cal.events().insert(calendarId=calendar_id, body=body).execute())


def busy(cal: Any, calendar_id: str = "primary", **body: Any) -> list[dict[str, str]]:
    answer = cal.freebusy().query(body={**DAY, "items": [{"id": calendar_id}], **body}).execute()
    return list(answer["calendars"][calendar_id]["busy"])


def test_busy_comes_from_opaque_non_cancelled_non_declined_events(cal: Any, email: str) -> None:
    insert(cal, event("09:00", "10:00"))
    insert(cal, event("09:30", "10:30", status="tentative"))  # overlaps: merged
    insert(cal, event("11:00", "12:00", transparency="transparent"))  # "free"
    insert(cal, event("13:00", "14:00", attendees=[{"email": email, "responseStatus": "declined"}]))
    gone = insert(cal, event("15:00", "16:00"))
    cal.events().delete(calendarId="primary", eventId=gone["id"]).execute()
    assert busy(cal) == [{"start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:30:00Z"}]


def test_recurring_series_block_each_occurrence(cal: Any) -> None:
    insert(
        cal,
        {
            "start": {"dateTime": "2029-12-31T08:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2029-12-31T09:00:00", "timeZone": "UTC"},
            "recurrence": ["RRULE:FREQ=DAILY"],
        },
    )
    assert busy(cal, timeMax="2030-01-03T00:00:00Z") == [
        {"start": "2030-01-01T08:00:00Z", "end": "2030-01-01T09:00:00Z"},
        {"start": "2030-01-02T08:00:00Z", "end": "2030-01-02T09:00:00Z"},
    ]


def test_busy_intervals_are_clipped_and_rendered_in_the_requested_zone(cal: Any) -> None:
    insert(cal, {"start": {"dateTime": "2029-12-31T23:00:00Z"}, "end": {"dateTime": "2030-01-01T01:00:00Z"}})
    assert busy(cal, timeZone="Europe/Berlin") == [
        {"start": "2030-01-01T01:00:00+01:00", "end": "2030-01-01T02:00:00+01:00"}
    ]


def test_secondary_calendars_are_queried_by_id(cal: Any, email: str, google_emulator: GoogleEmulator) -> None:
    other = requests.post(
        f"{google_emulator.base_url}/_emulator/calendar/calendars",
        json={"email": email, "summary": "Team", "accessRole": "reader"},
        timeout=10,
    ).json()
    requests.post(
        f"{google_emulator.base_url}/_emulator/calendar/events",
        json={"email": email, "calendarId": other["id"], "event": event("10:00", "11:00")},
        timeout=10,
    )
    assert busy(cal) == []  # primary alone misses it (dennisklappe/CloudMeet#10)
    assert busy(cal, other["id"]) == [{"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"}]


def test_unknown_calendar_reports_not_found_in_its_entry(cal: Any) -> None:
    answer = cal.freebusy().query(body={**DAY, "items": [{"id": "primary"}, {"id": "nobody@example.com"}]}).execute()
    assert answer["calendars"]["nobody@example.com"]["errors"] == [{"domain": "global", "reason": "notFound"}]
    assert answer["calendars"]["primary"] == {"busy": []}


def test_more_than_50_calendars_is_400(cal: Any) -> None:
    items = [{"id": f"c{i}@example.com"} for i in range(51)]
    with pytest.raises(HttpError) as exc:
        cal.freebusy().query(body={**DAY, "items": items}).execute()
    assert exc.value.status_code == 400
    cal.freebusy().query(body={**DAY, "items": items[:50]}).execute()


def test_time_range_longer_than_90_days_is_400_too_long(cal: Any) -> None:
    ninety = {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-04-01T00:00:00Z", "items": [{"id": "primary"}]}
    cal.freebusy().query(body=ninety).execute()
    with pytest.raises(HttpError) as exc:
        cal.freebusy().query(body={**ninety, "timeMax": "2030-04-01T00:00:01Z"}).execute()
    assert exc.value.status_code == 400
    assert exc.value.reason == "The requested time range is too long."
