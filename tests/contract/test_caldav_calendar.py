"""What only the CalDAV adapter does, against Radicale (a real CalDAV server): discovery,
the sync protocol's edges (invalid token, 507 truncation, the ctag fallback), the iCalendar
rules (series, all-day, no DTEND, transparency, time zones) and the writes' idempotency.
Server behaviour Radicale lacks (lost answers, truncation, iCloud's missing ETag) comes from a
thin WSGI layer put in front of it for one test (``caldav_server.front``)."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest

from crmsync.domain import ExternalEvent
from crmsync.ports.calendar import EventDraft, resource_of
from crmsync.ports.errors import (
    AuthRevoked,
    CursorInvalid,
    PreconditionFailed,
    ProviderError,
    ProviderNotFound,
    RateLimited,
)
from crmsync.providers.caldav.calendar import CalDavCalendar
from crmsync.providers.caldav.client import DavClient
from devstack.caldav import CalDavServer
from tests.support import clock
from tests.support.caldav_user import CalDavUser

pytestmark = pytest.mark.integration

TENANT = "tenant-caldav"
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@pytest.fixture
def user(caldav_server: CalDavServer) -> CalDavUser:
    return CalDavUser(caldav_server)


@pytest.fixture
def port(caldav_server: CalDavServer, user: CalDavUser) -> CalDavCalendar:
    return CalDavCalendar(DavClient(caldav_server.base_url, user.email, user.password), tenant_id=TENANT)


@pytest.fixture
def front(caldav_server: CalDavServer) -> Iterator[Callable[[Callable[[Wsgi], Wsgi]], list[tuple[str, str]]]]:
    """``front(layer)`` puts ``layer(radicale)`` in front of Radicale for this test and
    returns the requests seen (method, path); Radicale alone answers again afterwards."""

    before = caldav_server.front  # the fault layer, which other suites rely on

    def install(layer: Callable[[Wsgi], Wsgi]) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        inner = layer(caldav_server.radicale)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            seen.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
            return inner(environ, start_response)

        caldav_server.front = app
        return seen

    yield install
    caldav_server.front = before


def listing(port: CalDavCalendar, calendar_id: str, *, cursor: str | None = None) -> tuple[list[ExternalEvent], str]:
    pages = list(port.event_pages(calendar_id, cursor=cursor, since=None))
    assert pages[-1].cursor
    return [e for page in pages for e in page.events], pages[-1].cursor


def live(events: list[ExternalEvent]) -> dict[str, ExternalEvent]:
    return {e.event_id: e for e in events if not e.cancelled}


def draft(**changes: Any) -> EventDraft:
    start = clock.days_ahead(3, 10)
    values: dict[str, Any] = {
        "key": uuid.uuid4().hex,
        "tenant_id": TENANT,
        "revision": 1,
        "title": "Site visit",
        "start": start,
        "end": start + timedelta(hours=1),
        "time_zone": "Europe/Paris",
    }
    values.update(changes)
    return EventDraft(**values)


def ics(*events: icalendar.Event) -> str:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//tests//EN")
    calendar.add("version", "2.0")
    for event in events:
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return str(calendar.to_ical().decode())


def vevent(uid: str, summary: str, **props: Any) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", clock.now())
    event.add("summary", summary)
    for name, value in props.items():
        event.add(name.replace("_", "-"), value)
    return event


def _collect(app: Wsgi, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, headers

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


# ---------------------------------------------------------------------- discovery


def test_discovery_follows_well_known_to_another_host(
    caldav_server: CalDavServer, user: CalDavUser, front: Callable[..., list[tuple[str, str]]]
) -> None:
    """iCloud answers from partition hosts: every href is resolved against the URL that
    returned it, and the credentials go along to the other host."""
    port_number = urlsplit(caldav_server.base_url).port
    other = f"http://localhost:{port_number}"

    def redirect(radicale: Wsgi) -> Wsgi:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ["PATH_INFO"] == "/.well-known/caldav" and environ["HTTP_HOST"].startswith("127.0.0.1"):
                start_response("301 Moved Permanently", [("Location", f"{other}/")])
                return [b""]
            return radicale(environ, start_response)

        return app

    seen = front(redirect)
    port = CalDavCalendar(DavClient(caldav_server.base_url, user.email, user.password), tenant_id=TENANT)

    found = port.discover()
    calendars = port.list_calendars()

    assert seen[0] == ("PROPFIND", "/.well-known/caldav")
    assert found.principal_url.startswith(other + "/")
    assert found.home_url.startswith(other + "/")
    assert [c.calendar_id for c in calendars] == [other + urlsplit(user.calendar_url).path]
    assert calendars[0].primary
    assert calendars[0].access_role == "owner"


def test_a_wrong_password_is_auth_revoked_and_never_logged(
    caldav_server: CalDavServer, user: CalDavUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + uuid.uuid4().hex

    with pytest.raises(AuthRevoked) as refused:
        DavClient(caldav_server.base_url, user.email, wrong).discover()
    right = CalDavCalendar(DavClient(caldav_server.base_url, user.email, user.password), tenant_id=TENANT)
    right.list_calendars()
    right.create_event(user.calendar_url, draft())

    assert wrong not in str(refused.value)
    assert wrong not in caplog.text
    assert user.password not in caplog.text


def test_a_password_revoked_later_is_auth_revoked(
    caldav_server: CalDavServer, user: CalDavUser, port: CalDavCalendar
) -> None:
    _, cursor = listing(port, user.calendar_url)
    caldav_server.remove_user(user.email)

    with pytest.raises(AuthRevoked):
        listing(port, user.calendar_url, cursor=cursor)


# ---------------------------------------------------------------------- sync protocol


def test_an_unknown_sync_token_is_cursor_invalid(caldav_server: CalDavServer, user: CalDavUser) -> None:
    client = DavClient(caldav_server.base_url, user.email, user.password)

    with pytest.raises(CursorInvalid):
        client.sync_collection(user.calendar_url, "http://radicale.org/ns/sync/" + "0" * 64)


def test_a_no_op_poll_is_one_request(
    user: CalDavUser, port: CalDavCalendar, front: Callable[..., list[tuple[str, str]]]
) -> None:
    start = clock.days_ahead(2, 9)
    user.add("Standing", start, start + timedelta(hours=1))
    _, cursor = listing(port, user.calendar_url)
    seen = front(lambda radicale: radicale)

    events, again = listing(port, user.calendar_url, cursor=cursor)

    assert events == []
    assert [method for method, _ in seen] == ["REPORT"]
    # The cursor still leads to the same (empty) set of changes.
    assert listing(port, user.calendar_url, cursor=again)[0] == []


def test_a_truncated_sync_continues_from_the_returned_token(
    caldav_server: CalDavServer, user: CalDavUser, port: CalDavCalendar, front: Callable[..., list[tuple[str, str]]]
) -> None:
    """RFC 6578 §3.6: a 507 on the request-URI says "more to come from this token"."""
    start = clock.days_ahead(2, 9)
    first = user.add("First", start, start + timedelta(hours=1))
    client = DavClient(caldav_server.base_url, user.email, user.password)
    early_token = client.sync_collection(user.calendar_url, "").token
    later = {user.add(f"Later {n}", start + timedelta(days=n), start + timedelta(days=n, hours=1)) for n in (1, 2)}
    calendar_path = urlsplit(user.calendar_url).path

    def truncate_once(radicale: Wsgi) -> Wsgi:
        state = {"truncated": False}

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            if environ["REQUEST_METHOD"] != "REPORT" or b"sync-collection" not in body or state["truncated"]:
                return radicale(environ, start_response)
            state["truncated"] = True
            # Only the first member, the collection marked 507, and the token of that state.
            xml = (
                '<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">'
                f'<d:response><d:href>{calendar_path}{first}</d:href><d:propstat><d:prop><d:getetag>"x"</d:getetag>'
                "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
                f"<d:response><d:href>{calendar_path}</d:href>"
                "<d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>"
                f"<d:sync-token>{early_token}</d:sync-token></d:multistatus>"
            ).encode()
            start_response("207 Multi-Status", [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))])
            return [xml]

        return app

    seen = front(truncate_once)

    events, _ = listing(port, user.calendar_url)

    assert set(live(events)) == {first} | later
    assert [m for m, _ in seen].count("REPORT") >= 3  # truncated, continued, multiget


def test_without_sync_collection_a_deletion_no_listing_saw_is_not_reported(
    user: CalDavUser, port: CalDavCalendar, front: Callable[..., list[tuple[str, str]]]
) -> None:
    """The ctag fallback diffs the members' etags against the last listing's: an event made
    after it and deleted before the next is in neither, so its deletion is never reported —
    why the adapter says ``reports_unseen_deletions = False`` (the sync then asks for the
    events our pushes created that no listing has shown)."""

    def no_sync_collection(radicale: Wsgi) -> Wsgi:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            if environ["REQUEST_METHOD"] == "REPORT" and b"sync-collection" in body:
                start_response("501 Not Implemented", [("Content-Length", "0")])
                return [b""]
            return radicale(environ, start_response)

        return app

    front(no_sync_collection)
    base = clock.days_ahead(4, 9)
    user.add("Untouched", base, base + timedelta(hours=1))
    _, cursor = listing(port, user.calendar_url)
    name = user.add("Soon gone", base + timedelta(hours=2), base + timedelta(hours=3))
    user.delete(name)

    changes, _ = listing(port, user.calendar_url, cursor=cursor)

    assert name not in {e.event_id for e in changes}
    assert not port.reports_unseen_deletions


def test_without_sync_collection_the_ctag_and_etags_tell_the_changes(
    user: CalDavUser, port: CalDavCalendar, front: Callable[..., list[tuple[str, str]]]
) -> None:
    """A server without RFC 6578 (REPORT sync-collection refused): a ctag per calendar and a
    map of member etags, diffed; an unchanged ctag costs one request."""

    def no_sync_collection(radicale: Wsgi) -> Wsgi:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            if environ["REQUEST_METHOD"] == "REPORT" and b"sync-collection" in body:
                start_response("501 Not Implemented", [("Content-Length", "0")])
                return [b""]
            return radicale(environ, start_response)

        return app

    seen = front(no_sync_collection)
    base = clock.days_ahead(4, 9)
    kept = user.add("Untouched", base, base + timedelta(hours=1))
    moved = user.add("Moves", base + timedelta(hours=2), base + timedelta(hours=3))
    deleted = user.add("Goes away", base + timedelta(hours=4), base + timedelta(hours=5))

    events, cursor = listing(port, user.calendar_url)
    assert set(live(events)) == {kept, moved, deleted}
    seen.clear()
    assert listing(port, user.calendar_url, cursor=cursor)[0] == []
    assert [m for m, _ in seen] == ["PROPFIND"]  # the cursor remembers: only the ctag is asked

    added = user.add("New", base + timedelta(days=1), base + timedelta(days=1, hours=1))
    user.move(moved, base + timedelta(days=2), base + timedelta(days=2, hours=1))
    user.delete(deleted)
    changes, _ = listing(port, user.calendar_url, cursor=cursor)

    by_id = {e.event_id: e for e in changes}
    assert set(by_id) == {added, moved, deleted}
    assert by_id[deleted].cancelled
    assert by_id[moved].start == base + timedelta(days=2)


# ---------------------------------------------------------------------- iCalendar


def test_a_series_with_a_moved_instance_an_exdate_a_cancelled_one_and_an_rdate(
    user: CalDavUser, port: CalDavCalendar
) -> None:
    paris = ZoneInfo("Europe/Paris")
    first = clock.days_ahead(2, 9, zone=paris)
    series = vevent("series-1", "Weekly", dtstart=first, dtend=first + timedelta(hours=1))
    series.add("rrule", {"FREQ": "WEEKLY", "COUNT": 4})
    series.add("exdate", first + timedelta(weeks=2))
    moved = vevent(
        "series-1",
        "Weekly (moved)",
        dtstart=first + timedelta(weeks=1, hours=3),
        dtend=first + timedelta(weeks=1, hours=4),
    )
    moved.add("recurrence-id", first + timedelta(weeks=1))
    series.add("rdate", first + timedelta(weeks=5, days=1))  # one extra date
    called_off = vevent(
        "series-1", "Weekly", dtstart=first + timedelta(weeks=3), dtend=first + timedelta(weeks=3, hours=1)
    )
    called_off.add("recurrence-id", first + timedelta(weeks=3))
    called_off.add("status", "CANCELLED")
    user.put("series-1.ics", ics(series, moved, called_off))

    listed = {e.event_id: e for e in listing(port, user.calendar_url)[0]}
    events = live(list(listed.values()))

    def instance(week: int, days: int = 0) -> str:
        original = (first + timedelta(weeks=week, days=days)).astimezone(UTC)
        return f"series-1.ics@{original:%Y%m%dT%H%M%SZ}"

    assert set(events) == {instance(0), instance(1), instance(5, 1)}
    assert listed[instance(3)].cancelled
    assert {resource_of(i) for i in listed} == {"series-1.ics"}
    assert events[instance(1)].summary == "Weekly (moved)"
    assert events[instance(1)].start == (first + timedelta(weeks=1, hours=3)).astimezone(UTC)
    # Wall time 09:00 in Paris on the RDATE too, whatever the UTC offset that week.
    assert events[instance(5, 1)].start == (first + timedelta(weeks=5, days=1)).astimezone(UTC)


def test_a_vtimezone_event_is_read_at_its_instant_across_dst(user: CalDavUser, port: CalDavCalendar) -> None:
    """A year of weeks always crosses New York's DST changes: 09:00 local is two UTC hours."""
    new_york = ZoneInfo("America/New_York")
    first = clock.days_ahead(2, 9, zone=new_york)
    series = vevent("ny", "Stand-up", dtstart=first, dtend=first + timedelta(minutes=15))
    series.add("rrule", {"FREQ": "WEEKLY", "COUNT": 53})
    user.put("ny.ics", ics(series))

    events = list(live(listing(port, user.calendar_url)[0]).values())

    assert len(events) == 53
    local = {e.start.astimezone(new_york).strftime("%H:%M") for e in events if e.start}
    assert local == {"09:00"}
    assert len({e.start.astimezone(new_york).utcoffset() for e in events if e.start}) == 2
    assert {e.time_zone for e in events} == {"America/New_York"}


