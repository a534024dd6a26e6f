"""Contract tests of the Calendar v3 emulator: events, ids, etags, recurrence, filters, errors.

Driven through google-api-python-client, as the product calls Google. Each test is one
documented rule (PROVIDERS.md §2.1 and the Calendar reference), named after it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

CALENDAR = "https://www.googleapis.com/auth/calendar"
READONLY = "https://www.googleapis.com/auth/calendar.readonly"


@pytest.fixture
def cal(google_service: Callable[..., Any], email: str) -> Any:
    return google_service("calendar", "v3", email, [CALENDAR])


def reason(exc: pytest.ExceptionInfo[HttpError]) -> str:
    return str(exc.value.error_details[0]["reason"])


def timed(start: str, end: str, tz: str = "UTC", **extra: Any) -> dict[str, Any]:
    return {"start": {"dateTime": start, "timeZone": tz}, "end": {"dateTime": end, "timeZone": tz}, **extra}


def insert(cal: Any, body: dict[str, Any], calendar_id: str = "primary") -> dict[str, Any]:
    return dict(cal.events().insert(calendarId=calendar_id, body=body).execute())


def list_all(cal: Any, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = cal.events().list(calendarId="primary", pageToken=token, **params).execute()
        items.extend(page["items"])
        token = page.get("nextPageToken")
        if not token:
            return items


def control(emulator: GoogleEmulator, method: str, path: str, body: dict[str, Any]) -> Any:
    response = requests.request(method, f"{emulator.base_url}/_emulator/calendar/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


# ---------------------------------------------------------------------- calendars


def test_primary_aliases_the_primary_calendar(cal: Any, email: str) -> None:
    assert cal.calendars().get(calendarId="primary").execute()["id"] == email
    entries = cal.calendarList().list().execute()["items"]
    assert [e["id"] for e in entries if e.get("primary")] == [email]


def test_unknown_calendar_is_404_not_found(cal: Any) -> None:
    with pytest.raises(HttpError) as exc:
        cal.events().list(calendarId="nobody@group.calendar.google.com").execute()
    assert exc.value.status_code == 404
    assert reason(exc) == "notFound"


def test_demo_accounts_have_team_and_read_only_subscribed_calendars(google_service: Callable[..., Any]) -> None:
    ada = google_service("calendar", "v3", "ada@example.com", [CALENDAR])
    entries = ada.calendarList().list().execute()["items"]
    roles = {e["summary"]: e["accessRole"] for e in entries}
    assert roles["Team"] == "owner"
    assert "reader" in roles.values()
    assert any(e["id"].endswith("@group.calendar.google.com") for e in entries)


#: Google's calendar colour palette, as colors.get answers its ``calendar`` section.
GOOGLE_CALENDAR_COLORS = {
    "1": "#ac725e", "2": "#d06b64", "3": "#f83a22", "4": "#fa573c", "5": "#ff7537", "6": "#ffad46",
    "7": "#42d692", "8": "#16a765", "9": "#7bd148", "10": "#b3dc6c", "11": "#fbe983", "12": "#fad165",
    "13": "#92e1c0", "14": "#9fe1e7", "15": "#9fc6e7", "16": "#4986e7", "17": "#9a9cff", "18": "#b99aff",
    "19": "#c2c2c2", "20": "#cabdbf", "21": "#cca6ac", "22": "#f691b2", "23": "#cd74e6", "24": "#a47ae2",
}  # fmt: skip


def test_calendar_list_entries_carry_per_calendar_palette_colours(google_service: Callable[..., Any]) -> None:
    ada = google_service("calendar", "v3", "ada@example.com", [CALENDAR])
    entries = ada.calendarList().list().execute()["items"]
    assert len(entries) >= 3
    for entry in entries:
        assert entry["backgroundColor"] == GOOGLE_CALENDAR_COLORS[entry["colorId"]], entry
        assert entry["foregroundColor"] == "#000000"
    # Like Google, each calendar of a list gets its own colour.
    assert len({e["colorId"] for e in entries}) == len(entries)


def test_calendar_list_sync_token_reports_added_and_deleted_calendars(
    cal: Any, email: str, google_emulator: GoogleEmulator
) -> None:
    first = cal.calendarList().list(maxResults=1).execute()
    assert "nextPageToken" not in first
    assert "nextSyncToken" in first
    added = control(google_emulator, "POST", "calendars", {"email": email, "summary": "Projects"})
    delta = cal.calendarList().list(syncToken=first["nextSyncToken"]).execute()
    assert [e["id"] for e in delta["items"]] == [added["id"]]
    control(google_emulator, "DELETE", "calendars", {"email": email, "calendarId": added["id"]})
    gone = cal.calendarList().list(syncToken=delta["nextSyncToken"]).execute()["items"]
    assert gone == [{"kind": "calendar#calendarListEntry", "etag": gone[0]["etag"], "id": added["id"], "deleted": True}]


# ---------------------------------------------------------------------- ids, etags, writes


@pytest.mark.parametrize("bad_id", ["abc", "UPPERCASE123", "has-dash-12", "wxyz0123"])
def test_client_chosen_event_id_must_be_base32hex_5_to_1024(cal: Any, bad_id: str) -> None:
    with pytest.raises(HttpError) as exc:
        insert(cal, {"id": bad_id, **timed("2030-01-01T10:00:00", "2030-01-01T11:00:00")})
    assert exc.value.status_code == 400
    assert reason(exc) == "invalid"


def test_client_chosen_event_id_is_kept(cal: Any) -> None:
    event_id = uuid.uuid4().hex  # hex digits are base32hex characters
    created = insert(cal, {"id": event_id, **timed("2030-01-01T10:00:00", "2030-01-01T11:00:00")})
    assert created["id"] == event_id
    assert cal.events().get(calendarId="primary", eventId=event_id).execute()["id"] == event_id


def test_duplicate_event_id_is_409_duplicate(cal: Any) -> None:
    body = {"id": uuid.uuid4().hex, **timed("2030-01-01T10:00:00", "2030-01-01T11:00:00")}
    insert(cal, body)
    with pytest.raises(HttpError) as exc:
        insert(cal, body)  # e.g. a retry after a timeout: idempotent thanks to the client-chosen id
    assert exc.value.status_code == 409
    assert reason(exc) == "duplicate"


def test_server_ids_are_base32hex_and_ical_uid_is_set(cal: Any) -> None:
    created = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"))
    assert re.fullmatch(r"[a-v0-9]{5,1024}", created["id"])
    assert created["iCalUID"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created["updated"])


def test_etag_changes_on_every_change(cal: Any) -> None:
    created = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00", summary="a"))
    first = cal.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "b"}).execute()
    second = cal.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "c"}).execute()
    etags = {created["etag"], first["etag"], second["etag"]}
    assert len(etags) == 3
    assert all(e.startswith('"') and e.endswith('"') for e in etags)


def test_if_match_with_stale_etag_is_412_condition_not_met(cal: Any) -> None:
    created = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00", summary="a"))
    cal.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "b"}).execute()
    for request in (
        cal.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "c"}),
        cal.events().update(
            calendarId="primary", eventId=created["id"], body=timed("2030-01-01T10:00:00", "2030-01-01T11:00:00")
        ),
    ):
        request.headers["If-Match"] = created["etag"]
        with pytest.raises(HttpError) as exc:
            request.execute()
        assert exc.value.status_code == 412
        assert reason(exc) == "conditionNotMet"
    current = cal.events().get(calendarId="primary", eventId=created["id"]).execute()
    request = cal.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "d"})
    request.headers["If-Match"] = current["etag"]
    assert request.execute()["summary"] == "d"


def test_patch_merges_fields_and_update_replaces_them(cal: Any) -> None:
    created = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00", summary="a", location="Room 1"))
    patched = cal.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "b"}).execute()
    assert (patched["summary"], patched["location"]) == ("b", "Room 1")
    replaced = (
        cal.events()
        .update(
            calendarId="primary",
            eventId=created["id"],
            body=timed("2030-01-01T10:00:00", "2030-01-01T11:00:00", summary="c"),
        )
        .execute()
    )
    assert replaced["summary"] == "c"
    assert "location" not in replaced


def test_update_keeps_the_event_type_and_resets_reminders_to_the_defaults(cal: Any) -> None:
    """events.update replaces the writable fields, but eventType is immutable (kept) and an
    event without reminders follows the calendar's defaults — as insert and patch store it."""
    own = {"useDefault": False, "overrides": [{"method": "popup", "minutes": 5}]}
    created = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00", summary="a", reminders=own))
    assert (created["eventType"], created["reminders"]) == ("default", own)
    patched = cal.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "b"}).execute()
    assert (patched["eventType"], patched["reminders"]) == ("default", own)

    cal.events().update(
        calendarId="primary", eventId=created["id"], body=timed("2030-01-01T10:00:00", "2030-01-01T11:00:00")
    ).execute()

    stored = cal.events().get(calendarId="primary", eventId=created["id"]).execute()
    assert (stored["eventType"], stored["reminders"]) == ("default", {"useDefault": True})


