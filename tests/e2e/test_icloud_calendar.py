"""iCloud calendars end to end through the local stack (issue 15 acceptance), the stack's
CalDAV server (Radicale behind the iCloud fault layer) standing in for iCloud: the account is
connected through the API, its calendar made the linked (and so a conflict) calendar; a CRM
booking lands in it exactly once even when the first PUT's answer is lost; an event the user
creates there blocks availability and is imported as an appointment after a poll (the
schedule's, or the settings page's); disconnecting deletes what was mirrored; the CRM moving one imported
occurrence of a series writes an override into the series, which the next poll keeps."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from defusedxml import ElementTree

from crmsync.models.keys import user_pk
from devstack.caldav.faults import Fault
from tests.e2e.test_integrations_api import Browser
from tests.support import clock
from tests.support.caldav_user import CalDavUser

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("stack")]

DAV = "{DAV:}"


class Account:
    """Alice's CRM session with an iCloud account connected and its calendar linked."""

    def __init__(self, stack: Any, unique: str) -> None:
        self.stack = stack
        self.tenant = f"tenant-{unique}"
        self.alice = Browser(stack, self.tenant, "alice")
        self.user = CalDavUser(stack.caldav)
        made = self.alice.api(
            "POST", "/v1/integrations/icloud", json={"username": self.user.email, "password": self.user.password}
        )
        assert made.status_code == 201, made.text
        self.connection_id = made.json()["id"]
        stack.drain()  # the connection's check lists its calendars
        linked = self.alice.api(
            "PUT",
            "/v1/settings/linked-calendar",
            json={"connection_id": self.connection_id, "calendar_id": self.user.calendar_url},
        )
        assert linked.status_code == 200, linked.text
        stack.drain()  # the linked calendar's first (full) sync

    def objects(self) -> dict[str, str]:
        """The calendar's objects as the server holds them: href → iCalendar text."""
        listing = self.user.session.request("PROPFIND", self.user.calendar_url, headers={"Depth": "1"}, timeout=10)
        listing.raise_for_status()
        hrefs = [
            e.text
            for e in ElementTree.fromstring(listing.content).iter(f"{DAV}href")
            if e.text and e.text.endswith(".ics")
        ]
        base = self.stack.caldav.base_url
        return {h: self.user.session.get(base + h if h.startswith("/") else h, timeout=10).text for h in hrefs}

    def busy(self, start: Any, end: Any) -> list[tuple[str, str]]:
        """The busy intervals of the window (an event of the linked calendar is imported as an
        appointment, so it is busy as ``crm`` or ``calendar`` depending on the moment)."""
        window = {"start": clock.z(start), "end": clock.z(end), "duration": 30}
        answer = self.alice.api("GET", "/v1/availability", params=window)
        assert answer.status_code == 200, answer.text
        return [(b["start"], b["end"]) for b in answer.json()["busy"]]

    def stored_keys(self) -> list[str]:
        """The sort keys of Alice's stored items that name the connection (its connection
        item, calendars, cursors, mirrored events), read straight from DynamoDB. CRM
        appointments are left out: they stay when an account is disconnected (API.md)."""
        dynamodb = self.stack.aws_client("dynamodb")
        table = self.stack.function_environment("ApiFunction")["CONNECTIONS_TABLE"]
        items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": user_pk(self.tenant, "alice")}},
        )["Items"]
        assert self.user.password not in repr(items)
        return [i["sk"]["S"] for i in items if self.connection_id in repr(i) and not i["sk"]["S"].startswith("APPT#")]

    def appointments(self) -> list[dict[str, Any]]:
        answer = self.alice.api("GET", "/v1/appointments")
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]


@pytest.fixture
def account(stack: Any, unique: str) -> Account:
    return Account(stack, unique)