def test_all_day_events_have_dates(user: CalDavUser, port: CalDavCalendar) -> None:
    day = clock.days_ahead(3).date()
    user.put("holiday.ics", ics(vevent("holiday", "Holiday", dtstart=day, dtend=day + timedelta(days=2))))

    [event] = live(listing(port, user.calendar_url)[0]).values()

    assert (event.start_date, event.end_date) == (day.isoformat(), (day + timedelta(days=2)).isoformat())
    assert event.start is None
    assert event.end is None
    assert event.all_day


def test_events_without_dtend(user: CalDavUser, port: CalDavCalendar) -> None:
    start = clock.days_ahead(3, 14)
    day: date = clock.days_ahead(4).date()
    user.put("duration.ics", ics(vevent("duration", "Call", dtstart=start, duration=timedelta(minutes=45))))
    user.put("day.ics", ics(vevent("day", "Reminder day", dtstart=day)))
    user.put("point.ics", ics(vevent("point", "Deadline", dtstart=start)))

    events = live(listing(port, user.calendar_url)[0])

    assert (events["duration.ics"].start, events["duration.ics"].end) == (start, start + timedelta(minutes=45))
    assert (events["day.ics"].start_date, events["day.ics"].end_date) == (
        day.isoformat(),
        (day + timedelta(days=1)).isoformat(),
    )
    assert events["point.ics"].start == events["point.ics"].end == start


