"""The Graph calendar adapter (layers/crmsync/providers/graph) against the Microsoft
emulator's Graph part, served on a loopback werkzeug server: real HTTP through ``requests``,
the Outlook user's own edits through ``GraphState``'s ``user_*`` API.

Sources are learn.microsoft.com Graph v1.0 pages, cited per test; where the adapter relies on
a guess (the emulator's or ours), the docstring says "guess" and docs/GRAPH.md lists it.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.serving import make_server

from crmsync.domain import ExternalEvent
from crmsync.ports.calendar import CreateIdempotency, EventDraft
from crmsync.ports.errors import (
    AuthRevoked,
    CursorInvalid,
    PreconditionFailed,
    ProviderError,
    ProviderNotFound,
    RateLimited,
)
from crmsync.providers.graph.calendar import PROP_APPOINTMENT, PROP_REVISION, PROP_TENANT, GraphCalendar
from devstack.microsoft.graph import Fault, GraphState
from tests.support import clock
from tests.support.graph_user import GraphServer, GraphUser

pytestmark = pytest.mark.integration

TENANT = "tenant-graph"
PAGE_SIZE = 2


class ManualClock:
    """A clock the tests move instead of sleeping (the emulator's and the adapter's)."""

    def __init__(self) -> None:
        self.now = clock.now()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphServer]:
    with GraphServer(GraphState(ManualClock())) as server:
        yield server


@dataclass
class Account:
    user: GraphUser
    port: GraphCalendar
    server: GraphServer
    ticks: ManualClock

    def adapter(
        self, tenant_id: str = TENANT, *, token: str | None = None, ahead: timedelta = timedelta(0)
    ) -> GraphCalendar:
        """The adapter under test; ``ahead`` runs its clock ahead of the emulator's."""
        return GraphCalendar(
            self.server.base_url,
            lambda: token or self.user.token,
            tenant_id=tenant_id,
            page_size=PAGE_SIZE,
            clock=lambda: self.ticks() + ahead,
        )


@pytest.fixture
def account(graph: GraphServer) -> Iterator[Account]:
    ticks = ManualClock()
    graph.state.clock = ticks
    user = GraphUser(graph)
    made = Account(user, GraphCalendar(graph.base_url, lambda: user.token, tenant_id=TENANT), graph, ticks)
    made.port = made.adapter()  # the same, with the test's page size and clock
    yield made
    graph.state.faults.clear()


def listing(port: GraphCalendar, calendar_id: str, cursor: str | None = None) -> tuple[list[ExternalEvent], str]:
    pages = list(port.event_pages(calendar_id, cursor=cursor, since=None))
    assert all(p.cursor is None for p in pages[:-1])
    assert pages[-1].cursor
    return [e for p in pages for e in p.events], pages[-1].cursor


