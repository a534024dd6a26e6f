"""Contract tests of the Microsoft emulator's Graph calendar part (devstack/microsoft/graph),
one rule each, through werkzeug's test client (no server, no TLS: the identity part mounts
this app later). Sources are learn.microsoft.com Graph v1.0 pages, cited per test; where the
emulator guesses, the docstring says "guess" and docs/GRAPH_EMULATOR.md lists it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import Client, TestResponse

from devstack.microsoft.graph import Fault, GraphApp, GraphState
from tests.support import clock

ADA, BOB = "ada@contoso.test", "bob@contoso.test"
TOKENS = {"token-ada": ADA, "token-bob": BOB}
#: werkzeug's test client sets no peer address; the control routes answer loopback only.
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
EXTENDED_ID = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name crmEventId"


class ManualClock:
    """The emulator's clock, moved by the tests instead of sleeping."""

    def __init__(self) -> None:
        self.now = clock.now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def ticks() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(ticks: ManualClock) -> GraphState:
    graph = GraphState(ticks)
    graph.add_user(ADA, "Ada Lovelace")
    graph.add_user(BOB, "Bob Babbage")
    return graph


@pytest.fixture
def client(state: GraphState) -> Client:
    return Client(GraphApp(state, TOKENS.get))


def auth(token: str = "token-ada", **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def wall(moment: datetime, zone: str = "UTC") -> str:
    """``moment`` as a dateTimeTimeZone's dateTime (wall time, no offset) in ``zone``."""
    from devstack.microsoft.graph.zones import to_zone

    return moment.astimezone(to_zone(zone)).replace(tzinfo=None).isoformat()


def timed(start: datetime, minutes: int = 60, zone: str = "UTC", **extra: Any) -> dict[str, Any]:
    return {
        "subject": "Review",
        "start": {"dateTime": wall(start, zone), "timeZone": zone},
        "end": {"dateTime": wall(start + timedelta(minutes=minutes), zone), "timeZone": zone},
        **extra,
    }


def calendar_id(client: Client, token: str = "token-ada") -> str:
    calendars = client.get("/v1.0/me/calendars", headers=auth(token)).json
    assert calendars is not None
    return str(next(c["id"] for c in calendars["value"] if c["isDefaultCalendar"]))


def create(client: Client, body: dict[str, Any], token: str = "token-ada") -> dict[str, Any]:
    response = client.post(f"/v1.0/me/calendars/{calendar_id(client, token)}/events", json=body, headers=auth(token))
    assert response.status_code == 201, response.json
    return dict(response.json or {})


def window(days: int = 14) -> tuple[datetime, datetime]:
    start = clock.at(clock.now().date())
    return start, start + timedelta(days=days)


def delta_url(client: Client, start: datetime, end: datetime, token: str = "token-ada") -> str:
    return (
        f"/v1.0/me/calendars/{calendar_id(client, token)}/calendarView/delta"
        f"?startDateTime={clock.z(start)}&endDateTime={clock.z(end)}"
    )


def sync(client: Client, url: str, token: str = "token-ada", **headers: str) -> tuple[list[dict[str, Any]], str, int]:
    """Follow @odata.nextLink to the end; returns (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = client.get(url, headers=auth(token, **headers))
        assert response.status_code == 200, response.json
        body = response.json or {}
        pages += 1
        items.extend(body["value"])
        assert not ("@odata.nextLink" in body and "@odata.deltaLink" in body)
        if "@odata.deltaLink" in body:
            return items, str(body["@odata.deltaLink"]), pages
        url = body["@odata.nextLink"]


def error(response: TestResponse) -> str:
    body = response.json or {}
    return str(body["error"]["code"])


# ----- me, calendars, authentication, isolation


def test_me_names_the_signed_in_user(client: Client) -> None:
    """GET /me answers id, userPrincipalName, mail and displayName (api/user-get)."""
    body = client.get("/v1.0/me", headers=auth()).json or {}
    assert (body["userPrincipalName"], body["mail"], body["displayName"]) == (ADA, ADA, "Ada Lovelace")
    assert body["id"]
    assert body["id"] != (client.get("/v1.0/me", headers=auth("token-bob")).json or {})["id"]


def test_calendars_page_with_next_link(client: Client, state: GraphState) -> None:
    """GET /me/calendars lists calendar resources (id, name, canEdit, isDefaultCalendar,
    owner, hexColor) and pages with @odata.nextLink (api/user-list-calendars; paging guide).
    The page size parameter honoured here is $top."""
    for n in range(3):
        state.add_calendar(ADA, f"Project {n}")
    first = client.get("/v1.0/me/calendars?$top=2", headers=auth()).json or {}
    assert len(first["value"]) == 2
    assert "@odata.nextLink" in first
    second = client.get(first["@odata.nextLink"], headers=auth()).json or {}
    names = [c["name"] for c in first["value"] + second["value"]]
    assert names == ["Calendar", "Project 0", "Project 1", "Project 2"]
    assert "@odata.nextLink" not in second
    default = first["value"][0]
    assert default["isDefaultCalendar"]
    assert default["canEdit"]
    assert default["owner"]["address"] == ADA
    assert "hexColor" in default


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}])
def test_without_a_valid_token_graph_answers_401(client: Client, headers: dict[str, str]) -> None:
    """Missing or invalid bearer tokens are 401 with code InvalidAuthenticationToken in Graph's
    error shape {error: {code, message, innerError}} (learn.microsoft.com/graph/errors)."""
    response = client.get("/v1.0/me/calendars", headers=headers)
    assert response.status_code == 401
    assert error(response) == "InvalidAuthenticationToken"
    assert "request-id" in (response.json or {})["error"]["innerError"]


def test_users_are_isolated(client: Client, ticks: ManualClock) -> None:
    """One user's events, calendars and delta tokens are invisible to another: 404
    ErrorItemNotFound for the event, and the other user's sync state is not found."""
    start, end = window()
    event = create(client, timed(start + timedelta(days=2, hours=9)))
    assert client.get(f"/v1.0/me/events/{event['id']}", headers=auth("token-bob")).status_code == 404
    assert client.delete(f"/v1.0/me/events/{event['id']}", headers=auth("token-bob")).status_code == 404
    bob_items, _, _ = sync(client, delta_url(client, start, end, "token-bob"), "token-bob")
    assert bob_items == []
    _, ada_link, _ = sync(client, delta_url(client, start, end))
    stolen = client.get(ada_link, headers=auth("token-bob"))
    assert stolen.status_code == 400
    assert error(stolen) == "syncStateNotFound"
    ada_calendar = calendar_id(client)
    assert client.get(f"/v1.0/me/calendars/{ada_calendar}", headers=auth("token-bob")).status_code == 404


# ----- events: create, update, delete


def test_transaction_id_makes_a_retried_create_return_the_first_event(client: Client, state: GraphState) -> None:
    """event.transactionId: "A custom identifier specified by a client app for the server to
    avoid redundant POST operations in case of client retries" (resources/event). A second
    POST with the same transactionId returns the first event (the 201 status is a guess)."""
    start, _ = window()
    body = timed(start + timedelta(days=3, hours=10), transactionId="crm-booking-42")
    first, second = create(client, body), create(client, body)
    assert first["id"] == second["id"]
    assert second["transactionId"] == "crm-booking-42"
    assert len([e for e in state.events.values() if e.owner == ADA]) == 1
    other = create(client, timed(start + timedelta(days=3, hours=10), transactionId="crm-booking-43"))
    assert other["id"] != first["id"]


def test_patch_with_a_stale_if_match_is_412_and_writes_nothing(client: Client) -> None:
    """PATCH with If-Match of an old @odata.etag is 412 Precondition Failed (graph/errors:
    "a precondition provided in the request (such as an if-match header) does not match the
    resource's current state"); code and message ErrorIrresolvableConflict as Graph answers
    them (reported in microsoftgraph/microsoft-graph-docs-contrib#7934 and mguessan/davmail#491).
    The current etag succeeds and changes etag and changeKey."""
    start, _ = window()
    event = create(client, timed(start + timedelta(days=2, hours=9)))
    url = f"/v1.0/me/events/{event['id']}"
    moved = client.patch(url, json={"subject": "Moved"}, headers=auth(**{"If-Match": event["@odata.etag"]}))
    assert moved.status_code == 200
    current = moved.json or {}
    assert current["@odata.etag"] != event["@odata.etag"]
    assert current["changeKey"] != event["changeKey"]
    stale = client.patch(url, json={"subject": "Lost"}, headers=auth(**{"If-Match": event["@odata.etag"]}))
    assert stale.status_code == 412
    assert error(stale) == "ErrorIrresolvableConflict"
    assert (client.get(url, headers=auth()).json or {})["subject"] == "Moved"


def test_a_deleted_event_is_404_error_item_not_found(client: Client) -> None:
    """DELETE answers 204 No Content (api/event-delete); afterwards GET, PATCH and DELETE
    answer 404 ErrorItemNotFound ("The specified object was not found in the store.")."""
    start, _ = window()
    event = create(client, timed(start + timedelta(days=2, hours=9)))
    url = f"/v1.0/me/events/{event['id']}"
    assert client.delete(url, headers=auth()).status_code == 204
    for response in (
        client.get(url, headers=auth()),
        client.patch(url, json={"subject": "x"}, headers=auth()),
        client.delete(url, headers=auth()),
    ):
        assert response.status_code == 404
        assert error(response) == "ErrorItemNotFound"


def test_times_are_utc_by_default_and_in_the_preferred_zone_on_request(client: Client) -> None:
    """resources/event: start/end are returned in UTC by default; ``Prefer: outlook.timezone``
    asks for another zone (api/event-get; Microsoft Q&A 1162740 quotes the same rule).
    originalStartTimeZone keeps the Windows name the event was written in; an IANA name on
    write is stored as its CLDR Windows name."""
    start = clock.next_weekday(clock.WEDNESDAY, 15, zone="Europe/Berlin")
    event = create(client, timed(start, zone="Europe/Berlin"))
    assert event["originalStartTimeZone"] == "W. Europe Standard Time"
    url = f"/v1.0/me/events/{event['id']}"
    plain = client.get(url, headers=auth()).json or {}
    assert plain["start"] == {"dateTime": wall(start, "UTC") + ".0000000", "timeZone": "UTC"}
    utc = client.get(url, headers=auth(Prefer='outlook.timezone="UTC"')).json or {}
    assert utc["start"] == plain["start"]
    berlin = client.get(url, headers=auth(Prefer='outlook.timezone="W. Europe Standard Time"'))
    assert (berlin.json or {})["start"] == {
        "dateTime": f"{start:%Y-%m-%dT15:00:00}.0000000",
        "timeZone": "W. Europe Standard Time",
    }
    assert "outlook.timezone" in berlin.headers["Preference-Applied"]


def test_all_day_events_run_midnight_to_midnight(client: Client) -> None:
    """resources/event isAllDay: "start and end time must be set to midnight and be in the same
    time zone"; other times are refused with 400. All-day events keep their midnights even
    with Prefer UTC, as Microsoft Q&A 1382503 reports Graph doing."""
    day = clock.days_ahead(3).date()
    body = {
        "subject": "Offsite",
        "isAllDay": True,
        "start": {"dateTime": f"{day}T00:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": f"{day + timedelta(days=2)}T00:00:00", "timeZone": "W. Europe Standard Time"},
    }
    event = create(client, body)
    got = client.get(f"/v1.0/me/events/{event['id']}", headers=auth(Prefer='outlook.timezone="UTC"')).json or {}
    assert got["isAllDay"] is True
    assert got["start"]["dateTime"] == f"{day}T00:00:00.0000000"
    assert got["end"]["dateTime"] == f"{day + timedelta(days=2)}T00:00:00.0000000"
    bad = dict(body, start={"dateTime": f"{day}T09:00:00", "timeZone": "UTC"})
    response = client.post("/v1.0/me/events", json=bad, headers=auth())
    assert response.status_code == 400


def test_show_as_and_response_take_graphs_values(client: Client) -> None:
    """showAs is one of free, tentative, busy, oof, workingElsewhere, unknown and
    responseStatus.response one of none, organizer, accepted, declined, tentativelyAccepted,
    notResponded (resources/event, resources/responsestatus); other values are refused (400,
    a guess at Graph's status for an invalid enum member)."""
    start, _ = window()
    event = create(client, timed(start + timedelta(days=1, hours=9), showAs="workingElsewhere"))
    assert event["showAs"] == "workingElsewhere"
    assert event["responseStatus"]["response"] == "organizer"
    url = f"/v1.0/me/events/{event['id']}"
    declined = client.patch(url, json={"responseStatus": {"response": "declined"}, "showAs": "free"}, headers=auth())
    assert (declined.json or {})["responseStatus"]["response"] == "declined"
    assert (declined.json or {})["showAs"] == "free"
    assert client.patch(url, json={"showAs": "away"}, headers=auth()).status_code == 400
    assert client.patch(url, json={"responseStatus": {"response": "maybe"}}, headers=auth()).status_code == 400


def test_extended_properties_are_returned_only_when_expanded(client: Client) -> None:
    """singleValueExtendedProperties set on create come back with
    $expand=singleValueExtendedProperties($filter=id eq '…') and not otherwise
    (api/singlevaluelegacyextendedproperty-get, "Get resource instance expanded with a
    matching extended property")."""
    start, end = window()
    marker = [{"id": EXTENDED_ID, "value": "tenant-1:booking-7"}]
    event = create(client, timed(start + timedelta(days=1, hours=9), singleValueExtendedProperties=marker))
    url = f"/v1.0/me/events/{event['id']}"
    assert "singleValueExtendedProperties" not in (client.get(url, headers=auth()).json or {})
    expand = f"$expand=singleValueExtendedProperties($filter=id eq '{EXTENDED_ID}')"
    got = client.get(f"{url}?{expand}", headers=auth()).json or {}
    assert got["singleValueExtendedProperties"] == marker
    items, _, _ = sync(client, f"{delta_url(client, start, end)}&{expand}")
    assert items[0]["singleValueExtendedProperties"] == marker


# ----- calendarView delta


def test_first_round_pages_with_maxpagesize_and_ends_with_a_delta_link(client: Client) -> None:
    """The first delta request lists the window's events page by page, @odata.nextLink with an
    opaque $skiptoken until the last page, which has @odata.deltaLink with a $deltatoken and
    never both (delta-query-overview; Prefer: odata.maxpagesize in api/event-delta)."""
    start, end = window()
    created = {create(client, timed(start + timedelta(days=1, hours=h)))["id"] for h in range(8, 13)}
    url = delta_url(client, start, end)
    first = client.get(url, headers=auth(Prefer="odata.maxpagesize=2"))
    body = first.json or {}
    assert len(body["value"]) == 2
    assert "$skiptoken" in parse_qs(urlsplit(body["@odata.nextLink"]).query)
    items, delta_link, pages = sync(client, url, Prefer="odata.maxpagesize=2")
    assert pages == 3
    assert {i["id"] for i in items} == created
    assert "$deltatoken" in parse_qs(urlsplit(delta_link).query)


def test_a_delta_link_returns_only_changes_since(client: Client) -> None:
    """Following the deltaLink returns only what changed since that round (new and updated
    events), and an unchanged calendar gives an empty page with a new deltaLink
    (delta-query-events, "incremental sync")."""
    start, end = window()
    kept = create(client, timed(start + timedelta(days=1, hours=9)))
    edited = create(client, timed(start + timedelta(days=2, hours=9)))
    _, link, _ = sync(client, delta_url(client, start, end))
    client.patch(f"/v1.0/me/events/{edited['id']}", json={"subject": "Edited"}, headers=auth())
    added = create(client, timed(start + timedelta(days=3, hours=9)))
    items, link, _ = sync(client, link)
    assert {i["id"]: i["subject"] for i in items} == {edited["id"]: "Edited", added["id"]: "Review"}
    assert kept["id"] not in {i["id"] for i in items}
    nothing, _, pages = sync(client, link)
    assert nothing == []
    assert pages == 1


def test_deleted_and_moved_out_events_come_back_as_removed(client: Client, state: GraphState) -> None:
    """Deleted events, and events moved out of the round's window, are reported as
    {"id": …, "@removed": {"reason": "deleted"}} (delta-query-overview "resource
    representation in the delta query response"; "deleted" for both is a guess)."""
    start, end = window()
    doomed = create(client, timed(start + timedelta(days=1, hours=9)))
    leaving = create(client, timed(start + timedelta(days=2, hours=9)))
    _, link, _ = sync(client, delta_url(client, start, end))
    client.delete(f"/v1.0/me/events/{doomed['id']}", headers=auth())
    far = end + timedelta(days=30)
    state.user_move(ADA, leaving["id"], far, far + timedelta(hours=1))
    items, _, _ = sync(client, link)
    assert sorted(items, key=lambda i: str(i["id"])) == sorted(
        [
            {"@odata.type": "#microsoft.graph.event", "id": doomed["id"], "@removed": {"reason": "deleted"}},
            {"@odata.type": "#microsoft.graph.event", "id": leaving["id"], "@removed": {"reason": "deleted"}},
        ],
        key=lambda i: str(i["id"]),
    )


def test_the_window_is_fixed_for_the_round(client: Client, state: GraphState, ticks: ManualClock) -> None:
    """The start/end of the first request are encoded in the state tokens: later requests do
    not repeat them and cannot move them (api/event-delta query parameters). Time passing
    does not roll the window; an event created beyond it never shows, one moved into it does."""
    start, end = window(days=7)
    _, link, _ = sync(client, delta_url(client, start, end))
    ticks.advance(timedelta(days=3))
    beyond = create(client, timed(end + timedelta(days=1, hours=9)))
    inside_later = create(client, timed(end + timedelta(days=2, hours=9)))
    state.user_move(ADA, inside_later["id"], start + timedelta(hours=10), start + timedelta(hours=11))
    items, _, _ = sync(client, link)
    assert [i["id"] for i in items] == [inside_later["id"]]
    assert beyond["id"] not in {i["id"] for i in items}


def test_series_are_expanded_with_an_exception_and_without_a_deleted_occurrence(
    client: Client, state: GraphState
) -> None:
    """calendarView lists occurrences and exceptions of a series, not the master
    (delta-query-events); type is occurrence / exception with seriesMasterId
    (resources/event). A moved occurrence becomes an exception (same id: a guess), a deleted
    occurrence disappears (and is @removed), and a cancelled one stays with isCancelled."""
    start, end = window()
    first_day = (start + timedelta(days=1)).date()
    series = timed(
        clock.at(first_day, 9),
        recurrence={
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "startDate": first_day.isoformat(), "numberOfOccurrences": 5},
        },
    )
    master = create(client, series)
    assert master["type"] == "seriesMaster"
    items, link, _ = sync(client, delta_url(client, start, end))
    assert [i["type"] for i in items] == ["occurrence"] * 5
    assert {i["seriesMasterId"] for i in items} == {master["id"]}
    second, third, fourth = items[1]["id"], items[2]["id"], items[3]["id"]
    state.user_move(
        ADA, second, clock.at(first_day, 14) + timedelta(days=1), clock.at(first_day, 15) + timedelta(days=1)
    )
    state.user_delete(ADA, third)
    state.user_cancel(ADA, fourth)
    changes, _, _ = sync(client, link)
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {second, third, fourth}
    assert by_id[second]["type"] == "exception"
    assert by_id[second]["start"]["dateTime"].endswith("T14:00:00.0000000")
    assert by_id[third]["@removed"] == {"reason": "deleted"}
    assert by_id[fourth]["isCancelled"] is True
    assert by_id[fourth]["type"] == "exception"
    full, _, _ = sync(client, delta_url(client, start, end))
    assert [i["type"] for i in full] == ["occurrence", "exception", "exception", "occurrence"]
    assert client.get(f"/v1.0/me/events/{third}", headers=auth()).status_code == 404