def test_transparency_cancellation_and_my_declined_answer(user: CalDavUser, port: CalDavCalendar) -> None:
    start = clock.days_ahead(3, 11)
    end = start + timedelta(hours=1)
    user.put("free.ics", ics(vevent("free", "Free", dtstart=start, dtend=end, transp="TRANSPARENT")))
    user.put("busy.ics", ics(vevent("busy", "Busy", dtstart=start, dtend=end, transp="OPAQUE")))
    user.put("off.ics", ics(vevent("off", "Called off", dtstart=start, dtend=end, status="CANCELLED")))
    invited = vevent("invite", "Invite", dtstart=start, dtend=end)
    invited.add("attendee", f"mailto:{user.email}", parameters={"PARTSTAT": "DECLINED"})
    invited.add("attendee", "mailto:someone@example.com", parameters={"PARTSTAT": "ACCEPTED"})
    user.put("invite.ics", ics(invited))

    events = {e.event_id: e for e in listing(port, user.calendar_url)[0]}

    assert events["free.ics"].transparent
    assert not events["busy.ics"].transparent
    assert events["off.ics"].cancelled
    assert not events["busy.ics"].cancelled
    assert events["invite.ics"].declined
    assert not events["busy.ics"].declined


def test_floating_times_are_read_in_the_calendar_time_zone(user: CalDavUser, port: CalDavCalendar) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    wall = clock.days_ahead(3, 10, zone=tokyo)
    zone = icalendar.Calendar()
    zone.add("prodid", "-//tests//EN")
    zone.add("version", "2.0")
    zone.add_component(icalendar.Timezone.from_tzinfo(tokyo))
    body = (
        '<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        "<d:set><d:prop><c:calendar-timezone><![CDATA["
        + zone.to_ical().decode()
        + "]]></c:calendar-timezone></d:prop></d:set></d:propertyupdate>"
    )
    user.session.request("PROPPATCH", user.calendar_url, data=body.encode(), timeout=10).raise_for_status()
    floating = wall.replace(tzinfo=None)
    user.put("floating.ics", ics(vevent("floating", "Local", dtstart=floating, dtend=floating + timedelta(hours=1))))

    [event] = live(listing(port, user.calendar_url)[0]).values()
    [calendar] = port.list_calendars()

    assert event.start == wall.astimezone(UTC)
    assert calendar.time_zone == "Asia/Tokyo"