def test_the_event_type_cannot_be_changed_400(cal: Any) -> None:
    """An update without eventType asks for "default"; on another type that is a change."""
    away = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T18:00:00", eventType="outOfOffice"))
    attempts = [
        cal.events().update(
            calendarId="primary", eventId=away["id"], body=timed("2030-01-01T10:00:00", "2030-01-01T17:00:00")
        ),
        cal.events().patch(calendarId="primary", eventId=away["id"], body={"eventType": "default"}),
    ]
    for request in attempts:
        with pytest.raises(HttpError) as exc:
            request.execute()
        assert exc.value.status_code == 400
        assert "Event type cannot be changed" in str(exc.value.error_details[0]["message"])
    kept = cal.events().update(
        calendarId="primary",
        eventId=away["id"],
        body=timed("2030-01-01T10:00:00", "2030-01-01T17:00:00", eventType="outOfOffice"),
    )
    assert kept.execute()["eventType"] == "outOfOffice"
    assert cal.events().get(calendarId="primary", eventId=away["id"]).execute()["eventType"] == "outOfOffice"


def test_deleted_event_becomes_cancelled_and_deleting_again_is_410(cal: Any) -> None:
    created = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"))
    cal.events().delete(calendarId="primary", eventId=created["id"]).execute()
    assert cal.events().get(calendarId="primary", eventId=created["id"]).execute()["status"] == "cancelled"
    with pytest.raises(HttpError) as exc:
        cal.events().delete(calendarId="primary", eventId=created["id"]).execute()
    assert exc.value.status_code == 410
    assert reason(exc) == "deleted"