def draft(**changes: object) -> EventDraft:
    start = clock.days_ahead(3, 10)
    base = EventDraft(
        key=uuid.uuid4().hex,
        tenant_id=TENANT,
        revision=1,
        title="Site visit",
        start=start,
        end=start + timedelta(hours=1),
        time_zone="Europe/Paris",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def by_id(events: list[ExternalEvent]) -> dict[str, ExternalEvent]:
    return {e.event_id: e for e in events}


# ---------------------------------------------------------------------- calendars


def test_calendars_are_listed_over_pages_with_roles(account: Account) -> None:
    """/me/calendars pages with @odata.nextLink (the emulator's 10 a page is a guess);
    an editable calendar the user may share is their own ("Only the user who created the calendar
    can share it", learn.microsoft.com/graph/api/resources/calendar) → owner; one without
    canEdit → reader (the emulator always says canShare, so "writer" is not reached here)."""
    state, email = account.server.state, account.user.email
    extra = [state.add_calendar(email, f"Project {n}") for n in range(11)]
    shared = state.add_calendar(email, "Shared with me")
    with state.lock:
        shared.can_edit = False

    calendars = {c.calendar_id: c for c in account.port.list_calendars()}

    assert len(calendars) == 13
    assert set(calendars) >= {c.id for c in extra}
    primary = [c for c in calendars.values() if c.primary]
    assert [c.calendar_id for c in primary] == [account.user.calendar_id]
    assert primary[0].access_role == "owner"
    assert primary[0].writable
    assert (calendars[shared.id].access_role, calendars[shared.id].writable) == ("reader", False)


# ---------------------------------------------------------------------- delta rounds


def test_first_round_pages_and_ends_with_a_delta_cursor(account: Account) -> None:
    """A round follows @odata.nextLink until @odata.deltaLink (learn.microsoft.com/graph/
    delta-query-events); with ``Prefer: odata.maxpagesize=2`` five events are three pages and
    only the last carries the cursor."""
    base = clock.days_ahead(2, 9)
    made = [
        account.user.add(f"Meeting {n}", base + timedelta(hours=n), base + timedelta(hours=n, minutes=30))
        for n in range(5)
    ]

    pages = list(account.port.event_pages(account.user.calendar_id, cursor=None, since=None))

    assert [len(p.events) for p in pages] == [2, 2, 1]
    assert [p.cursor is not None for p in pages] == [False, False, True]
    assert sorted(e.event_id for p in pages for e in p.events) == sorted(made)
    assert pages[-1].cursor is not None
    assert len(pages[-1].cursor) < 400
    meeting = by_id([e for p in pages for e in p.events])[made[1]]
    assert (meeting.start, meeting.end) == (base + timedelta(hours=1), base + timedelta(hours=1, minutes=30))
    assert meeting.start is not None
    assert meeting.start.tzinfo is not None


def test_incremental_round_returns_only_the_changes_and_removals(account: Account) -> None:
    """Following the deltaLink returns what changed, and deleted items as ``@removed``
    (learn.microsoft.com/graph/api/event-delta) → ``ExternalEvent.gone``."""
    base = clock.days_ahead(4, 9)
    kept = account.user.add("Untouched", base, base + timedelta(hours=1))
    moved = account.user.add("Moves", base + timedelta(hours=2), base + timedelta(hours=3))
    deleted = account.user.add("Goes away", base + timedelta(hours=4), base + timedelta(hours=5))
    _, cursor = listing(account.port, account.user.calendar_id)

    added = account.user.add("New", base + timedelta(days=1), base + timedelta(days=1, hours=1))
    new_start = base + timedelta(days=2, hours=7)
    account.user.move(moved, new_start, new_start + timedelta(minutes=45))
    account.user.delete(deleted)
    changes, next_cursor = listing(account.port, account.user.calendar_id, cursor)

    seen = by_id(changes)
    assert sorted(seen) == sorted([added, moved, deleted])
    assert kept not in seen
    assert (seen[moved].start, seen[moved].end) == (new_start, new_start + timedelta(minutes=45))
    assert seen[deleted].cancelled
    assert seen[deleted].start is None
    assert seen[deleted].summary is None
    assert not seen[added].cancelled
    assert listing(account.port, account.user.calendar_id, next_cursor)[0] == []


@pytest.mark.parametrize("kind", ["sync_state_not_found", "resync_required", "gone"])
def test_each_sync_reset_is_cursor_invalid_then_a_full_listing_works(account: Account, kind: str) -> None:
    """The three reset forms of learn.microsoft.com/graph/delta-query-overview#synchronization-
    reset: ``syncStateNotFound`` (400 in the emulator: a guess), ``resyncRequired`` (410, guess
    at the status), and 410 Gone with a Location header."""
    account.user.add("Kept", clock.days_ahead(3, 9), clock.days_ahead(3, 10))
    _, cursor = listing(account.port, account.user.calendar_id)
    account.server.state.faults.add(Fault(kind, path="/v1.0/me/calendars", email=account.user.email))

    with pytest.raises(CursorInvalid):
        listing(account.port, account.user.calendar_id, cursor)
    events, _ = listing(account.port, account.user.calendar_id)
    assert [e.summary for e in events] == ["Kept"]


def test_forgotten_or_aged_tokens_are_cursor_invalid(account: Account) -> None:
    """Graph forgetting the sync state (``syncStateNotFound``) and a token past its age (410
    with Location; the 7-day age is the emulator's guess) both mean: list in full."""
    _, cursor = listing(account.port, account.user.calendar_id)
    account.user.invalidate_cursors()
    with pytest.raises(CursorInvalid):
        listing(account.port, account.user.calendar_id, cursor)

    _, cursor = listing(account.port, account.user.calendar_id)
    account.ticks.now += timedelta(days=8)
    with pytest.raises(CursorInvalid):
        listing(account.port, account.user.calendar_id, cursor)


def test_a_round_whose_window_has_rolled_starts_again(account: Account) -> None:
    """The window is fixed per round (learn.microsoft.com/graph/delta-query-events); once less
    than a year of it lies ahead (our rule), the cursor is refused without asking Graph and a
    new round starts over a new window."""
    _, cursor = listing(account.port, account.user.calendar_id)
    account.server.state.faults.add(Fault("internal_500", email=account.user.email))  # any request would fail
    rolled = account.adapter(ahead=timedelta(days=400))

    with pytest.raises(CursorInvalid):
        list(rolled.event_pages(account.user.calendar_id, cursor=cursor, since=None))
    assert account.server.state.faults.list(), "no request was made"


def test_a_cursor_that_is_not_ours_is_cursor_invalid(account: Account) -> None:
    """Another adapter's cursor, or one whose link leaves our base URL (docs/GRAPH.md's cursor
    format), is refused before any request: the bearer token never goes elsewhere."""
    with pytest.raises(CursorInvalid):
        listing(account.port, account.user.calendar_id, "cd1.eJwrSS0qBgAEXQHB")
    _, cursor = listing(account.port, account.user.calendar_id)
    state = json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor[4:] + "=" * (-len(cursor[4:]) % 4))))
    assert state["link"].startswith("/me/calendars/")  # relative: compact
    state["link"] = "http://127.0.0.2:9" + state["link"]
    elsewhere = "gr1." + base64.urlsafe_b64encode(zlib.compress(json.dumps(state).encode())).decode()

    with pytest.raises(CursorInvalid):
        listing(account.port, account.user.calendar_id, elsewhere)