# ---------------------------------------------------------------------- writes


def test_a_create_whose_answer_was_lost_makes_one_resource(
    user: CalDavUser, port: CalDavCalendar, front: Callable[..., list[tuple[str, str]]]
) -> None:
    def lose_put_answers(radicale: Wsgi) -> Wsgi:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ["REQUEST_METHOD"] != "PUT":
                return radicale(environ, start_response)
            status, _, _ = _collect(radicale, environ)  # Radicale stores it...
            assert status.startswith("201")
            start_response("502 Bad Gateway", [("Content-Length", "0")])  # ...the answer is lost
            return [b""]

        return app

    wanted = draft()
    front(lose_put_answers)
    with pytest.raises(ProviderError) as lost:
        port.create_event(user.calendar_url, wanted)
    assert lost.value.retryable
    front(lambda radicale: radicale)

    again = port.create_event(user.calendar_url, wanted)

    events = live(listing(port, user.calendar_url)[0])
    assert list(events) == [again.event_id]
    assert events[again.event_id].crm_appointment_id == wanted.key
    assert events[again.event_id].etag == again.etag


def test_a_put_answer_without_etag_is_completed(
    user: CalDavUser, port: CalDavCalendar, front: Callable[..., list[tuple[str, str]]]
) -> None:
    """iCloud sometimes answers a PUT without ETag: the adapter asks for it."""

    def drop_etag(radicale: Wsgi) -> Wsgi:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            status, headers, body = _collect(radicale, environ)
            if environ["REQUEST_METHOD"] == "PUT":
                headers = [(k, v) for k, v in headers if k.lower() != "etag"]
            start_response(status, headers)
            return [body]

        return app

    seen = front(drop_etag)

    written = port.create_event(user.calendar_url, draft())

    assert written.etag
    assert ("PROPFIND", unquote(urlsplit(user.calendar_url).path) + written.event_id) in seen
    assert live(listing(port, user.calendar_url)[0])[written.event_id].etag == written.etag


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        ("429 Too Many Requests", [("Retry-After", "7")], RateLimited, 7.0),
        ("503 Service Unavailable", [("Retry-After", "3")], RateLimited, 3.0),
        ("503 Service Unavailable", [], ProviderError, None),
        ("500 Internal Server Error", [], ProviderError, None),
    ],
)
def test_throttling_and_server_errors_are_retryable(
    user: CalDavUser,
    port: CalDavCalendar,
    front: Callable[..., list[tuple[str, str]]],
    status: str,
    headers: list[tuple[str, str]],
    expected: type[ProviderError],
    retry_after: float | None,
) -> None:
    def refuse(radicale: Wsgi) -> Wsgi:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            start_response(status, [*headers, ("Content-Length", "0")])
            return [b""]

        return app

    front(refuse)

    with pytest.raises(expected) as refused:
        port.create_event(user.calendar_url, draft())

    assert refused.value.retryable
    assert getattr(refused.value, "retry_after", None) == retry_after


