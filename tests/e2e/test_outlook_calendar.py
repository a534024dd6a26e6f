"""Outlook calendars end to end through the local stack, without a browser (issue 16): the
account is connected with "Sign in with Microsoft" on the emulator's consent page, its check
lists its Outlook calendars, one is linked (or made a conflict calendar), and its first sync
opens a Graph subscription whose validation handshake the stack's graph_webhook answers. An
event the user creates in Outlook (the Graph emulator's user edits) reaches the CRM through a
real notification (the emulator's delivery thread posts to graph_webhook, which queues the
sync), and in a conflict calendar refuses a double booking; a duplicated notification changes
nothing, a dropped one is caught by the ``missed`` lifecycle event; ``subscriptionRemoved``
opens a new subscription; a calendar no longer synced, and a disconnect, delete the
subscription at Graph; a grant revoked at Microsoft, found by a sync, marks the account needs
re-authorization. The Chromium test (test_outlook_calendar_page.py) covers the page and the
booking with a lost answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.models.keys import user_pk
from tests.e2e.test_microsoft_signin_api import Browser
from tests.support import clock

pytestmark = [pytest.mark.e2e]

#: Seconds to wait for the emulator's deliveries to the stack (never a sleep).
WAIT = 30.0


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
        stack.drain()  # the calendar's first (full) sync, which subscribes

    def subscriptions(self) -> list[Any]:
        """The mailbox's live subscriptions at Graph."""
        return list(self.graph.subscriptions.active(self.email))

    def delivered(self) -> None:
        """Wait until the emulator has posted what it queued to the stack's graph_webhook,
        then let the queue run the syncs that asked for."""
        assert self.graph.notifications.wait_idle(WAIT)
        self.stack.drain()

    def imported(self, title: str) -> list[dict[str, Any]]:
        return [a for a in self.alice.api("GET", "/v1/appointments").json()["items"] if a["title"] == title]

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


def test_an_outlook_event_reaches_the_crm_through_a_notification_and_disconnect_deletes_the_subscription(
    account: Account, stack: Any
) -> None:
    """The linked calendar (listed as Calendar Settings lists it) has a subscription:
    notification and lifecycle URLs on the stack, the handshake answered by graph_webhook. The
    user's event is notified, queued and synced without any poll; the clientState is never
    logged; disconnecting deletes the subscription at Graph (Microsoft has no per-app
    revocation: docs/SECURITY.md) and everything mirrored."""
    listed = account.alice.api("GET", "/v1/calendars").json()["items"]
    assert [(c["connection_id"], c["calendar_id"], c["name"]) for c in listed] == [
        (account.connection_id, account.calendar_id, "Calendar")
    ]
    [subscription] = account.subscriptions()
    assert subscription.resource == f"me/calendars/{account.calendar_id}/events"
    assert subscription.notification_url == f"{stack.api_url}/webhooks/microsoft/calendar"
    assert subscription.lifecycle_url == f"{stack.api_url}/webhooks/microsoft/lifecycle"
    start = clock.next_weekday(clock.WEDNESDAY, 14)
    end = start + timedelta(hours=1)
    account.add("Dentist", start, end)

    account.delivered()

    assert account.busy(start, end) == [(clock.offset(start), clock.offset(end))]
    assert [(a["start"], a["end"]) for a in account.imported("Dentist")] == [(clock.z(start), clock.z(end))]
    assert len(account.stored_keys()) > 2  # the connection, its calendar, its cursor, events
    secret = subscription.client_state
    assert secret
    assert not any(secret in line for _, line in stack.logs.snapshot())  # never logged

    gone = account.alice.api("DELETE", f"/v1/integrations/{account.connection_id}")
    assert gone.status_code == 204, gone.text
    stack.drain()

    assert account.subscriptions() == []
    assert account.stored_keys() == []
    assert account.alice.api("GET", "/v1/calendars").json()["items"] == []
    assert account.alice.api("GET", "/v1/settings/calendar").json()["linked_calendar"] is None