# ---------------------------------------------------------------------- event mapping


def test_all_day_events_are_dates(account: Account) -> None:
    """All-day events are midnight to midnight in their own zone whatever Prefer says
    (learn.microsoft.com/graph/api/resources/event ``isAllDay``; Microsoft Q&A 1382503)."""
    day = clock.days_ahead(6).date()
    event_id = account.user.create(
        {
            "subject": "Holiday",
            "isAllDay": True,
            "start": {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": "Tokyo Standard Time"},
            "end": {"dateTime": f"{(day + timedelta(days=2)).isoformat()}T00:00:00", "timeZone": "Tokyo Standard Time"},
        }
    )

    event = by_id(listing(account.port, account.user.calendar_id)[0])[event_id]

    assert (event.start_date, event.end_date) == (day.isoformat(), (day + timedelta(days=2)).isoformat())
    assert (event.start, event.end) == (None, None)
    assert event.all_day


@pytest.mark.parametrize(
    ("show_as", "blocks"),
    [
        ("busy", True),
        ("tentative", True),
        ("oof", True),
        ("unknown", True),
        ("free", False),
        ("workingElsewhere", False),
    ],
)
def test_show_as_decides_whether_an_event_blocks_time(account: Account, show_as: str, blocks: bool) -> None:
    """showAs values from learn.microsoft.com/graph/api/resources/event; which block is our
    rule (docs/GRAPH.md): free and workingElsewhere do not."""
    start = clock.days_ahead(3, 9)
    event_id = account.user.add("Slot", start, start + timedelta(hours=1), showAs=show_as)

    event = by_id(listing(account.port, account.user.calendar_id)[0])[event_id]

    assert event.transparent is not blocks
    assert event.blocks_time is blocks


def test_cancelled_and_declined_events_do_not_block(account: Account) -> None:
    """``isCancelled`` (the organizer cancelled: the event stays) → cancelled;
    ``responseStatus.response`` declined → declined (learn.microsoft.com/graph/api/resources/
    event)."""
    start = clock.days_ahead(3, 9)
    cancelled = account.user.add("Called off", start, start + timedelta(hours=1))
    account.user.cancel(cancelled)
    declined = account.user.add("Declined", start, start + timedelta(hours=1), responseStatus={"response": "declined"})
    accepted = account.user.add("Accepted", start, start + timedelta(hours=1), responseStatus={"response": "accepted"})

    seen = by_id(listing(account.port, account.user.calendar_id)[0])

    assert (seen[cancelled].cancelled, seen[cancelled].summary) == (True, "Called off")
    assert (seen[declined].declined, seen[declined].cancelled) == (True, False)
    assert not seen[accepted].declined
    assert [e.blocks_time for e in (seen[cancelled], seen[declined], seen[accepted])] == [False, False, True]


def test_a_windows_zone_event_keeps_its_iana_zone(account: Account) -> None:
    """``originalStartTimeZone`` holds a Windows name; CLDR's windowsZones (the icalendar
    package's copy) maps it to IANA. Times arrive in UTC (``Prefer: outlook.timezone="UTC"``,
    learn.microsoft.com/graph/api/user-list-events)."""
    wall = clock.days_ahead(5, 14, zone="America/New_York")
    event_id = account.user.create(
        {
            "subject": "East coast call",
            "start": {"dateTime": wall.replace(tzinfo=None).isoformat(), "timeZone": "Eastern Standard Time"},
            "end": {
                "dateTime": (wall + timedelta(hours=1)).replace(tzinfo=None).isoformat(),
                "timeZone": "Eastern Standard Time",
            },
        }
    )
    ours = account.port.create_event(account.user.calendar_id, draft())

    seen = by_id(listing(account.port, account.user.calendar_id)[0])

    assert seen[event_id].time_zone == "America/New_York"
    assert seen[event_id].start == wall.astimezone(UTC)
    assert seen[ours.event_id].time_zone == "Europe/Paris"
    stored = next(e for e in account.user.events() if e.id == ours.event_id)
    assert stored.zone == "Romance Standard Time"  # written as a Windows name


def test_series_occurrences_are_instances_and_a_crm_move_makes_one_exception(account: Account) -> None:
    """calendarView lists occurrences and exceptions, never the series master
    (learn.microsoft.com/graph/api/user-list-calendarview); patching an occurrence makes it
    an exception with the same id (the id shape is the emulator's guess) and leaves the
    others."""
    first = clock.days_ahead(3, 9)
    master = account.user.create(
        {
            "subject": "Standup",
            "start": {"dateTime": first.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            "end": {"dateTime": (first + timedelta(minutes=15)).replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": first.date().isoformat(), "numberOfOccurrences": 4},
            },
        }
    )
    events, cursor = listing(account.port, account.user.calendar_id)
    assert master not in by_id(events)
    assert len(events) == 4
    assert len(set(by_id(events))) == 4
    second = sorted(events, key=lambda e: e.start or first)[1]

    later = second.start + timedelta(hours=3) if second.start else first
    moved = account.port.update_event(
        account.user.calendar_id,
        second.event_id,
        draft(title="Standup (moved)", start=later, end=later + timedelta(minutes=15)),
        etag=second.etag,
    )

    assert moved.event_id == second.event_id
    changes, _ = listing(account.port, account.user.calendar_id, cursor)
    assert [(e.event_id, e.start, e.summary) for e in changes] == [(second.event_id, later, "Standup (moved)")]
    after = by_id(listing(account.port, account.user.calendar_id)[0])
    assert len(after) == 4
    assert sum(e.summary == "Standup" for e in after.values()) == 3
    [series] = account.user.events()
    assert [e.type for e in series.exceptions.values()] == ["exception"]


def test_deleting_one_occurrence_leaves_the_rest_of_the_series(account: Account) -> None:
    """DELETE on an occurrence's id removes that occurrence only (learn.microsoft.com/graph/
    api/event-delete; the emulator records it as a cancelled date of the series); the next
    round reports it removed and nothing else."""
    first = clock.days_ahead(3, 9)
    account.user.create(
        {
            "subject": "Standup",
            "start": {"dateTime": first.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            "end": {"dateTime": (first + timedelta(minutes=15)).replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": first.date().isoformat(), "numberOfOccurrences": 3},
            },
        }
    )
    events, cursor = listing(account.port, account.user.calendar_id)
    third = sorted(events, key=lambda e: e.start or first)[2]

    account.port.delete_event(account.user.calendar_id, third.event_id)

    [gone] = listing(account.port, account.user.calendar_id, cursor)[0]
    assert (gone.event_id, gone.cancelled) == (third.event_id, True)
    assert len(listing(account.port, account.user.calendar_id)[0]) == 2
    with pytest.raises(ProviderNotFound):
        account.port.delete_event(account.user.calendar_id, third.event_id)


def test_a_full_listing_keeps_events_ending_after_since(account: Account) -> None:
    """The first round's window starts at ``since``: calendarView holds the events that overlap
    it (learn.microsoft.com/graph/api/user-list-calendarview)."""
    since = clock.days_ahead(5, 12)
    account.user.add("Ended", since - timedelta(hours=2), since - timedelta(hours=1))
    across = account.user.add("Across", since - timedelta(hours=1), since + timedelta(hours=1))
    later = account.user.add("Later", since + timedelta(days=1), since + timedelta(days=1, hours=1))
    far = account.user.add("Far", since + timedelta(days=700), since + timedelta(days=700, hours=1))
    account.user.add("Beyond", since + timedelta(days=731), since + timedelta(days=731, hours=1))

    pages = list(account.port.event_pages(account.user.calendar_id, cursor=None, since=since))

    assert {e.event_id for p in pages for e in p.events} == {across, later, far}


# ---------------------------------------------------------------------- writes


def test_a_retried_create_after_a_lost_answer_makes_one_event(account: Account) -> None:
    """``transactionId`` exists so a retried POST does not duplicate the event
    (learn.microsoft.com/graph/api/resources/event); the emulator's ``lost_answer`` carries the
    create out and answers 504 (a guess at the status)."""
    wanted = draft()
    account.server.state.faults.add(Fault("lost_answer", method="POST", email=account.user.email))

    with pytest.raises(ProviderError) as lost:
        account.port.create_event(account.user.calendar_id, wanted)
    assert lost.value.retryable
    again = account.port.create_event(account.user.calendar_id, wanted)

    ours = [e for e in listing(account.port, account.user.calendar_id)[0] if e.crm_appointment_id == wanted.key]
    assert [e.event_id for e in ours] == [again.event_id]
    assert len(account.user.events()) == 1
    assert account.port.created_event_id(wanted.key) is None
    assert account.port.idempotency is CreateIdempotency.TRANSACTION_ID


def test_a_create_retried_after_the_appointment_moved_writes_the_new_revision(account: Account) -> None:
    """A lost create, then the appointment moves and is renamed before the retry: the retry's
    ``transactionId`` is answered with the first event as first written (the emulator's
    reading of "avoid redundant POST operations"), so the adapter writes the new revision over
    it. Found by the Graph convergence machine: the CRM believed the move pushed while Outlook
    kept the old time."""
    first = draft()
    account.server.state.faults.add(Fault("lost_answer", method="POST", email=account.user.email))
    with pytest.raises(ProviderError):
        account.port.create_event(account.user.calendar_id, first)
    later = first.start + timedelta(hours=5)
    moved = replace(first, title="Moved", start=later, end=later + timedelta(hours=1), revision=2)

    written = account.port.create_event(account.user.calendar_id, moved)

    [event] = [e for e in listing(account.port, account.user.calendar_id)[0] if e.crm_appointment_id == first.key]
    assert (event.event_id, event.summary, event.start, event.end) == (written.event_id, "Moved", later, moved.end)
    assert event.etag == written.etag
    assert len(account.user.events()) == 1


def test_update_changes_the_event_and_its_etag(account: Account) -> None:
    original = draft()
    written = account.port.create_event(account.user.calendar_id, original)
    later = original.start + timedelta(days=1)

    updated = account.port.update_event(
        account.user.calendar_id,
        written.event_id,
        replace(original, title="Moved", start=later, end=later + timedelta(hours=2), revision=2),
        etag=written.etag,
    )

    assert updated.etag
    assert updated.etag != written.etag
    event = by_id(listing(account.port, account.user.calendar_id)[0])[written.event_id]
    assert (event.summary, event.start, event.end, event.etag) == (
        "Moved",
        later,
        later + timedelta(hours=2),
        updated.etag,
    )


def test_update_with_a_stale_etag_is_precondition_failed(account: Account) -> None:
    """``If-Match`` with a stale change key → 412 (learn.microsoft.com/graph/api/event-update
    accepts If-Match; the 412 body is what Graph users report)."""
    original = draft()
    written = account.port.create_event(account.user.calendar_id, original)
    account.user.move(written.event_id, original.start + timedelta(hours=1), original.end + timedelta(hours=1))

    with pytest.raises(PreconditionFailed):
        account.port.update_event(
            account.user.calendar_id, written.event_id, replace(original, title="Mine"), etag=written.etag
        )


def test_a_412_on_a_write_we_did_not_make_conditional_is_retried(account: Account) -> None:
    """Without ``If-Match`` a 412 means the event changed while we wrote (the emulator's
    ``precondition_failed``; that Graph answers so is a guess): writing again later is right,
    so the error is retryable, not ``PreconditionFailed`` (which would give the CRM's change
    up). Found by the Graph convergence machine: a cancelled appointment's event stayed."""
    original = draft()
    written = account.port.create_event(account.user.calendar_id, original)
    email = account.user.email
    account.server.state.faults.add(Fault("precondition_failed", method="PATCH", email=email))
    account.server.state.faults.add(Fault("precondition_failed", method="DELETE", email=email))

    for write in (
        lambda: account.port.update_event(account.user.calendar_id, written.event_id, replace(original, title="B")),
        lambda: account.port.delete_event(account.user.calendar_id, written.event_id),
    ):
        with pytest.raises(ProviderError) as refused:
            write()
        assert refused.value.retryable
        assert not isinstance(refused.value, PreconditionFailed)
    account.port.delete_event(account.user.calendar_id, written.event_id)
    assert account.user.events() == []


def test_update_or_delete_of_a_gone_event_is_not_found(account: Account) -> None:
    written = account.port.create_event(account.user.calendar_id, draft())
    account.user.delete(written.event_id)

    with pytest.raises(ProviderNotFound):
        account.port.update_event(account.user.calendar_id, written.event_id, draft())
    with pytest.raises(ProviderNotFound):
        account.port.delete_event(account.user.calendar_id, written.event_id)


def test_delete_removes_the_event(account: Account) -> None:
    written = account.port.create_event(account.user.calendar_id, draft())
    _, cursor = listing(account.port, account.user.calendar_id)

    account.port.delete_event(account.user.calendar_id, written.event_id)

    [gone] = listing(account.port, account.user.calendar_id, cursor)[0]
    assert (gone.event_id, gone.cancelled) == (written.event_id, True)


def test_our_marker_makes_an_event_ours_for_our_tenant_only(account: Account) -> None:
    """calendarView/delta does not take ``$expand`` (event-delta's OData parameters), so a
    listing knows our events by their ``transactionId``, which Graph returns when an app set
    it (learn.microsoft.com/graph/api/resources/event); another tenant's is someone else's
    event, in full and incremental rounds. The markers are also written as single-value
    extended properties (learn.microsoft.com/graph/api/resources/
    singlevaluelegacyextendedproperty)."""
    ours, theirs = draft(), draft(tenant_id="tenant-other")
    _, cursor = listing(account.port, account.user.calendar_id)
    mine = account.port.create_event(account.user.calendar_id, ours)
    other = account.port.create_event(account.user.calendar_id, theirs)
    users = account.user.add("The user's own", ours.start, ours.end)

    seen = {e.event_id: e.crm_appointment_id for e in listing(account.port, account.user.calendar_id)[0]}
    seen_by_other = {
        e.event_id: e.crm_appointment_id for e in listing(account.adapter("tenant-other"), account.user.calendar_id)[0]
    }
    changed = {e.event_id: e.crm_appointment_id for e in listing(account.port, account.user.calendar_id, cursor)[0]}

    assert seen == {mine.event_id: ours.key, other.event_id: None, users: None}
    assert seen_by_other == {mine.event_id: None, other.event_id: theirs.key, users: None}
    assert changed == seen
    stored = {e.id: e.extended for e in account.user.events()}
    assert stored[mine.event_id] == {
        PROP_APPOINTMENT: ours.key,
        PROP_TENANT: TENANT,
        PROP_REVISION: "1",
    }


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", ["throttled_429", "unavailable_503"])
def test_throttling_with_retry_after_is_rate_limited(account: Account, kind: str) -> None:
    """429 and 503 carry Retry-After (learn.microsoft.com/graph/throttling)."""
    account.server.state.faults.add(Fault(kind, email=account.user.email, retry_after=7))

    with pytest.raises(RateLimited) as limited:
        account.port.list_calendars()
    assert limited.value.retry_after == 7
    assert limited.value.retryable


def test_a_server_error_is_retryable(account: Account) -> None:
    account.server.state.faults.add(Fault("internal_500", email=account.user.email))

    with pytest.raises(ProviderError) as failed:
        account.port.create_event(account.user.calendar_id, draft())
    assert failed.value.retryable
    assert not isinstance(failed.value, RateLimited)


def test_a_refused_token_is_auth_revoked(account: Account) -> None:
    """401 ``InvalidAuthenticationToken`` (learn.microsoft.com/graph/errors)."""
    with pytest.raises(AuthRevoked) as refused:
        account.adapter(token="not-a-token").list_calendars()
    assert "not-a-token" not in str(refused.value)  # the detail names no secret


def test_writing_a_read_only_calendar_is_refused_for_good(account: Account) -> None:
    """403 ``ErrorAccessDenied``: retrying does not help."""
    read_only = account.server.state.add_calendar(account.user.email, "Team (read only)")
    with account.server.state.lock:
        read_only.can_edit = False

    with pytest.raises(ProviderError) as refused:
        account.port.create_event(read_only.id, draft())
    assert not refused.value.retryable
    assert refused.value.status == 403


def test_an_end_before_the_start_is_refused_for_good(account: Account) -> None:
    wanted = draft()

    with pytest.raises(ProviderError) as refused:
        account.port.create_event(account.user.calendar_id, replace(wanted, end=wanted.start - timedelta(hours=1)))
    assert not refused.value.retryable
    assert account.user.events() == []


@pytest.mark.parametrize("status", [200, 502, 400])
def test_an_answer_that_is_not_json_is_retryable(status: int) -> None:
    """A proxy or gateway in front of Graph can answer with an HTML page; that is not Graph's
    answer, so it is retried, never taken as a verdict (nor, for a 200, parsed as data)."""
    from werkzeug.wrappers import Request, Response

    @Request.application
    def gateway(request: Request) -> Response:
        return Response("<html><body>Bad gateway</body></html>", status, content_type="text/html")

    server = make_server("127.0.0.1", 0, gateway, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = GraphCalendar(f"http://127.0.0.1:{server.server_port}/v1.0", lambda: "t", tenant_id=TENANT)
        with pytest.raises(ProviderError) as failed:
            port.list_calendars()
        assert failed.value.retryable
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