def test_end_before_start_is_400_time_range_empty(cal: Any) -> None:
    with pytest.raises(HttpError) as exc:
        insert(cal, timed("2030-01-01T11:00:00", "2030-01-01T10:00:00"))
    assert exc.value.status_code == 400
    assert reason(exc) == "timeRangeEmpty"


def test_timed_event_without_zone_or_offset_is_400(cal: Any) -> None:
    with pytest.raises(HttpError) as exc:
        insert(cal, {"start": {"dateTime": "2030-01-01T10:00:00"}, "end": {"dateTime": "2030-01-01T11:00:00"}})
    assert exc.value.status_code == 400


def test_reader_calendar_refuses_writes_with_403(cal: Any, email: str, google_emulator: GoogleEmulator) -> None:
    shared = control(
        google_emulator, "POST", "calendars", {"email": email, "summary": "Holidays", "accessRole": "reader"}
    )
    with pytest.raises(HttpError) as exc:
        insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"), calendar_id=shared["id"])
    assert exc.value.status_code == 403
    assert reason(exc) == "requiredAccessLevel"


def test_read_only_scope_cannot_insert_403_insufficient_permissions(
    google_service: Callable[..., Any], email: str
) -> None:
    reader = google_service("calendar", "v3", email, [READONLY])
    reader.events().list(calendarId="primary").execute()
    with pytest.raises(HttpError) as exc:
        insert(reader, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"))
    assert exc.value.status_code == 403
    assert reason(exc) == "insufficientPermissions"


# ---------------------------------------------------------------------- time zones


def test_all_day_events_use_date_with_exclusive_end(cal: Any) -> None:
    created = insert(cal, {"start": {"date": "2030-01-01"}, "end": {"date": "2030-01-02"}})
    assert created["start"] == {"date": "2030-01-01"}
    assert "dateTime" not in created["start"]
    inside = list_all(cal, timeMin="2030-01-01T12:00:00Z", timeMax="2030-01-01T13:00:00Z")
    after = list_all(cal, timeMin="2030-01-02T00:00:00Z", timeMax="2030-01-02T13:00:00Z")
    assert [e["id"] for e in inside] == [created["id"]]
    assert after == []


def test_date_times_are_rendered_in_the_calendar_zone_unless_time_zone_is_given(cal: Any) -> None:
    created = insert(cal, timed("2030-07-01T10:00:00", "2030-07-01T11:00:00", tz="Europe/Berlin"))
    assert created["start"]["dateTime"] == "2030-07-01T08:00:00Z"  # the new account's calendar is in UTC
    assert created["start"]["timeZone"] == "Europe/Berlin"
    listed = cal.events().list(calendarId="primary", timeZone="America/New_York").execute()["items"]
    assert listed[0]["start"]["dateTime"] == "2030-07-01T04:00:00-04:00"


# ---------------------------------------------------------------------- recurrence


def weekly(cal: Any, count: int = 5, **extra: Any) -> dict[str, Any]:
    body = timed("2030-01-07T09:00:00", "2030-01-07T10:00:00", tz="Europe/Berlin", summary="Weekly")
    body["recurrence"] = [f"RRULE:FREQ=WEEKLY;COUNT={count}", *extra.pop("lines", [])]
    return insert(cal, {**body, **extra})


def test_single_events_expand_rrule_minus_exdate(cal: Any) -> None:
    series = weekly(cal, lines=["EXDATE;TZID=Europe/Berlin:20300114T090000"])
    items = list_all(cal, singleEvents=True)
    assert [i["start"]["dateTime"] for i in items] == [
        "2030-01-07T08:00:00Z",
        "2030-01-21T08:00:00Z",
        "2030-01-28T08:00:00Z",
        "2030-02-04T08:00:00Z",
    ]
    assert all(i["recurringEventId"] == series["id"] and i["iCalUID"] == series["iCalUID"] for i in items)
    assert len({i["id"] for i in items}) == 4  # ids differ per instance, iCalUID is shared


def test_instance_ids_are_series_id_and_original_start(cal: Any) -> None:
    series = weekly(cal, count=2)
    items = list_all(cal, singleEvents=True)
    assert items[0]["id"] == f"{series['id']}_20300107T080000Z"
    assert items[0]["originalStartTime"] == {"dateTime": "2030-01-07T08:00:00Z", "timeZone": "Europe/Berlin"}
    all_day = insert(
        cal,
        {"start": {"date": "2030-03-01"}, "end": {"date": "2030-03-02"}, "recurrence": ["RRULE:FREQ=DAILY;COUNT=2"]},
    )
    days = [i for i in list_all(cal, singleEvents=True) if i["recurringEventId"] == all_day["id"]]
    assert [i["id"] for i in days] == [f"{all_day['id']}_20300301", f"{all_day['id']}_20300302"]
    assert days[1]["originalStartTime"] == {"date": "2030-03-02"}


def test_modified_instance_replaces_its_occurrence(cal: Any) -> None:
    series = weekly(cal, count=3)
    instance_id = f"{series['id']}_20300114T080000Z"
    moved = (
        cal.events()
        .patch(
            calendarId="primary",
            eventId=instance_id,
            body={
                "summary": "Moved",
                "start": {"dateTime": "2030-01-15T15:00:00+01:00"},
                "end": {"dateTime": "2030-01-15T16:00:00+01:00"},
            },
        )
        .execute()
    )
    assert moved["recurringEventId"] == series["id"]
    items = list_all(cal, singleEvents=True)
    assert [(i["id"], i["summary"], i["start"]["dateTime"]) for i in items] == [
        (f"{series['id']}_20300107T080000Z", "Weekly", "2030-01-07T08:00:00Z"),
        (instance_id, "Moved", "2030-01-15T14:00:00Z"),
        (f"{series['id']}_20300121T080000Z", "Weekly", "2030-01-21T08:00:00Z"),
    ]
    # Without expansion: the series plus its exception as a separate item.
    assert {i["id"] for i in list_all(cal)} == {series["id"], instance_id}


def test_cancelled_instance_disappears_unless_show_deleted(cal: Any) -> None:
    series = weekly(cal, count=3)
    instance_id = f"{series['id']}_20300114T080000Z"
    cal.events().delete(calendarId="primary", eventId=instance_id).execute()
    assert instance_id not in {i["id"] for i in list_all(cal, singleEvents=True)}
    shown = {i["id"]: i for i in list_all(cal, singleEvents=True, showDeleted=True)}
    assert shown[instance_id]["status"] == "cancelled"
    assert shown[instance_id]["recurringEventId"] == series["id"]


def test_cancelled_instances_are_listed_when_show_deleted_and_single_events_are_false(cal: Any) -> None:
    series = weekly(cal, count=3)
    instance_id = f"{series['id']}_20300114T080000Z"
    cal.events().delete(calendarId="primary", eventId=instance_id).execute()
    items = {i["id"]: i for i in list_all(cal)}
    assert items[instance_id]["status"] == "cancelled"  # showDeleted doc: "will still be included"
    assert items[series["id"]]["status"] == "confirmed"


def test_show_deleted_with_single_events_returns_instances_not_the_deleted_series(cal: Any) -> None:
    series = weekly(cal, count=2)
    cal.events().delete(calendarId="primary", eventId=series["id"]).execute()
    items = list_all(cal, singleEvents=True, showDeleted=True)
    assert [i["id"] for i in items] == [f"{series['id']}_20300107T080000Z", f"{series['id']}_20300114T080000Z"]
    assert all(i["status"] == "cancelled" for i in items)
    assert list_all(cal, singleEvents=True) == []


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "RRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20300107T235959Z",
            ["2030-01-01", "2030-01-03", "2030-01-05", "2030-01-07"],
        ),
        ("RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4", ["2030-01-02", "2030-01-07", "2030-01-09", "2030-01-14"]),
        ("RRULE:FREQ=MONTHLY;BYMONTHDAY=1;COUNT=3", ["2030-01-01", "2030-02-01", "2030-03-01"]),
        ("RRULE:FREQ=YEARLY;COUNT=3", ["2030-01-01", "2031-01-01", "2032-01-01"]),
        ("RRULE:FREQ=MONTHLY;BYDAY=1TU;COUNT=2", ["2030-01-01", "2030-02-05"]),
    ],
)
def test_rrule_frequencies_count_until_interval_byday(cal: Any, rule: str, expected: list[str]) -> None:
    insert(cal, {**timed("2030-01-01T12:00:00", "2030-01-01T13:00:00"), "recurrence": [rule]})
    assert [i["start"]["dateTime"][:10] for i in list_all(cal, singleEvents=True)] == expected