def test_weekly_series_with_an_end_date(client: Client) -> None:
    """Weekly patterns list the days of daysOfWeek from range.startDate to range.endDate
    inclusive, weeks counted from firstDayOfWeek (resources/recurrencepattern,
    recurrencerange). The week starts the day before startDate here, so that day's slot in
    the first week falls before the range and is skipped."""
    start, end = window(days=28)
    first_day = (start + timedelta(days=1)).date()
    last_day = first_day + timedelta(days=13)
    eve = (first_day - timedelta(days=1)).strftime("%A").lower()
    days = [first_day.strftime("%A").lower(), eve]
    create(
        client,
        timed(
            clock.at(first_day, 9),
            recurrence={
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": days, "firstDayOfWeek": eve},
                "range": {"type": "endDate", "startDate": first_day.isoformat(), "endDate": last_day.isoformat()},
            },
        ),
    )
    items, _, _ = sync(client, delta_url(client, start, end))
    got = [date.fromisoformat(i["start"]["dateTime"][:10]) for i in items]
    expected = [first_day + timedelta(days=d) for d in (0, 6, 7, 13)]
    assert got == expected


def test_delta_is_per_calendar(client: Client, state: GraphState) -> None:
    """calendarView delta is specific to one calendar and its window; other calendars are
    tracked separately (delta-query-events). /me/calendarView/delta is the default calendar's."""
    start, end = window()
    other = state.add_calendar(ADA, "Project")
    mine = create(client, timed(start + timedelta(days=1, hours=9)))
    theirs = client.post(
        f"/v1.0/me/calendars/{other.id}/events", json=timed(start + timedelta(days=1, hours=9)), headers=auth()
    )
    assert theirs.status_code == 201
    default_items, _, _ = sync(
        client, f"/v1.0/me/calendarView/delta?startDateTime={clock.z(start)}&endDateTime={clock.z(end)}"
    )
    assert [i["id"] for i in default_items] == [mine["id"]]
    other_url = (
        f"/v1.0/me/calendars/{other.id}/calendarView/delta?startDateTime={clock.z(start)}&endDateTime={clock.z(end)}"
    )
    other_items, _, _ = sync(client, other_url)
    assert [i["id"] for i in other_items] == [(theirs.json or {})["id"]]