# ---------------------------------------------------------------------- one occurrence


def _weekly(user: CalDavUser, uid: str) -> tuple[Any, Callable[[int], str]]:
    """A weekly series of 4 at 09:00 Paris time, and each week's instance id."""
    paris = ZoneInfo("Europe/Paris")
    first = clock.days_ahead(2, 9, zone=paris)
    series = vevent(uid, "Weekly", dtstart=first, dtend=first + timedelta(hours=1))
    series.add("rrule", {"FREQ": "WEEKLY", "COUNT": 4})
    user.put(f"{uid}.ics", ics(series))

    def instance(week: int) -> str:
        return f"{uid}.ics@{(first + timedelta(weeks=week)).astimezone(UTC):%Y%m%dT%H%M%SZ}"

    return first, instance


def test_moving_one_occurrence_writes_an_override_and_keeps_the_others(user: CalDavUser, port: CalDavCalendar) -> None:
    first, instance = _weekly(user, "occ-move")
    before = live(listing(port, user.calendar_url)[0])
    new_start = first + timedelta(weeks=1, days=1, hours=5)
    written = port.update_event(
        user.calendar_url, instance(1), draft(start=new_start, end=new_start + timedelta(hours=1), title="Moved")
    )

    events = live(listing(port, user.calendar_url)[0])
    assert set(events) == {instance(w) for w in range(4)}
    assert events[instance(1)].start == new_start.astimezone(UTC)
    assert events[instance(1)].summary == "Moved"
    assert events[instance(1)].etag == written.etag
    assert written.event_id == instance(1)
    for week in (0, 2, 3):
        assert events[instance(week)].start == before[instance(week)].start
        assert events[instance(week)].summary == "Weekly"
    stored = user.get("occ-move.ics")
    assert {str(e["UID"]) for e in stored.walk("VEVENT")} == {"occ-move"}
    assert any(tz["TZID"] == "Europe/Paris" for tz in stored.walk("VTIMEZONE"))
    # A second move of the same occurrence replaces its override.
    again = new_start + timedelta(hours=1)
    port.update_event(user.calendar_url, instance(1), draft(start=again, end=again + timedelta(hours=1)))
    assert len([e for e in user.get("occ-move.ics").walk("VEVENT") if e.get("RECURRENCE-ID")]) == 1
    assert live(listing(port, user.calendar_url)[0])[instance(1)].start == again.astimezone(UTC)


