"""F1 through the local stack: HTTP API Gateway stand-in with its JWT authorizer, the real
handlers in Lambda-like worker processes, SQS delivery, schedules, the Google emulator."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from crmsync.messaging.messages import ConnectionCheck
from crmsync.models.connection import CONNECTION_SK_PREFIX
from tests.support import clock
from tests.support.google_consent import consent, query
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e]


class Browser:
    """One person's browser: cookies persist; API calls carry the CRM's bearer token."""

    def __init__(self, stack, tenant: str, user: str) -> None:
        self.stack = stack
        self.tenant, self.user = tenant, user
        self.http = requests.Session()
        self.token = stack.issue_token(tenant, user)

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.http.request(method, self.stack.api_url + path, headers=headers, timeout=30, **kw)

    def start(self) -> str:
        response = self.api("POST", "/v1/integrations/google/authorize", json={})
        assert response.status_code == 200, response.text
        return response.json()["authorization_url"]

    def callback(self, url: str) -> dict[str, str]:
        """Follow Google's redirect to our callback; return the settings page's query."""
        response = self.http.get(url, allow_redirects=False, timeout=30)
        assert response.status_code == 303
        location = response.headers["Location"]
        assert location.startswith(self.stack.api_url + "/settings/integrations?")
        assert response.headers["Cache-Control"] == "no-store"
        return query(location)

    def connect(self, email: str) -> dict[str, str]:
        return self.callback(consent(self.start(), email))

    def integrations(self) -> list[dict]:
        response = self.api("GET", "/v1/integrations")
        assert response.status_code == 200, response.text
        return response.json()["items"]


def check_accounts(stack, email: str) -> None:
    """The health check of every connection of ``email``: what the 6-hourly schedule queues for
    each of them (a ``connection.check``), for these only, then drained. Firing the schedule
    itself would check every connection the session's stack holds (hundreds, late in a run);
    the schedule's fan-out has tests of its own (test_sync_safety_net.py,
    test_microsoft_signin_api.py, the scheduler's unit tests)."""
    dynamodb = stack.aws_client("dynamodb")
    table = stack.function_environment("ApiFunction")["CONNECTIONS_TABLE"]
    found = dynamodb.scan(
        TableName=table,
        FilterExpression="email = :email AND begins_with(sk, :conn)",
        ExpressionAttributeValues={":email": {"S": email.lower()}, ":conn": {"S": CONNECTION_SK_PREFIX}},
        ConsistentRead=True,
    )["Items"]
    assert found, f"no connection of {email}"
    sqs = stack.aws_client("sqs")
    queue_url = stack.function_environment("SyncWorkerFunction")["SYNC_QUEUE_URL"]
    for item in found:
        check = ConnectionCheck(
            tenant_id=item["tenant_id"]["S"],
            user_id=item["user_id"]["S"],
            connection_id=item["connection_id"]["S"],
            reason="scheduled",
            occasion=uuid.uuid4().hex,
        )
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=check.model_dump_json(),
            MessageGroupId=check.group_id,
            MessageDeduplicationId=check.deduplication_id,
        )
    stack.drain()


def needs_reauth(stack, email: str) -> None:
    """The user removed our access in their Google account; the health check notices."""
    requests.post(
        stack.google.base_url + "/_emulator/grants/revoke",
        json={"email": email, "client_id": "crmsync-local-client"},
        timeout=10,
    ).raise_for_status()
    check_accounts(stack, email)


@pytest.fixture
def google_account(stack) -> str:
    """A Google account of this test's own: no other test's grants, events or channels."""
    return GoogleCalendarUser.new(stack.google.base_url, "ada").email


@pytest.fixture
def mallory(stack, unique) -> Browser:
    return Browser(stack, f"other-{unique}", "mallory")


def test_the_api_refuses_requests_without_a_valid_token(stack) -> None:
    assert requests.get(stack.api_url + "/v1/integrations", timeout=10).status_code == 401
    forged = requests.get(stack.api_url + "/v1/integrations", headers={"Authorization": "Bearer not.a.jwt"}, timeout=10)
    assert forged.status_code == 401