def test_editing_the_series_changes_every_occurrence(client: Client) -> None:
    """A PATCH of the series master applies to its occurrences, so the next delta reports each
    occurrence in the window with the new subject (resources/event: occurrences are expanded
    from the master)."""
    start, end = window()
    first_day = (start + timedelta(days=1)).date()
    master = create(
        client,
        timed(
            clock.at(first_day, 9),
            recurrence={
                "pattern": {"type": "daily", "interval": 2},
                "range": {"type": "noEnd", "startDate": first_day.isoformat()},
            },
        ),
    )
    items, link, _ = sync(client, delta_url(client, start, end))
    assert len(items) == 7
    client.patch(f"/v1.0/me/events/{master['id']}", json={"subject": "Stand-up"}, headers=auth())
    changes, _, _ = sync(client, link)
    assert sorted(c["id"] for c in changes) == sorted(i["id"] for i in items)
    assert {c["subject"] for c in changes} == {"Stand-up"}


# ----- sync resets


def test_a_token_too_old_is_410_gone_with_a_location_for_a_new_round(client: Client, ticks: ManualClock) -> None:
    """An old delta token: 410 Gone with a Location header where a new full round starts
    (delta-query-overview "synchronization reset"; Microsoft Q&A 649481 on old tokens).
    The age limit (7 days here) is a guess; Outlook's depends on a token cache."""
    start, end = window()
    event = create(client, timed(start + timedelta(days=1, hours=9)))
    _, link, _ = sync(client, delta_url(client, start, end))
    ticks.advance(timedelta(days=8))
    gone = client.get(link, headers=auth())
    assert gone.status_code == 410
    items, _, _ = sync(client, gone.headers["Location"])
    assert [i["id"] for i in items] == [event["id"]]