def test_a_moved_occurrence_keeps_what_the_series_says_beyond_time_and_title(
    user: CalDavUser, port: CalDavCalendar
) -> None:
    """The override is the same meeting at another time: organizer, attendees and their
    answers, alarms, categories, privacy, status and location stay (a bare override would
    drop the invitees and the reminder of that one occurrence)."""
    paris = ZoneInfo("Europe/Paris")
    first = clock.days_ahead(2, 9, zone=paris)
    series = vevent("occ-keep", "Team sync", dtstart=first, dtend=first + timedelta(hours=1))
    series.add("rrule", {"FREQ": "WEEKLY", "COUNT": 4})
    series.add("organizer", "mailto:boss@example.com", parameters={"CN": "Boss"})
    series.add("attendee", "mailto:ann@example.com", parameters={"PARTSTAT": "ACCEPTED", "CN": "Ann"})
    series.add("attendee", "mailto:bob@example.com", parameters={"PARTSTAT": "TENTATIVE"})
    series.add("categories", ["Work", "Team"])
    series.add("class", "PRIVATE")
    series.add("status", "TENTATIVE")
    series.add("location", "Room 4")
    series.add("sequence", 3)
    series.add("x-apple-travel-advisory-behavior", "AUTOMATIC")
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", "Reminder")
    alarm.add("trigger", timedelta(minutes=-15))
    series.add_component(alarm)
    user.put("occ-keep.ics", ics(series))
    instance = f"occ-keep.ics@{(first + timedelta(weeks=1)).astimezone(UTC):%Y%m%dT%H%M%SZ}"
    moved = first + timedelta(weeks=1, hours=3)

    port.update_event(
        user.calendar_url,
        instance,
        draft(
            start=moved,
            end=moved + timedelta(hours=1),
            title="Team sync (moved)",
            location=None,
            attendees=("bob@example.com", "cem@example.com"),
        ),
    )

    [override] = [e for e in user.get("occ-keep.ics").walk("VEVENT") if e.get("RECURRENCE-ID")]
    assert str(override["SUMMARY"]) == "Team sync (moved)"
    assert override.decoded("DTSTART") == moved
    assert str(override["ORGANIZER"]) == "mailto:boss@example.com"
    answers = {str(a): a.params.get("PARTSTAT") for a in override["ATTENDEE"]}
    assert answers == {
        "mailto:ann@example.com": "ACCEPTED",
        "mailto:bob@example.com": "TENTATIVE",
        "mailto:cem@example.com": None,
    }
    assert set(override["CATEGORIES"].cats) == {"Work", "Team"}
    assert str(override["CLASS"]) == "PRIVATE"
    assert str(override["STATUS"]) == "TENTATIVE"
    assert str(override["LOCATION"]) == "Room 4"
    assert str(override["X-APPLE-TRAVEL-ADVISORY-BEHAVIOR"]) == "AUTOMATIC"
    assert int(override["SEQUENCE"]) > 3
    assert [str(a["ACTION"]) for a in override.walk("VALARM")] == ["DISPLAY"]
    assert override.get("RRULE") is None

    # Moved again: the earlier override is the base, so what the user set on that one
    # occurrence alone stays too.
    stored = user.get("occ-keep.ics")
    for component in stored.walk("VEVENT"):
        if component.get("RECURRENCE-ID"):
            component["LOCATION"] = icalendar.vText("Room 9 (this week only)")
    user.put("occ-keep.ics", stored.to_ical().decode())
    again = moved + timedelta(hours=1)
    listed = live(listing(port, user.calendar_url)[0])
    port.update_event(
        user.calendar_url,
        instance,
        draft(start=again, end=again + timedelta(hours=1), location=None),
        etag=listed[instance].etag,
    )
    [override] = [e for e in user.get("occ-keep.ics").walk("VEVENT") if e.get("RECURRENCE-ID")]
    assert str(override["LOCATION"]) == "Room 9 (this week only)"
    assert override.decoded("DTSTART") == again
    assert str(override["ORGANIZER"]) == "mailto:boss@example.com"


def test_cancelling_one_occurrence_adds_an_exdate(user: CalDavUser, port: CalDavCalendar) -> None:
    _first, instance = _weekly(user, "occ-cancel")
    port.delete_event(user.calendar_url, instance(2))

    events = live(listing(port, user.calendar_url)[0])
    assert set(events) == {instance(0), instance(1), instance(3)}
    master = next(e for e in user.get("occ-cancel.ics").walk("VEVENT") if not e.get("RECURRENCE-ID"))
    assert master.get("EXDATE") is not None
    with pytest.raises(ProviderNotFound):
        port.delete_event(user.calendar_url, instance(2))