@pytest.mark.parametrize("fault", ["lost_drop", "lost_504"])
def test_a_booking_lands_in_the_icloud_calendar_once_though_the_first_answer_is_lost(
    account: Account, stack: Any, unique: str, fault: str
) -> None:
    start = clock.next_weekday(clock.TUESDAY, 10)
    title = f"Intro {unique}"
    stack.caldav.layer.add_fault(Fault(fault, email=account.user.email, method="PUT"))
    puts_before = stack.caldav.layer.count(account.user.email, "PUT")

    booked = account.alice.api(
        "POST",
        "/v1/appointments",
        json={"title": title, "start": clock.z(start), "end": clock.z(start + timedelta(hours=1)), "time_zone": "UTC"},
    )
    assert booked.status_code == 201, booked.text
    stack.drain()  # the push: its answer lost, the message comes back and is retried

    # The first PUT landed; what finds the event then depends on which queued message runs
    # first (the push's retry PUTs again and gets 412; a sync of the calendar links it), and
    # both are right. The promise is what follows: one copy, synced, the fault spent.
    assert stack.caldav.layer.count(account.user.email, "PUT") - puts_before >= 1
    assert stack.caldav.layer.faults() == []  # the fault was spent
    copies = [ics for ics in account.objects().values() if f"SUMMARY:{title}" in ics]
    assert len(copies) == 1
    appointment = account.alice.api("GET", f"/v1/appointments/{booked.json()['id']}").json()
    assert appointment["sync_state"] == "synced", appointment
    assert appointment["calendar_event"]["calendar_id"] == account.user.calendar_url


def test_an_event_the_user_adds_blocks_availability_and_is_imported_after_the_scheduled_poll(
    account: Account, stack: Any
) -> None:
    start = clock.next_weekday(clock.WEDNESDAY, 14)
    end = start + timedelta(hours=1)
    assert account.busy(start - timedelta(hours=1), end + timedelta(hours=1)) == []

    account.user.add("Dentist", start, end)
    stack.drain()
    assert account.busy(start - timedelta(hours=1), end + timedelta(hours=1)) == []  # no push: nobody knows yet

    polled = stack.fire("CalendarPoll")
    assert polled.ok, polled.error
    assert polled.payload["enqueued"] >= 1
    stack.drain()

    assert account.busy(start - timedelta(hours=1), end + timedelta(hours=1)) == [
        (clock.offset(start), clock.offset(end))
    ]
    imported = [a for a in account.appointments() if a["title"] == "Dentist"]
    assert [(a["start"], a["end"]) for a in imported] == [(clock.z(start), clock.z(end))]


def test_opening_the_calendar_settings_polls_at_once(account: Account, stack: Any) -> None:
    start = clock.next_weekday(clock.THURSDAY, 9)
    end = start + timedelta(minutes=30)
    account.user.add("Call the bank", start, end)

    listed = account.alice.api("GET", "/v1/calendars")  # what the settings page loads
    assert listed.status_code == 200, listed.text
    stack.drain()

    assert account.busy(start, end) == [(clock.offset(start), clock.offset(end))]


def test_disconnecting_the_icloud_account_deletes_what_was_mirrored(account: Account, stack: Any) -> None:
    start = clock.next_weekday(clock.FRIDAY, 11)
    end = start + timedelta(hours=1)
    account.user.add("Gym", start, end)
    stack.fire("CalendarPoll")
    stack.drain()
    assert account.busy(start, end) != []
    assert len(account.stored_keys()) > 2  # at least the connection, its calendar, its cursor, events

    gone = account.alice.api("DELETE", f"/v1/integrations/{account.connection_id}")
    assert gone.status_code == 204, gone.text
    stack.drain()

    calendars = account.alice.api("GET", "/v1/calendars").json()["items"]
    assert [c for c in calendars if c["connection_id"] == account.connection_id] == []
    assert account.stored_keys() == []
    assert account.alice.api("GET", "/v1/settings/calendar").json()["linked_calendar"] is None


def test_a_poll_icloud_refuses_for_a_while_is_retried_through_the_queue(account: Account, stack: Any) -> None:
    start = clock.next_weekday(clock.SATURDAY, 10)
    end = start + timedelta(hours=1)
    account.user.add("Haircut", start, end)
    stack.caldav.layer.add_fault(Fault("unavailable_503", email=account.user.email, method="REPORT", retry_after=1))
    reports_before = stack.caldav.layer.count(account.user.email, "REPORT")

    polled = stack.fire("CalendarPoll")
    assert polled.ok, polled.error
    stack.drain()  # the poll fails (503), the message comes back after its visibility timeout

    assert stack.caldav.layer.count(account.user.email, "REPORT") - reports_before >= 2
    assert account.busy(start, end) == [(clock.offset(start), clock.offset(end))]
    integrations = account.alice.api("GET", "/v1/integrations").json()["items"]
    assert [i["status"] for i in integrations if i["id"] == account.connection_id] == ["connected"]