def test_a_forgotten_sync_state_is_sync_state_not_found(client: Client, state: GraphState) -> None:
    """A delta token the service no longer has: 400 with code syncStateNotFound (the Graph
    team's blog on delta token lifetime; that the same holds for Outlook is a guess)."""
    start, end = window()
    _, link, _ = sync(client, delta_url(client, start, end))
    assert state.forget_sync_states(ADA) > 0
    response = client.get(link, headers=auth())
    assert response.status_code == 400
    assert error(response) == "syncStateNotFound"


def test_resync_required_on_demand(client: Client, state: GraphState) -> None:
    """The third reset form, code resyncRequired (delta-query-overview; 410 as its status is a
    guess), comes from a fault rule; the rule is used up and the next request succeeds."""
    start, end = window()
    _, link, _ = sync(client, delta_url(client, start, end))
    state.faults.add(Fault("resync_required", path="/v1.0/me/calendars/"))
    response = client.get(link, headers=auth())
    assert response.status_code == 410
    assert error(response) == "resyncRequired"
    assert client.get(link, headers=auth()).status_code == 200


def test_precondition_failed_on_demand_and_faults_cleared_per_mailbox(client: Client, state: GraphState) -> None:
    """``precondition_failed`` answers a write 412 and leaves the event as it was; clearing
    one mailbox's faults leaves another's (tests that share a server clear their own)."""
    event = create(client, timed(window()[0] + timedelta(days=1, hours=9), subject="kept"))
    state.faults.add(Fault("precondition_failed", method="PATCH", email=ADA))
    state.faults.add(Fault("internal_500", email=BOB))
    refused = client.patch(f"/v1.0/me/events/{event['id']}", json={"subject": "mine"}, headers=auth())
    assert (refused.status_code, error(refused)) == (412, "PreconditionFailed")
    assert client.get(f"/v1.0/me/events/{event['id']}", headers=auth()).get_json()["subject"] == "kept"
    state.faults.add(Fault("precondition_failed", email=ADA))
    state.faults.clear(ADA)
    assert [f["email"] for f in state.faults.list()] == [BOB]
    assert client.patch(f"/v1.0/me/events/{event['id']}", json={"subject": "mine"}, headers=auth()).status_code == 200