def test_series_keeps_wall_clock_time_across_dst(cal: Any) -> None:
    insert(
        cal,
        {
            **timed("2030-03-25T09:00:00", "2030-03-25T10:00:00", tz="Europe/Berlin"),
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"],
        },
    )
    items = list_all(cal, singleEvents=True, timeZone="Europe/Berlin")
    # Berlin leaves CET for CEST on 2030-03-31: 09:00 stays 09:00 local, the offset moves.
    assert [i["start"]["dateTime"] for i in items] == ["2030-03-25T09:00:00+01:00", "2030-04-01T09:00:00+02:00"]


def test_instances_lists_the_occurrences_of_a_series(cal: Any) -> None:
    series = weekly(cal, count=4)
    cal.events().delete(calendarId="primary", eventId=f"{series['id']}_20300121T080000Z").execute()
    page = cal.events().instances(calendarId="primary", eventId=series["id"], maxResults=2).execute()
    assert len(page["items"]) == 2
    assert page.get("nextPageToken")
    rest = cal.events().instances(
        calendarId="primary", eventId=series["id"], pageToken=page["nextPageToken"], maxResults=2
    )
    ids = [i["id"] for i in page["items"] + rest.execute()["items"]]
    assert ids == [
        f"{series['id']}_20300107T080000Z",
        f"{series['id']}_20300114T080000Z",
        f"{series['id']}_20300128T080000Z",
    ]