def test_a_series_changed_between_get_and_put_is_merged_again(
    caldav_server: CalDavServer,
    user: CalDavUser,
    port: CalDavCalendar,
    front: Callable[[Callable[[Wsgi], Wsgi]], list[tuple[str, str]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, instance = _weekly(user, "occ-race")
    other = first + timedelta(weeks=3, hours=2)

    def someone_else_moves_week_3(inner: Wsgi) -> Wsgi:
        done: list[bool] = []

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ["REQUEST_METHOD"] == "PUT" and not done:
                done.append(True)  # their edit lands just before our first PUT
                their_app = DavClient(caldav_server.base_url, user.email, user.password)
                CalDavCalendar(their_app, tenant_id="someone-else").update_event(
                    user.calendar_url, instance(3), draft(start=other, end=other + timedelta(hours=1), title="Theirs")
                )
            return inner(environ, start_response)

        return app

    seen = front(someone_else_moves_week_3)
    moved = first + timedelta(weeks=1, hours=4)
    with caplog.at_level(logging.DEBUG):
        port.update_event(user.calendar_url, instance(1), draft(start=moved, end=moved + timedelta(hours=1)))
    assert "merging again" in caplog.text
    assert user.password not in caplog.text

    events = live(listing(port, user.calendar_url)[0])
    assert events[instance(1)].start == moved.astimezone(UTC)
    assert events[instance(3)].start == other.astimezone(UTC)
    assert events[instance(3)].summary == "Theirs"
    assert events[instance(0)].start == first.astimezone(UTC)
    assert [m for m, _ in seen].count("PUT") == 3  # theirs, our refused one, our merged retry


def test_an_occurrence_outside_the_series_or_an_unknown_series_is_not_found(
    user: CalDavUser, port: CalDavCalendar
) -> None:
    first, instance = _weekly(user, "occ-outside")
    off_rule = f"occ-outside.ics@{(first + timedelta(days=1)).astimezone(UTC):%Y%m%dT%H%M%SZ}"
    after_end = instance(4)
    for event_id in (off_rule, after_end, "no-such-series.ics@" + instance(1).rsplit("@", 1)[1]):
        with pytest.raises(ProviderNotFound):
            port.update_event(user.calendar_url, event_id, draft())
    assert len(list(user.get("occ-outside.ics").walk("VEVENT"))) == 1


def test_occurrences_of_all_day_and_floating_series_are_refused_for_good(
    user: CalDavUser, port: CalDavCalendar
) -> None:
    day = clock.days_ahead(2, 0).date()
    all_day = vevent("occ-day", "Weekly day", dtstart=day, dtend=day + timedelta(days=1))
    all_day.add("rrule", {"FREQ": "WEEKLY", "COUNT": 3})
    user.put("occ-day.ics", ics(all_day))
    floating_start = clock.days_ahead(2, 9).replace(tzinfo=None)
    floating = vevent("occ-float", "Weekly floating", dtstart=floating_start, dtend=floating_start + timedelta(hours=1))
    floating.add("rrule", {"FREQ": "WEEKLY", "COUNT": 3})
    user.put("occ-float.ics", ics(floating))
    before = {name: user.get(name).to_ical() for name in ("occ-day.ics", "occ-float.ics")}

    for event_id in (f"occ-day.ics@{day:%Y%m%d}", f"occ-float.ics@{floating_start:%Y%m%dT%H%M%S}Z"):
        with pytest.raises(ProviderError) as refused:
            port.update_event(user.calendar_url, event_id, draft())
        assert type(refused.value) is ProviderError  # not ProviderNotFound: the CRM must not recreate it
        assert not refused.value.retryable
        with pytest.raises(ProviderError) as refused:
            port.delete_event(user.calendar_url, event_id)
        assert type(refused.value) is ProviderError  # not ProviderNotFound: the CRM must not recreate it
        assert not refused.value.retryable
    assert {name: user.get(name).to_ical() for name in before} == before


def test_an_occurrence_written_with_its_listed_etag_is_ours_and_a_stale_etag_is_refused(
    user: CalDavUser, port: CalDavCalendar
) -> None:
    first, instance = _weekly(user, "occ-etag")
    listed = live(listing(port, user.calendar_url)[0])
    etag = listed[instance(0)].etag
    assert etag is not None
    moved = first + timedelta(hours=3)
    ours = draft(start=moved, end=moved + timedelta(hours=1))
    written = port.update_event(user.calendar_url, instance(0), ours, etag=etag)

    events = live(listing(port, user.calendar_url)[0])
    assert events[instance(0)].crm_appointment_id == ours.key
    assert events[instance(1)].crm_appointment_id is None  # the series itself stays the user's
    assert {e.etag for e in events.values()} == {written.etag}  # one resource, one etag
    with pytest.raises(PreconditionFailed):
        port.update_event(user.calendar_url, instance(1), draft(), etag=etag)
    assert live(listing(port, user.calendar_url)[0])[instance(1)].start == events[instance(1)].start


def test_a_create_refused_412_with_nothing_there_creates_it(
    caldav_server: CalDavServer, user: CalDavUser, port: CalDavCalendar
) -> None:
    """A create's ``If-None-Match: *`` refused (412) although nothing is at its name (a
    proxy's refusal, or the resource deleted meanwhile): the adapter looks, finds nothing,
    and creates it, still only if absent — not a failure that leaves the booking out."""
    from devstack.caldav.faults import Fault

    caldav_server.layer.add_fault(Fault("precondition_412", email=user.email, method="PUT"))
    wanted = draft()

    written = port.create_event(user.calendar_url, wanted)

    events = live(listing(port, user.calendar_url)[0])
    assert list(events) == [written.event_id]
    assert events[written.event_id].crm_appointment_id == wanted.key


# ---------------------------------------------------------------------- iCloud's eventual consistency (J17)


def test_members_a_multiget_leaves_out_are_fetched_alone(
    caldav_server: CalDavServer, user: CalDavUser, port: CalDavCalendar
) -> None:
    """docs/PITFALLS.md J17: a member just written may be missing from a multiget though it
    exists. Each one the answer lacks is read with a GET, so no change is skipped."""
    from devstack.caldav.faults import Fault

    base = clock.days_ahead(2, 9)
    made = {
        user.add(f"Meeting {n}", base + timedelta(hours=n), base + timedelta(hours=n, minutes=30)) for n in range(4)
    }
    caldav_server.layer.add_fault(Fault("multiget_lag", email=user.email, limit=2))
    caldav_server.layer.clear_calls()

    events = live(listing(port, user.calendar_url)[0])

    assert set(events) == made
    assert caldav_server.layer.count(user.email, "GET") == 2


def test_a_multiget_the_server_fails_is_asked_again_in_smaller_batches(
    caldav_server: CalDavServer, user: CalDavUser, port: CalDavCalendar
) -> None:
    """docs/PITFALLS.md J17: a batch may fail (5xx) where smaller ones work. The chunk is
    asked again in halves; a 503 with Retry-After (throttling) is not split but raised."""
    from devstack.caldav.faults import Fault

    base = clock.days_ahead(2, 9)
    made = {
        user.add(f"Meeting {n}", base + timedelta(hours=n), base + timedelta(hours=n, minutes=30)) for n in range(5)
    }
    caldav_server.layer.add_fault(Fault("multiget_too_large", email=user.email, limit=2, count=10))

    assert set(live(listing(port, user.calendar_url)[0])) == made

    caldav_server.layer.add_fault(Fault("unavailable_503", email=user.email, method="REPORT", count=2))
    with pytest.raises(RateLimited):
        listing(port, user.calendar_url)


def test_a_changed_member_that_cannot_be_read_keeps_the_sync_token(
    caldav_server: CalDavServer, user: CalDavUser, port: CalDavCalendar
) -> None:
    """A member the sync report lists as changed but neither the multiget nor a GET can read
    (deleted meanwhile, or not visible yet) fails the listing as retryable: the caller keeps
    its token, and the next listing from it reports the deletion."""
    base = clock.days_ahead(2, 9)
    _, cursor = listing(port, user.calendar_url)
    name = user.add("Soon gone", base, base + timedelta(hours=1))

    class DeletedInBetween:
        """The event is deleted by its owner between our sync report and our multiget."""

        def __init__(self, client: DavClient) -> None:
            self.client = client

        def __getattr__(self, attribute: str) -> Any:
            return getattr(self.client, attribute)

        def multiget(self, url: str, hrefs: list[str], **kw: Any) -> Iterator[Any]:
            user.delete(name)
            return self.client.multiget(url, hrefs, **kw)

    racing = CalDavCalendar(DeletedInBetween(port._client), tenant_id=TENANT)  # type: ignore[arg-type]
    with pytest.raises(ProviderError) as failed:
        listing(racing, user.calendar_url, cursor=cursor)
    assert failed.value.retryable

    events, _ = listing(port, user.calendar_url, cursor=cursor)
    assert [(e.event_id, e.cancelled) for e in events] == [(name, True)]


def test_a_series_that_keeps_changing_is_a_retryable_error_not_a_refusal(
    caldav_server: CalDavServer, user: CalDavUser, port: CalDavCalendar
) -> None:
    """Two 412s in a row while one occurrence is written without a caller's etag (the
    series busy): retryable, so the queue tries again and the CRM's move is not given up
    (the convergence machine found it dropped); the next attempt lands."""
    from devstack.caldav.faults import Fault

    first, instance = _weekly(user, "occ-busy")
    moved = first + timedelta(weeks=1, hours=3)
    caldav_server.layer.add_fault(Fault("precondition_412", email=user.email, method="PUT", count=2))

    with pytest.raises(ProviderError) as busy:
        port.update_event(user.calendar_url, instance(1), draft(start=moved, end=moved + timedelta(hours=1)))
    assert busy.value.retryable
    assert not isinstance(busy.value, PreconditionFailed)

    port.update_event(user.calendar_url, instance(1), draft(start=moved, end=moved + timedelta(hours=1)))
    assert live(listing(port, user.calendar_url)[0])[instance(1)].start == moved.astimezone(UTC)