def test_gone_fault_on_a_delta_link_points_at_the_same_window(client: Client, state: GraphState) -> None:
    """A 410 on demand carries a Location that starts a new round over the round's own window."""
    start, end = window()
    _, link, _ = sync(client, delta_url(client, start, end))
    state.faults.add(Fault("gone", method="GET"))
    response = client.get(link, headers=auth())
    assert response.status_code == 410
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query == {"startDateTime": [clock.z(start)], "endDateTime": [clock.z(end)]}


# ----- faults


def test_429_carries_retry_after_and_is_used_up(client: Client, state: GraphState) -> None:
    """Throttled requests are 429 with a Retry-After header in seconds (graph/throttling);
    the code TooManyRequests is a guess. Only the matching user and method are throttled."""
    state.faults.add(Fault("throttled_429", method="GET", email=ADA, count=2, retry_after=7))
    assert client.get("/v1.0/me", headers=auth("token-bob")).status_code == 200
    for _ in range(2):
        response = client.get("/v1.0/me", headers=auth())
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert error(response) == "TooManyRequests"
    assert client.get("/v1.0/me", headers=auth()).status_code == 200


@pytest.mark.parametrize(("kind", "status"), [("unavailable_503", 503), ("internal_500", 500)])
def test_server_errors_on_demand(client: Client, state: GraphState, kind: str, status: int) -> None:
    """5xx on demand for a path prefix (graph/errors lists 500 and 503; 503 with Retry-After)."""
    state.faults.add(Fault(kind, path="/v1.0/me/events"))
    start, _ = window()
    response = client.post("/v1.0/me/events", json=timed(start + timedelta(hours=30)), headers=auth())
    assert response.status_code == status
    assert ("Retry-After" in response.headers) is (status == 503)
    assert client.get("/v1.0/me/calendars", headers=auth()).status_code == 200