# ---------------------------------------------------------------------- list filters


def test_time_min_and_time_max_are_exclusive_overlap_bounds(cal: Any) -> None:
    event = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"))
    assert list_all(cal, timeMin="2030-01-01T11:00:00Z") == []  # ends exactly at timeMin
    assert list_all(cal, timeMax="2030-01-01T10:00:00Z") == []  # starts exactly at timeMax
    overlapping = list_all(cal, timeMin="2030-01-01T10:59:00Z", timeMax="2030-01-01T12:00:00+01:00")
    assert [e["id"] for e in overlapping] == [event["id"]]


def test_time_min_without_offset_is_400(cal: Any) -> None:
    with pytest.raises(HttpError) as exc:
        list_all(cal, timeMin="2030-01-01T10:00:00")
    assert exc.value.status_code == 400


def test_recurring_series_is_listed_when_any_instance_overlaps_the_window(cal: Any) -> None:
    series = weekly(cal, count=5)
    assert [e["id"] for e in list_all(cal, timeMin="2030-01-28T00:00:00Z", timeMax="2030-01-29T00:00:00Z")] == [
        series["id"]
    ]
    assert list_all(cal, timeMin="2030-03-01T00:00:00Z") == []


def test_updated_min_returns_events_changed_since_and_deleted_ones(cal: Any, google_emulator: GoogleEmulator) -> None:
    old = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00", summary="old"))
    gone = insert(cal, timed("2030-01-02T10:00:00", "2030-01-02T11:00:00", summary="gone"))
    mark = datetime.fromtimestamp(google_emulator.advance_clock(60), UTC).isoformat()
    google_emulator.advance_clock(60)
    new = insert(cal, timed("2030-01-03T10:00:00", "2030-01-03T11:00:00", summary="new"))
    cal.events().delete(calendarId="primary", eventId=gone["id"]).execute()
    items = {e["id"]: e["status"] for e in list_all(cal, updatedMin=mark)}
    assert old["id"] not in items
    assert items == {new["id"]: "confirmed", gone["id"]: "cancelled"}