def test_an_outlook_conflict_calendar_blocks_availability_and_refuses_a_double_booking(stack: Any, unique: str) -> None:
    account = Account(stack, unique, link=False)
    start = clock.next_weekday(clock.FRIDAY, 11)
    end = start + timedelta(hours=1)
    account.add("Board meeting", start, end)
    account.delivered()  # a conflict calendar has its subscription too

    assert account.busy(start, end) == [(clock.offset(start), clock.offset(end))]
    overlapping = {"title": "Intro", "start": clock.z(start), "end": clock.z(end), "time_zone": "UTC"}
    refused = account.alice.api("POST", "/v1/appointments", json=overlapping)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:crmsync:problem:booking-conflict"
    assert [c["event"] for c in refused.json()["conflicts"]] == ["Board meeting"]
    assert account.alice.api("GET", "/v1/appointments").json()["items"] == []


def test_a_duplicated_notification_changes_nothing_and_a_dropped_one_is_caught_by_missed(
    account: Account, stack: Any
) -> None:
    """Graph may deliver a notification twice or not at all (delivery faults of the emulator):
    the twice-delivered event is imported once; the lost one arrives when Graph's ``missed``
    lifecycle event asks for the sync."""
    day = clock.next_weekday(clock.THURSDAY, 9)
    notifications = account.graph.notifications
    try:
        notifications.duplicate(1)
        account.add("Twice", day, day + timedelta(hours=1))
        account.delivered()
        twice = [d for d in notifications.deliveries() if d["kind"] == "change"][-2:]
        assert [d["status"] for d in twice] == [202, 202]  # both reached the stack
        assert len(account.imported("Twice")) == 1

        notifications.drop(1)
        account.add("Lost", day + timedelta(hours=2), day + timedelta(hours=3))
        account.delivered()
        assert account.imported("Lost") == []  # nobody told us
    finally:
        notifications.clear()

    [subscription] = account.subscriptions()
    assert account.graph.subscriptions.lifecycle(subscription.id, "missed")
    account.delivered()

    assert len(account.imported("Lost")) == 1
    assert len(account.imported("Twice")) == 1


def test_a_removed_subscription_is_opened_again_and_a_calendar_no_longer_synced_is_unsubscribed(
    account: Account, stack: Any
) -> None:
    """``subscriptionRemoved`` (Graph removed it): the worker opens a new one after the sync the
    lifecycle event queued; the new one's notifications authenticate. A calendar the user no
    longer syncs (unlinked, not a conflict calendar) is retired: its subscription deleted."""
    [first] = account.subscriptions()
    assert account.graph.subscriptions.lifecycle(first.id, "subscriptionRemoved")
    account.delivered()

    [second] = account.subscriptions()
    assert second.id != first.id
    start = clock.next_weekday(clock.FRIDAY, 11)
    account.add("After removal", start, start + timedelta(minutes=30))
    account.delivered()
    assert len(account.imported("After removal")) == 1

    assert account.alice.api("DELETE", "/v1/settings/linked-calendar").status_code == 200
    dropped = account.alice.api("PUT", "/v1/settings/conflict-calendars", json={"calendars": []})
    assert dropped.status_code == 200, dropped.text
    stack.drain()
    assert account.subscriptions() == []


def test_a_grant_revoked_at_microsoft_found_by_a_sync_marks_the_account_needs_reauthorization(
    account: Account, stack: Any
) -> None:
    """The user's sessions are revoked (refresh and access tokens): the next change's
    notification queues a sync, Graph answers it 401, and the account needs re-authorization."""
    stack.microsoft.revoke_grants(account.email, access_tokens=True)
    start = clock.next_weekday(clock.TUESDAY, 16)

    account.add("After revocation", start, start + timedelta(hours=1))
    account.delivered()

    assert account.status() == "needs_reauth"
    assert account.imported("After revocation") == []