def test_connect_two_accounts_and_disconnect_one(alice: Browser, stack) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace", domain="example.org").email
    assert "connected" in alice.connect(ada)
    assert "connected" in alice.connect(grace)

    items = alice.integrations()
    assert sorted(i["email"] for i in items) == sorted([ada, grace])
    assert {i["status"] for i in items} == {"connected"}
    assert all("refresh" not in json.dumps(i).lower() for i in items)

    connection = next(i for i in items if i["email"] == ada)
    assert alice.api("DELETE", f"/v1/integrations/{connection['id']}").status_code == 204
    assert [i["email"] for i in alice.integrations()] == [grace]
    assert [r["email"] for r in stack.google.state.revocations() if r["email"] in (ada, grace)] == [ada]


def test_connecting_the_same_account_twice_keeps_one_connection(alice: Browser, google_account: str) -> None:
    first = alice.connect(google_account)["connected"]
    second = alice.connect(google_account)["connected"]
    assert first == second
    assert [i["id"] for i in alice.integrations()] == [first]


def test_a_replayed_callback_is_refused(alice: Browser, google_account: str) -> None:
    url = consent(alice.start(), google_account)
    assert "connected" in alice.callback(url)
    assert alice.callback(url) == {"error": "state_unknown"}
    assert len(alice.integrations()) == 1


def test_a_state_from_another_user_is_refused(alice: Browser, bob: Browser, google_account: str) -> None:
    bob.start()  # Bob has a browser binding of his own
    url = consent(alice.start(), google_account)

    assert bob.callback(url) == {"error": "state_mismatch"}
    assert bob.integrations() == []
    # The refused attempt did not burn Alice's sign-in.
    assert "connected" in alice.callback(url)


def test_a_callback_without_the_browser_binding_is_refused(alice: Browser, google_account: str) -> None:
    url = consent(alice.start(), google_account)
    stranger = requests.get(url, allow_redirects=False, timeout=30)
    assert query(stranger.headers["Location"]) == {"error": "state_mismatch"}
    assert alice.integrations() == []


def test_cancelling_consent_connects_nothing(alice: Browser) -> None:
    assert alice.callback(consent(alice.start(), cancel=True)) == {"error": "access_denied"}
    assert alice.integrations() == []


def test_another_tenant_can_neither_list_nor_delete(alice: Browser, mallory: Browser, google_account: str) -> None:
    connection_id = alice.connect(google_account)["connected"]

    assert mallory.integrations() == []
    refused = mallory.api("DELETE", f"/v1/integrations/{connection_id}")
    assert refused.status_code == 404
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert [i["id"] for i in alice.integrations()] == [connection_id]