def test_a_revoked_app_specific_password_found_by_a_poll_marks_the_account_and_stops_its_polls(
    account: Account, stack: Any
) -> None:
    stack.caldav.remove_user(account.user.email)  # revoked at account.apple.com

    stack.fire("CalendarPoll")
    stack.drain()

    integrations = account.alice.api("GET", "/v1/integrations").json()["items"]
    assert [i["status"] for i in integrations if i["id"] == account.connection_id] == ["needs_reauth"]
    before = stack.caldav.layer.count(account.user.email)
    again = stack.fire("CalendarPoll")
    stack.drain()
    assert again.ok, again.error
    assert stack.caldav.layer.count(account.user.email) == before  # no more polls until reconnected


def test_the_crm_moving_one_imported_occurrence_writes_an_override_that_a_poll_keeps(
    account: Account, stack: Any, unique: str
) -> None:
    paris = ZoneInfo("Europe/Paris")
    first = clock.next_weekday(clock.MONDAY, 9, zone=paris)
    title = f"Weekly {unique}"
    series = icalendar.Event()
    series.add("uid", f"weekly-{unique}")
    series.add("dtstamp", clock.now())
    series.add("summary", title)
    series.add("dtstart", first)
    series.add("dtend", first + timedelta(hours=1))
    series.add("rrule", {"FREQ": "WEEKLY", "COUNT": 3})
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//tests//EN")
    calendar.add("version", "2.0")
    calendar.add_component(series)
    calendar.add_missing_timezones()
    account.user.put(f"weekly-{unique}.ics", calendar.to_ical().decode())
    assert stack.fire("CalendarPoll").ok
    stack.drain()
    imported = sorted((a for a in account.appointments() if a["title"] == title), key=lambda a: a["start"])
    assert [a["start"] for a in imported] == [clock.z(first + timedelta(weeks=w)) for w in range(3)]

    second = imported[1]
    moved = first + timedelta(weeks=1, days=1, hours=5)
    changed = account.alice.api(
        "PATCH",
        f"/v1/appointments/{second['id']}",
        json={"start": clock.z(moved), "end": clock.z(moved + timedelta(hours=1))},
    )
    assert changed.status_code == 200, changed.text
    stack.drain()  # the push

    stored = account.user.get(f"weekly-{unique}.ics")
    overrides = [e for e in stored.walk("VEVENT") if e.get("RECURRENCE-ID") is not None]
    assert [e.decoded("RECURRENCE-ID").astimezone(UTC) for e in overrides] == [
        (first + timedelta(weeks=1)).astimezone(UTC)
    ]
    assert overrides[0].decoded("DTSTART").astimezone(UTC) == moved.astimezone(UTC)
    assert account.user.instances(first - timedelta(days=1), first + timedelta(weeks=4)) == {
        f"weekly-{unique}.ics@{(first + timedelta(weeks=w)).astimezone(UTC):%Y%m%dT%H%M%SZ}": (
            (first + timedelta(weeks=w)).astimezone(UTC) if w != 1 else moved.astimezone(UTC),
            (first + timedelta(weeks=w, hours=1)).astimezone(UTC)
            if w != 1
            else (moved + timedelta(hours=1)).astimezone(UTC),
        )
        for w in range(3)
    }

    assert stack.fire("CalendarPoll").ok
    stack.drain()
    after = account.alice.api("GET", f"/v1/appointments/{second['id']}").json()
    assert (after["start"], after["end"]) == (clock.z(moved), clock.z(moved + timedelta(hours=1))), after
    assert after["sync_state"] == "synced", after
    again = sorted((a for a in account.appointments() if a["title"] == title), key=lambda a: a["start"])
    assert [a["id"] for a in again] == [imported[0]["id"], second["id"], imported[2]["id"]]