def test_a_lost_answer_applies_the_write_and_the_retry_finds_it(client: Client, state: GraphState) -> None:
    """lost_answer: the create lands, the client sees an error; its retry with the same
    transactionId returns the event that landed instead of a second one."""
    start, _ = window()
    state.faults.add(Fault("lost_answer", method="POST"))
    body = timed(start + timedelta(days=1, hours=9), transactionId="crm-lost-1")
    lost = client.post("/v1.0/me/events", json=body, headers=auth())
    assert lost.status_code == 504
    assert len([e for e in state.events.values() if e.owner == ADA]) == 1
    retried = client.post("/v1.0/me/events", json=body, headers=auth())
    assert retried.status_code == 201
    assert len([e for e in state.events.values() if e.owner == ADA]) == 1


def test_control_routes_act_as_the_outlook_user_and_queue_faults(client: Client, state: GraphState) -> None:
    """The emulator's own routes under /_microsoft/graph/ (not Graph's): add a mailbox, create
    and move an event as the user, queue a fault, and refuse callers off loopback."""
    assert (
        client.post("/_microsoft/graph/users", json={"email": "cy@contoso.test"}, environ_base=LOOPBACK).status_code
        == 201
    )
    start, _ = window()
    made = client.post(
        f"/_microsoft/graph/users/{ADA}/events", json={"event": timed(start + timedelta(days=1))}, environ_base=LOOPBACK
    )
    assert made.status_code == 201
    event_id = (made.json or {})["id"]
    later = start + timedelta(days=2)
    moved = client.patch(
        f"/_microsoft/graph/users/{ADA}/events/{event_id}",
        json={
            "start": {"dateTime": wall(later), "timeZone": "UTC"},
            "end": {"dateTime": wall(later + timedelta(hours=1)), "timeZone": "UTC"},
        },
        environ_base=LOOPBACK,
    )
    assert moved.status_code == 200
    assert (client.get(f"/v1.0/me/events/{event_id}", headers=auth()).json or {})["start"]["dateTime"].startswith(
        wall(later)
    )
    queued = client.post(
        "/_microsoft/graph/faults", json={"kind": "throttled_429", "path": "/v1.0/me"}, environ_base=LOOPBACK
    )
    assert queued.status_code == 201
    assert state.faults.list()[0]["kind"] == "throttled_429"
    assert client.post("/_microsoft/graph/faults", json={"kind": "nonsense"}, environ_base=LOOPBACK).status_code == 400
    remote = client.get("/_microsoft/graph/health", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert remote.status_code == 403


def test_calls_count_each_mailboxs_graph_requests(client: Client) -> None:
    """The benchmarks' request counter (bench/graph.py): Graph requests per signed-in mailbox,
    a failed one (a fault) too, never the control routes; DELETE starts again."""
    counted = "/_microsoft/graph/calls"
    client.delete(counted, environ_base=LOOPBACK)
    client.get("/v1.0/me", headers=auth())
    client.get("/v1.0/me/calendars", headers=auth())
    client.get("/v1.0/me", headers=auth("token-bob"))
    client.post("/_microsoft/graph/users", json={"email": "cy@contoso.test"}, environ_base=LOOPBACK)

    assert client.get(counted, query_string={"email": ADA}, environ_base=LOOPBACK).get_json() == {"count": 2}
    assert client.get(counted, environ_base=LOOPBACK).get_json() == {"count": 3}
    assert client.delete(counted, environ_base=LOOPBACK).get_json() == {"count": 0}
