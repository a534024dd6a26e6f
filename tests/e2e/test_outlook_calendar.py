"""Outlook calendars end to end through the local stack, without a browser (issue 16): the
account is connected with "Sign in with Microsoft" on the emulator's consent page, its check
lists its Outlook calendars, one is linked; an event the user creates in Outlook (the Graph
emulator's user edits) blocks availability after the scheduled poll, or at once when Calendar
Settings is opened, and as a conflict calendar refuses a double booking; disconnecting deletes
what was mirrored; a grant revoked at Microsoft, found by a sync, marks the account needs
re-authorization. The Chromium test (test_outlook_calendar_page.py) covers the page and the
booking with a lost answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.models.keys import user_pk
from tests.e2e.test_microsoft_signin_api import Browser
from tests.support import clock

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("stack")]


@pytest.fixture(autouse=True)
def _trust_the_emulator(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's requests (the consent page here) trust the emulator as the functions do."""
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.microsoft.trust_bundle))


def when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


class Account:
    """Alice's CRM session with a Microsoft account of this test's own connected and its
    Outlook calendar linked."""

    def __init__(self, stack: Any, unique: str, *, link: bool = True) -> None:
        self.stack = stack
        self.tenant = f"tenant-{unique}"
        self.email = f"ada-{unique}@contoso.test"
        stack.microsoft.add_user(self.email, f"Ada {unique}")
        self.alice = Browser(stack, self.tenant, "alice")
        self.connection_id = self.alice.connect(self.email)["connected"]
        stack.drain()  # the connection's check lists its calendars (the mailbox is made then)
        self.graph = stack.microsoft_graph.state
        self.calendar_id = self.graph.default_calendar(self.email).id
        chosen = {"connection_id": self.connection_id, "calendar_id": self.calendar_id}
        if link:
            answer = self.alice.api("PUT", "/v1/settings/linked-calendar", json=chosen)
        else:  # a conflict calendar only: its events block time, none becomes an appointment
            answer = self.alice.api("PUT", "/v1/settings/conflict-calendars", json={"calendars": [chosen]})
        assert answer.status_code == 200, answer.text
        stack.drain()  # the calendar's first (full) sync

    def add(self, subject: str, start: datetime, end: datetime) -> str:
        """The user creates an event in Outlook."""
        body = {"subject": subject, "start": when(start), "end": when(end)}
        return str(self.graph.user_create_event(self.email, body, self.calendar_id).id)

    def busy(self, start: datetime, end: datetime) -> list[tuple[str, str]]:
        window = {"start": clock.z(start), "end": clock.z(end), "duration": 30}
        answer = self.alice.api("GET", "/v1/availability", params=window)
        assert answer.status_code == 200, answer.text
        return [(b["start"], b["end"]) for b in answer.json()["busy"]]

    def stored_keys(self) -> list[str]:
        """Alice's stored items naming the connection (connection, calendars, cursor, mirrored
        events), read straight from DynamoDB; CRM appointments stay on disconnect (API.md)."""
        dynamodb = self.stack.aws_client("dynamodb")
        table = self.stack.function_environment("ApiFunction")["CONNECTIONS_TABLE"]
        items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": user_pk(self.tenant, "alice")}},
        )["Items"]
        return [i["sk"]["S"] for i in items if self.connection_id in repr(i) and not i["sk"]["S"].startswith("APPT#")]

    def status(self) -> str:
        items = self.alice.listing()["items"]
        return str(next(i["status"] for i in items if i["id"] == self.connection_id))


@pytest.fixture
def account(stack: Any, unique: str) -> Account:
    return Account(stack, unique)


def test_an_outlook_event_blocks_availability_after_the_scheduled_poll_and_disconnect_forgets_it(
    account: Account, stack: Any
) -> None:
    start = clock.next_weekday(clock.WEDNESDAY, 14)
    end = start + timedelta(hours=1)
    account.add("Dentist", start, end)
    assert account.busy(start, end) == []  # polled: nobody knows yet

    polled = stack.fire("CalendarPoll")
    assert polled.ok, polled.error
    assert polled.payload["enqueued"] >= 1
    stack.drain()

    assert account.busy(start, end) == [(clock.offset(start), clock.offset(end))]
    imported = [a for a in account.alice.api("GET", "/v1/appointments").json()["items"] if a["title"] == "Dentist"]
    assert [(a["start"], a["end"]) for a in imported] == [(clock.z(start), clock.z(end))]
    assert len(account.stored_keys()) > 2  # the connection, its calendar, its cursor, events

    gone = account.alice.api("DELETE", f"/v1/integrations/{account.connection_id}")
    assert gone.status_code == 204, gone.text
    stack.drain()

    assert account.stored_keys() == []
    assert account.alice.api("GET", "/v1/calendars").json()["items"] == []
    assert account.alice.api("GET", "/v1/settings/calendar").json()["linked_calendar"] is None


def test_opening_calendar_settings_lists_the_outlook_calendar_and_polls_it_at_once(
    account: Account, stack: Any
) -> None:
    start = clock.next_weekday(clock.THURSDAY, 9)
    end = start + timedelta(minutes=30)
    account.add("Call the bank", start, end)

    listed = account.alice.api("GET", "/v1/calendars")  # what the settings page loads
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(c["connection_id"], c["calendar_id"], c["name"]) for c in items] == [
        (account.connection_id, account.calendar_id, "Calendar")
    ]
    stack.drain()

    assert account.busy(start, end) == [(clock.offset(start), clock.offset(end))]


def test_an_outlook_conflict_calendar_blocks_availability_and_refuses_a_double_booking(stack: Any, unique: str) -> None:
    account = Account(stack, unique, link=False)
    start = clock.next_weekday(clock.FRIDAY, 11)
    end = start + timedelta(hours=1)
    account.add("Board meeting", start, end)
    # Conflict calendars are polled at one tick in three: "Sync now" asks at once.
    synced = account.alice.api("POST", f"/v1/integrations/{account.connection_id}/sync")
    assert synced.status_code == 202, synced.text
    stack.drain()

    assert account.busy(start, end) == [(clock.offset(start), clock.offset(end))]
    overlapping = {"title": "Intro", "start": clock.z(start), "end": clock.z(end), "time_zone": "UTC"}
    refused = account.alice.api("POST", "/v1/appointments", json=overlapping)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:crmsync:problem:booking-conflict"
    assert [c["event"] for c in refused.json()["conflicts"]] == ["Board meeting"]
    assert account.alice.api("GET", "/v1/appointments").json()["items"] == []


def test_a_grant_revoked_at_microsoft_found_by_a_poll_marks_the_account_needs_reauthorization(
    account: Account, stack: Any
) -> None:
    """The user's sessions are revoked (refresh and access tokens): Graph answers 401 to the
    poll's sync; the account needs re-authorization and is no longer polled."""
    stack.microsoft.revoke_grants(account.email, access_tokens=True)

    stack.fire("CalendarPoll")
    stack.drain()

    assert account.status() == "needs_reauth"
    again = stack.fire("CalendarPoll")
    assert again.ok, again.error
    stack.drain()
    assert account.status() == "needs_reauth"