def test_errors_are_problem_documents(alice: Browser) -> None:
    missing = alice.api("DELETE", "/v1/integrations/gdoesnotexist")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json() == {
        "type": "urn:crmsync:problem:not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No integration with id 'gdoesnotexist'.",
    }
    invalid = alice.api("POST", "/v1/integrations/google/authorize", json={"features": ["fax"]})
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["type"] == "urn:crmsync:problem:validation"
    assert "features" in body["detail"]
    garbage = alice.api(
        "POST", "/v1/integrations/google/authorize", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code in (400, 422)
    assert garbage.headers["Content-Type"] == "application/problem+json"


def test_the_settings_page_is_served_with_a_strict_policy(stack) -> None:
    page = requests.get(stack.api_url + "/settings/integrations", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "Sign in with Google" in page.text
    missing = requests.get(stack.api_url + "/settings/nope", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"


def test_a_connection_is_checked_after_connect_and_a_revoked_grant_shows_needs_reauth(
    alice: Browser, stack, google_account: str
) -> None:
    alice.connect(google_account)
    stack.drain()
    (checked,) = alice.integrations()
    assert checked["status"] == "connected"
    assert checked["last_checked_at"] is not None
    assert datetime.fromisoformat(checked["last_checked_at"]) >= datetime.fromisoformat(checked["connected_at"])

    needs_reauth(stack, google_account)

    (flagged,) = alice.integrations()
    assert flagged["status"] == "needs_reauth"
    assert flagged["status_reason"] == "invalid_grant"


def test_connected_calendars_appear_after_connect(alice: Browser, mallory: Browser, stack) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email
    alice.connect(ada)
    stack.drain()

    response = alice.api("GET", "/v1/calendars")
    assert response.status_code == 200
    items = response.json()["items"]
    primary = items[0]
    assert (primary["calendar_id"], primary["primary"], primary["writable"], primary["conflict"]) == (
        ada,
        True,
        True,
        True,
    )
    assert any(not c["writable"] for c in items)
    assert mallory.api("GET", "/v1/calendars").json() == {"items": []}


def test_calendar_settings_over_http(alice: Browser, stack) -> None:
    alice.connect(GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email)
    stack.drain()
    items = alice.api("GET", "/v1/calendars").json()["items"]
    read_only = next(c for c in items if not c["writable"])
    team = next(c for c in items if c["name"] == "Team")

    refused = alice.api(
        "PUT",
        "/v1/settings/linked-calendar",
        json={"connection_id": read_only["connection_id"], "calendar_id": read_only["calendar_id"]},
    )
    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "read-only" in refused.json()["detail"]

    linked = alice.api(
        "PUT",
        "/v1/settings/linked-calendar",
        json={"connection_id": team["connection_id"], "calendar_id": team["calendar_id"]},
    )
    assert linked.status_code == 200
    assert linked.json()["linked_calendar"]["name"] == "Team"
    bad = alice.api("PUT", "/v1/settings/sync-preferences", json={"direction": "sideways"})
    assert bad.status_code == 422
    ok = alice.api("PUT", "/v1/settings/sync-preferences", json={"direction": "calendar_to_crm", "window_days_back": 3})
    assert ok.json()["sync_preferences"] == {
        "direction": "calendar_to_crm",
        "external_deletion": "cancel",
        "window_days_back": 3,
        "window_days_ahead": 365,
    }
    assert alice.api("GET", "/v1/settings/calendar").json()["linked_calendar"]["calendar_id"] == team["calendar_id"]


def test_an_appointment_booked_in_the_crm_lands_in_the_linked_google_calendar(
    alice: Browser, mallory: Browser, stack
) -> None:
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace", domain="example.org")
    alice.connect(grace.email)
    stack.drain()
    primary = next(c for c in alice.api("GET", "/v1/calendars").json()["items"] if c["primary"])
    linked = alice.api(
        "PUT",
        "/v1/settings/linked-calendar",
        json={"connection_id": primary["connection_id"], "calendar_id": primary["calendar_id"]},
    )
    assert linked.status_code == 200

    demo = clock.next_weekday(clock.WEDNESDAY, 15, zone="Europe/Paris")
    created = alice.api(
        "POST",
        "/v1/appointments",
        json={
            "title": "Demo with Grace",
            "start": clock.offset(demo),
            "end": clock.offset(demo + timedelta(minutes=45)),
            "time_zone": "Europe/Paris",
            "attendees": ["client@example.net"],
        },
    )
    assert created.status_code == 201, created.text
    appointment = created.json()
    assert appointment["sync_state"] == "pending"
    stack.drain()

    synced = alice.api("GET", f"/v1/appointments/{appointment['id']}").json()
    assert synced["sync_state"] == "synced"
    event_id = synced["calendar_event"]["event_id"]
    (event,) = [e for e in grace.events(primary["calendar_id"]) if e["id"] == event_id]
    assert event["summary"] == "Demo with Grace"
    assert datetime.fromisoformat(event["start"]["dateTime"]) == demo
    assert event["start"].get("timeZone") == "Europe/Paris"
    assert [a["email"] for a in event["attendees"]] == ["client@example.net"]

    assert mallory.api("GET", f"/v1/appointments/{appointment['id']}").status_code == 404
    assert alice.api("DELETE", f"/v1/appointments/{appointment['id']}").json()["status"] == "cancelled"
    stack.drain()
    assert [e["status"] for e in grace.events(primary["calendar_id"]) if e["id"] == event_id] == ["cancelled"]


def test_concurrent_bookings_through_the_api_exactly_one_succeeds(alice: Browser) -> None:
    """Threads against the local stack (several Lambda workers at once): one 201, the rest 409."""
    from concurrent.futures import ThreadPoolExecutor

    contested = clock.next_weekday(clock.TUESDAY, 10)
    body = {
        "title": "contested",
        "start": clock.z(contested),
        "end": clock.z(contested + timedelta(hours=1)),
        "time_zone": "UTC",
    }
    with ThreadPoolExecutor(6) as pool:
        # Six warm workers first: the race is between bookings, not between cold starts
        # (six interpreters starting at once on two busy cores can outlast the timeout).
        assert {r.status_code for r in pool.map(lambda _: alice.api("GET", "/v1/appointments"), range(6))} == {200}
        answers = list(pool.map(lambda _: alice.api("POST", "/v1/appointments", json=body), range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 409, 409, 409, 409, 409]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["type"] == "urn:crmsync:problem:booking-conflict"
    assert refused["conflicts"] == [
        {
            "start": clock.offset(contested),
            "end": clock.offset(contested + timedelta(hours=1)),
            "source": "crm",
            "calendar": None,
            "event": "contested",
        }
    ]


def test_busy_time_in_google_shapes_availability_and_refuses_bookings(alice: Browser, stack, unique: str) -> None:
    email = f"busy-{unique}@example.com"
    requests.post(
        f"{stack.google.base_url}/_emulator/tokens", json={"email": email, "scopes": ["openid"]}, timeout=10
    ).raise_for_status()
    dentist = clock.next_weekday(clock.THURSDAY, 10)
    GoogleCalendarUser(stack.google.base_url, email).add(
        summary="dentist", start={"dateTime": clock.z(dentist)}, end={"dateTime": clock.z(dentist + timedelta(hours=1))}
    )
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()  # health check → calendar list → sync of the conflict calendars

    answer = alice.api(
        "GET",
        "/v1/availability",
        params={
            "start": clock.z(dentist - timedelta(hours=1)),
            "end": clock.z(dentist + timedelta(hours=2)),
            "duration": 60,
            "tz": "Europe/Berlin",
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    berlin = ZoneInfo("Europe/Berlin")
    free = [dentist - timedelta(hours=1), dentist + timedelta(hours=1)]
    assert [s["start"] for s in body["slots"]] == [clock.offset(moment.astimezone(berlin)) for moment in free]
    assert body["busy"] == [
        {
            "start": clock.offset(dentist.astimezone(berlin)),
            "end": clock.offset((dentist + timedelta(hours=1)).astimezone(berlin)),
            "source": "calendar",
        }
    ]
    refused = alice.api(
        "POST",
        "/v1/appointments",
        json={
            "title": "x",
            "start": clock.z(dentist + timedelta(minutes=30)),
            "end": clock.z(dentist + timedelta(minutes=90)),
            "time_zone": "UTC",
        },
    )
    assert refused.status_code == 409
    assert refused.json()["conflicts"][0]["source"] == "calendar"
    assert (refused.json()["conflicts"][0]["calendar"], refused.json()["conflicts"][0]["event"]) == (email, "dentist")
    assert refused.json()["detail"].startswith(f"The time is busy in {email}: dentist (")


def test_an_event_created_in_google_reaches_the_crm_through_a_real_push(alice: Browser, stack, unique: str) -> None:
    """Connect → the worker syncs the conflict calendar and opens a watch channel → an event
    created in Google makes the emulator POST to our webhook → the queued sync mirrors it."""
    email = f"push-{unique}@example.com"
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()
    channels = requests.get(f"{stack.google.base_url}/_emulator/calendar/channels", timeout=10).json()
    assert any(c.get("address", "").endswith("/webhooks/google/calendar") for c in channels)

    pushed = clock.next_weekday(clock.FRIDAY, 10)
    GoogleCalendarUser(stack.google.base_url, email).add(
        summary="pushed", start={"dateTime": clock.z(pushed)}, end={"dateTime": clock.z(pushed + timedelta(hours=1))}
    )
    stack.google.push.wait_idle()  # the emulator's notification reached our webhook
    stack.drain()  # the webhook's queued sync ran

    window = {
        "start": clock.z(pushed - timedelta(hours=1)),
        "end": clock.z(pushed + timedelta(hours=2)),
        "duration": 60,
    }
    busy = alice.api("GET", "/v1/availability", params=window).json()["busy"]
    assert busy == [
        {"start": clock.offset(pushed), "end": clock.offset(pushed + timedelta(hours=1)), "source": "calendar"}
    ]
    pushes = [line for _, line in list(stack.logs) if "calendar notification" in line]
    assert any('"outcome":"enqueued"' in line.replace(" ", "") for line in pushes)


def test_forged_calendar_notifications_change_nothing(alice: Browser, stack, unique: str) -> None:
    """Someone who knows a live channel's id and resource id but not its token is refused;
    an unknown channel is acknowledged; neither queues any work."""
    email = f"forge-{unique}@example.com"
    alice.callback(consent(alice.start(), email, typed=True))
    stack.drain()
    stack.google.push.wait_idle()  # nothing of this or any earlier test is still on its way
    stack.drain()
    (channel,) = requests.get(
        f"{stack.google.base_url}/_emulator/calendar/channels", params={"email": email}, timeout=10
    ).json()
    sqs = stack.aws_client("sqs")
    queue_url = stack.function_environment("SyncWorkerFunction")["SYNC_QUEUE_URL"]

    def notify(channel_id: str, token: str) -> int:
        return requests.post(
            f"{stack.api_url}/webhooks/google/calendar",
            headers={
                "X-Goog-Channel-ID": channel_id,
                "X-Goog-Resource-State": "exists",
                "X-Goog-Resource-ID": channel["resourceId"],
                "X-Goog-Message-Number": "99",
                "X-Goog-Channel-Token": token,
            },
            timeout=10,
        ).status_code

    assert notify(channel["id"], "guess") == 403
    assert notify("00000000-0000-4000-8000-000000000000", "guess") == 200
    assert requests.post(f"{stack.api_url}/webhooks/google/calendar", timeout=10).status_code == 400
    waiting = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert waiting["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_invalid_appointments_are_problem_documents(alice: Browser) -> None:
    three = clock.next_weekday(clock.THURSDAY, 15)
    backwards = alice.api(
        "POST",
        "/v1/appointments",
        json={"title": "x", "start": clock.z(three), "end": clock.z(three - timedelta(hours=1)), "time_zone": "UTC"},
    )
    assert backwards.status_code == 422
    assert "end must be after start" in backwards.json()["detail"]
    naive = alice.api(
        "POST",
        "/v1/appointments",
        json={
            "title": "x",
            "start": three.replace(tzinfo=None).isoformat(),
            "end": (three + timedelta(hours=1)).replace(tzinfo=None).isoformat(),
            "time_zone": "UTC",
        },
    )
    assert naive.status_code == 422
    zone = alice.api(
        "POST",
        "/v1/appointments",
        json={
            "title": "x",
            "start": clock.z(three),
            "end": clock.z(three + timedelta(hours=1)),
            "time_zone": "Nowhere/City",
        },
    )
    assert zone.status_code == 422
    assert zone.json()["type"] == "urn:crmsync:problem:unprocessable"


def test_a_malformed_queue_message_is_rejected_with_a_logged_reason(stack) -> None:
    sqs = stack.aws_client("sqs")
    queue_url = stack.function_environment("SyncWorkerFunction")["SYNC_QUEUE_URL"]
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody='{"kind": "connection.check"}',
        MessageGroupId="g",
        MessageDeduplicationId="bad-1",
    )
    stack.drain()
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert any("rejected malformed sync message" in line for _, line in list(stack.logs))


def test_no_secret_reaches_any_log_line(alice: Browser, stack, google_account: str) -> None:
    """Runs a whole connect, check and disconnect, then greps every line every function and
    the local stack logged so far for every code and token the emulator ever issued."""
    connection_id = alice.connect(google_account)["connected"]
    stack.drain()
    assert alice.api("DELETE", f"/v1/integrations/{connection_id}").status_code == 204

    issued = stack.google.state.issued()
    secrets = [s for kind in ("codes", "access_tokens", "refresh_tokens", "id_tokens") for s in issued[kind]]
    assert issued["codes"]
    assert issued["refresh_tokens"]
    logs = "\n".join(line for _, line in list(stack.logs))
    assert "account connected" in logs  # the functions did log
    leaked = [s[:12] + "…" for s in secrets if s in logs]
    assert leaked == []
    assert alice.token not in logs