def test_ical_uid_filter(cal: Any) -> None:
    wanted = insert(cal, {**timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"), "iCalUID": "meeting-42@crm.test"})
    insert(cal, timed("2030-01-02T10:00:00", "2030-01-02T11:00:00"))
    assert [e["id"] for e in list_all(cal, iCalUID="meeting-42@crm.test")] == [wanted["id"]]


def test_private_extended_property_filter_requires_every_pair(cal: Any) -> None:
    both = insert(
        cal,
        {
            **timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"),
            "extendedProperties": {"private": {"crmEventId": "e1", "tenant": "t1"}},
        },
    )
    insert(
        cal,
        {
            **timed("2030-01-02T10:00:00", "2030-01-02T11:00:00"),
            "extendedProperties": {"private": {"crmEventId": "e1", "tenant": "t2"}, "shared": {"tenant": "t1"}},
        },
    )
    found = list_all(cal, privateExtendedProperty=["crmEventId=e1", "tenant=t1"])
    assert [e["id"] for e in found] == [both["id"]]
    assert len(list_all(cal, privateExtendedProperty="crmEventId=e1")) == 2


def test_order_by_start_time_requires_single_events(cal: Any) -> None:
    late = insert(cal, timed("2030-01-05T10:00:00", "2030-01-05T11:00:00"))
    early = insert(cal, timed("2030-01-01T10:00:00", "2030-01-01T11:00:00"))
    with pytest.raises(HttpError) as exc:
        list_all(cal, orderBy="startTime")
    assert exc.value.status_code == 400
    assert [e["id"] for e in list_all(cal, orderBy="startTime", singleEvents=True)] == [early["id"], late["id"]]


def test_errors_have_google_json_shape(cal: Any) -> None:
    with pytest.raises(HttpError) as exc:
        cal.events().get(calendarId="primary", eventId="doesnotexist").execute()
    assert exc.value.status_code == 404
    assert exc.value.reason == "Not Found"
    assert exc.value.error_details == [{"message": "Not Found", "domain": "global", "reason": "notFound"}]


def test_the_control_api_counts_events_list_requests_per_account_and_calendar(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any], email: str
) -> None:
    """``GET /_emulator/calls`` (not Google's surface) counts authenticated requests per method,
    account and path parameter, so tests can check how often the product called Google."""
    other = f"cal-{uuid.uuid4().hex[:12]}@example.com"
    mine, theirs = (google_service("calendar", "v3", who, [CALENDAR]) for who in (email, other))

    def count(**params: str) -> int:
        answer = requests.get(f"{google_emulator.base_url}/_emulator/calls", params=params, timeout=10)
        answer.raise_for_status()
        return int(answer.json()["count"])

    method = "calendar.events.list"
    for _ in range(3):
        mine.events().list(calendarId=email).execute()
    theirs.events().list(calendarId=other).execute()
    assert count(method=method, email=email, calendarId=email) == 3
    assert count(method=method, email=email, calendarId="primary") == 0
    assert count(method=method, email=other) == 1
    assert count(method="calendar.events.insert", email=email) == 0
    assert requests.get(f"{google_emulator.base_url}/_emulator/calls", timeout=10).status_code == 400
