"""The calendar port's contract, run over the Google adapter (against the emulator, through
google-api-python-client, built as production builds it) and over the in-memory fake: the
fake provably behaves like the adapter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

import pytest

from crmsync.domain import ExternalEvent
from crmsync.ports.calendar import CalendarPort, ChangeNotification, CreateIdempotency, EventDraft
from crmsync.ports.errors import CursorInvalid, PreconditionFailed, ProviderError, ProviderNotFound
from crmsync.providers.caldav.calendar import CalDavCalendar
from crmsync.providers.caldav.client import DavClient
from crmsync.providers.google.calendar import GoogleCalendar
from crmsync.providers.google.events import rfc3339
from crmsync.providers.graph.calendar import GraphCalendar
from devstack.caldav import CalDavServer
from devstack.google import GoogleEmulator
from tests.contract.ports import connect_google_account
from tests.fakes import FakeCalendar
from tests.support import clock
from tests.support.caldav_user import CalDavUser
from tests.support.google_user import GoogleCalendarUser
from tests.support.graph_user import GraphServer, GraphUser, Webhook

pytestmark = pytest.mark.integration

TENANT = "tenant-ports"
PAGE_SIZE = 2


class CalendarUser(Protocol):
    """The account's owner, changing events in the calendar app (out of band)."""

    def add(self, summary: str, start: datetime, end: datetime) -> str: ...
    def move(self, event_id: str, start: datetime, end: datetime) -> None: ...
    def delete(self, event_id: str) -> None: ...
    def invalidate_cursors(self, *, purge_deleted: bool = False) -> None: ...


class GoogleUser:
    def __init__(self, user: GoogleCalendarUser) -> None:
        self._user = user

    def add(self, summary: str, start: datetime, end: datetime) -> str:
        event = self._user.add(summary=summary, start=_when(start), end=_when(end))
        return str(event["id"])

    def move(self, event_id: str, start: datetime, end: datetime) -> None:
        self._user.patch(event_id, start=_when(start), end=_when(end))

    def delete(self, event_id: str) -> None:
        self._user.delete(event_id)

    def invalidate_cursors(self, *, purge_deleted: bool = False) -> None:
        self._user.expire_sync_tokens(purge_deleted=purge_deleted)


class FakeUser:
    def __init__(self, fake: FakeCalendar, calendar_id: str) -> None:
        self._fake = fake
        self._calendar_id = calendar_id

    def add(self, summary: str, start: datetime, end: datetime) -> str:
        return self._fake.user_add(self._calendar_id, summary=summary, start=start, end=end).event_id

    def move(self, event_id: str, start: datetime, end: datetime) -> None:
        self._fake.user_move(self._calendar_id, event_id, start=start, end=end)

    def delete(self, event_id: str) -> None:
        self._fake.user_delete(self._calendar_id, event_id)

    def invalidate_cursors(self, *, purge_deleted: bool = False) -> None:
        self._fake.invalidate_cursors(purge_deleted=purge_deleted)


def _when(moment: datetime) -> dict[str, str]:
    return {"dateTime": rfc3339(moment), "timeZone": "UTC"}


@dataclass
class Subject:
    port: CalendarPort
    calendar_id: str
    user: CalendarUser
    #: The same account's calendar as another tenant's connection sees it.
    other_tenant: CalendarPort


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    """A loopback webhook that answers Graph's validation handshake (Graph POSTs
    ``?validationToken=…`` before it answers 201) and accepts notifications."""
    with Webhook() as hook:
        yield hook.url


@pytest.fixture(scope="module")
def graph_server() -> Iterator[GraphServer]:
    with GraphServer() as server:
        yield server


@pytest.fixture(params=["google", "caldav", "graph", "fake"])
def subject(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Subject]:
    if request.param == "google":
        monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
        emulator: GoogleEmulator = request.getfixturevalue("google_emulator")
        account = connect_google_account(emulator)

        def adapter(tenant_id: str) -> GoogleCalendar:
            return GoogleCalendar(
                account.settings,
                account.refresh_token,
                lambda: "GOCSPX-ports-secret",
                tenant_id=tenant_id,
                events_page_size=PAGE_SIZE,
            )

        yield Subject(adapter(TENANT), account.user.email, GoogleUser(account.user), adapter("tenant-other"))
    elif request.param == "caldav":
        server: CalDavServer = request.getfixturevalue("caldav_server")
        user = CalDavUser(server)

        def dav(tenant_id: str) -> CalDavCalendar:
            client = DavClient(server.base_url, user.email, user.password)
            return CalDavCalendar(client, tenant_id=tenant_id, page_size=PAGE_SIZE)

        yield Subject(dav(TENANT), user.calendar_url, user, dav("tenant-other"))
    elif request.param == "graph":
        graph: GraphServer = request.getfixturevalue("graph_server")
        outlook = GraphUser(graph)

        def outlook_port(tenant_id: str) -> GraphCalendar:
            return GraphCalendar(graph.base_url, lambda: outlook.token, tenant_id=tenant_id, page_size=PAGE_SIZE)

        yield Subject(outlook_port(TENANT), outlook.calendar_id, outlook, outlook_port("tenant-other"))
    else:
        email = f"port-{uuid.uuid4().hex[:10]}@example.com"
        fake = FakeCalendar(tenant_id=TENANT, email=email, page_size=PAGE_SIZE)
        yield Subject(fake, email, FakeUser(fake, email), fake.as_tenant("tenant-other"))


# ---------------------------------------------------------------------- helpers


def listing(
    port: CalendarPort, calendar_id: str, *, cursor: str | None = None, since: datetime | None = None
) -> tuple[list[ExternalEvent], str]:
    """Every page's events, and the cursor of the last page (checked to be the only one)."""
    pages = list(port.event_pages(calendar_id, cursor=cursor, since=since))
    assert pages, "at least one page"
    assert all(page.cursor is None for page in pages[:-1]), "only the last page carries the cursor"
    assert pages[-1].cursor, "the last page carries the next cursor"
    return [event for page in pages for event in page.events], pages[-1].cursor


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


def live(events: list[ExternalEvent]) -> list[ExternalEvent]:
    return [e for e in events if not e.cancelled]


# ---------------------------------------------------------------------- calendars


def test_list_calendars_includes_the_writable_primary(subject: Subject) -> None:
    calendars = subject.port.list_calendars()

    primary = [c for c in calendars if c.primary]
    assert [c.calendar_id for c in primary] == [subject.calendar_id]
    assert primary[0].access_role == "owner"
    assert primary[0].writable


# ---------------------------------------------------------------------- listing


def test_full_listing_pages_and_ends_with_a_cursor(subject: Subject) -> None:
    base = clock.days_ahead(2, 9)
    made = [
        subject.user.add(f"Meeting {n}", base + timedelta(hours=n), base + timedelta(hours=n, minutes=30))
        for n in range(5)
    ]

    pages = list(subject.port.event_pages(subject.calendar_id, cursor=None, since=None))

    assert len(pages) == 3  # 5 events, 2 a page
    assert [p.cursor is not None for p in pages] == [False, False, True]
    assert sorted(e.event_id for p in pages for e in p.events) == sorted(made)


def test_full_listing_since_keeps_events_ending_after_it(subject: Subject) -> None:
    since = clock.days_ahead(5, 12)
    before = subject.user.add("Ended", since - timedelta(hours=2), since - timedelta(hours=1))
    across = subject.user.add("Across", since - timedelta(hours=1), since + timedelta(hours=1))
    after = subject.user.add("Later", since + timedelta(days=1), since + timedelta(days=1, hours=1))

    events, _ = listing(subject.port, subject.calendar_id, since=since)

    ids = {e.event_id for e in events}
    assert ids == {across, after}
    assert before not in ids


def test_incremental_listing_returns_exactly_the_changes(subject: Subject) -> None:
    base = clock.days_ahead(4, 9)
    kept = subject.user.add("Untouched", base, base + timedelta(hours=1))
    moved = subject.user.add("Moves", base + timedelta(hours=2), base + timedelta(hours=3))
    deleted = subject.user.add("Goes away", base + timedelta(hours=4), base + timedelta(hours=5))
    _, cursor = listing(subject.port, subject.calendar_id)

    added = subject.user.add("New", base + timedelta(days=1), base + timedelta(days=1, hours=1))
    new_start = base + timedelta(days=2, hours=7)
    subject.user.move(moved, new_start, new_start + timedelta(minutes=45))
    subject.user.delete(deleted)
    changes, next_cursor = listing(subject.port, subject.calendar_id, cursor=cursor)

    by_id = {e.event_id: e for e in changes}
    assert sorted(by_id) == sorted([added, moved, deleted])
    assert kept not in by_id
    assert by_id[added].summary == "New"
    assert not by_id[added].cancelled
    assert (by_id[moved].start, by_id[moved].end) == (new_start, new_start + timedelta(minutes=45))
    gone = by_id[deleted]
    assert gone.cancelled
    assert gone.start is None
    assert gone.summary is None
    assert gone.crm_appointment_id is None
    # Nothing changed since: the next incremental listing is empty.
    assert listing(subject.port, subject.calendar_id, cursor=next_cursor)[0] == []


def test_invalidated_cursor_raises_cursor_invalid(subject: Subject) -> None:
    _, cursor = listing(subject.port, subject.calendar_id)
    subject.user.invalidate_cursors()

    with pytest.raises(CursorInvalid):
        listing(subject.port, subject.calendar_id, cursor=cursor)
    # A full listing works again.
    listing(subject.port, subject.calendar_id)


# ---------------------------------------------------------------------- writes


def test_retried_create_makes_one_event(subject: Subject) -> None:
    wanted = draft()

    first = subject.port.create_event(subject.calendar_id, wanted)
    again = subject.port.create_event(subject.calendar_id, wanted)

    assert again.event_id == first.event_id
    ours = [e for e in live(listing(subject.port, subject.calendar_id)[0]) if e.crm_appointment_id == wanted.key]
    assert [e.event_id for e in ours] == [first.event_id]


def test_a_created_event_has_the_id_the_adapter_derives_from_the_key(subject: Subject) -> None:
    """What lets a cancel reach an event whose create answer was lost (when the adapter
    derives ids; None otherwise)."""
    wanted = draft()
    derived = subject.port.created_event_id(wanted.key)

    written = subject.port.create_event(subject.calendar_id, wanted)

    assert derived is None or written.event_id == derived
    if subject.port.idempotency is not CreateIdempotency.TRANSACTION_ID:
        assert derived is not None


def test_update_changes_title_and_times_and_etag(subject: Subject) -> None:
    original = draft()
    written = subject.port.create_event(subject.calendar_id, original)
    later = original.start + timedelta(days=1, hours=2)
    changed = replace(original, title="Site visit (moved)", start=later, end=later + timedelta(minutes=90), revision=2)

    updated = subject.port.update_event(subject.calendar_id, written.event_id, changed, etag=written.etag)

    assert updated.event_id == written.event_id
    assert updated.etag
    assert updated.etag != written.etag
    [event] = [e for e in listing(subject.port, subject.calendar_id)[0] if e.event_id == written.event_id]
    assert (event.summary, event.start, event.end) == ("Site visit (moved)", later, later + timedelta(minutes=90))
    assert event.etag == updated.etag


def test_update_with_a_stale_etag_is_precondition_failed(subject: Subject) -> None:
    original = draft()
    written = subject.port.create_event(subject.calendar_id, original)
    subject.user.move(written.event_id, original.start + timedelta(hours=1), original.end + timedelta(hours=1))

    with pytest.raises(PreconditionFailed):
        subject.port.update_event(
            subject.calendar_id, written.event_id, replace(original, title="Mine"), etag=written.etag
        )


def test_event_exists_tells_a_live_event_from_a_deleted_or_unknown_one(subject: Subject) -> None:
    written = subject.port.create_event(subject.calendar_id, draft())
    assert subject.port.event_exists(subject.calendar_id, written.event_id)

    subject.user.delete(written.event_id)

    assert not subject.port.event_exists(subject.calendar_id, written.event_id)
    assert not subject.port.event_exists(subject.calendar_id, "crm" + uuid.uuid4().hex)


def test_an_incremental_listing_reports_a_deletion_it_never_listed_as_the_port_says(subject: Subject) -> None:
    """An event made after the cursor and deleted before the next listing: an adapter that
    says ``reports_unseen_deletions`` reports its deletion (Google; CalDAV's sync-collection
    does too, but its ctag fallback does not, so CalDAV does not say so); Graph's delta does
    not, and the sync asks for such events of ours instead."""
    _, cursor = listing(subject.port, subject.calendar_id)
    written = subject.port.create_event(subject.calendar_id, draft())
    subject.user.delete(written.event_id)

    changes, _ = listing(subject.port, subject.calendar_id, cursor=cursor)

    reported = [e for e in changes if e.event_id == written.event_id]
    if subject.port.reports_unseen_deletions:
        assert [e.cancelled for e in reported] == [True]
    if subject.port.idempotency is CreateIdempotency.TRANSACTION_ID:
        assert reported == []  # Graph: only instances a round sent are reported removed


def test_update_or_delete_of_an_unknown_event_is_not_found(subject: Subject) -> None:
    unknown = "crm" + uuid.uuid4().hex

    with pytest.raises(ProviderNotFound):
        subject.port.update_event(subject.calendar_id, unknown, draft())
    with pytest.raises(ProviderNotFound):
        subject.port.delete_event(subject.calendar_id, unknown)


def test_deleting_a_deleted_event_is_not_found(subject: Subject) -> None:
    written = subject.port.create_event(subject.calendar_id, draft())
    subject.port.delete_event(subject.calendar_id, written.event_id)

    with pytest.raises(ProviderNotFound):
        subject.port.delete_event(subject.calendar_id, written.event_id)
    events = {e.event_id: e for e in listing(subject.port, subject.calendar_id)[0]}
    if subject.port.idempotency is CreateIdempotency.TRANSACTION_ID:
        assert written.event_id not in events  # Graph keeps no tombstones: a full round omits it
    else:
        assert events[written.event_id].cancelled


def test_updating_a_deleted_event_brings_it_back_or_is_not_found(subject: Subject) -> None:
    """Google keeps a deleted event's tombstone, and an update restores it (the retried
    create relies on it); only an id with no tombstone is not found. CalDAV and Graph keep
    no tombstones: the update is not found, and the push then creates the event again (CalDAV
    under the same client-chosen name; Graph under a new id, its transactionId's first event
    being gone)."""
    wanted = draft()
    written = subject.port.create_event(subject.calendar_id, wanted)
    subject.user.delete(written.event_id)
    if subject.port.idempotency is CreateIdempotency.TRANSACTION_ID:
        with pytest.raises(ProviderNotFound):
            subject.port.update_event(subject.calendar_id, written.event_id, replace(wanted, title="Back"))
        again = subject.port.create_event(subject.calendar_id, replace(wanted, title="Back"))
        live = [e for e in listing(subject.port, subject.calendar_id)[0] if not e.cancelled]
        assert [(e.event_id, e.summary, e.crm_appointment_id) for e in live] == [(again.event_id, "Back", wanted.key)]
        return
    if subject.port.idempotency is CreateIdempotency.CLIENT_UID:
        with pytest.raises(ProviderNotFound):
            subject.port.update_event(subject.calendar_id, written.event_id, replace(wanted, title="Back"))
        again = subject.port.create_event(subject.calendar_id, replace(wanted, title="Back"))
        assert again.event_id == written.event_id  # the same client-chosen name
        [event] = [e for e in listing(subject.port, subject.calendar_id)[0] if e.event_id == written.event_id]
        assert (event.cancelled, event.summary) == (False, "Back")
        return

    restored = subject.port.update_event(subject.calendar_id, written.event_id, replace(wanted, title="Back"))

    [event] = [e for e in listing(subject.port, subject.calendar_id)[0] if e.event_id == written.event_id]
    assert not event.cancelled
    assert event.summary == "Back"
    assert event.etag == restored.etag


def test_create_after_the_tombstone_is_purged_makes_a_live_event(subject: Subject) -> None:
    wanted = draft()
    written = subject.port.create_event(subject.calendar_id, wanted)
    subject.port.delete_event(subject.calendar_id, written.event_id)
    subject.user.invalidate_cursors(purge_deleted=True)

    again = subject.port.create_event(subject.calendar_id, wanted)

    ours = [e for e in live(listing(subject.port, subject.calendar_id)[0]) if e.crm_appointment_id == wanted.key]
    assert [e.event_id for e in ours] == [again.event_id]


def test_an_end_before_the_start_is_refused(subject: Subject) -> None:
    wanted = draft()

    with pytest.raises(ProviderError) as refused:
        subject.port.create_event(subject.calendar_id, replace(wanted, end=wanted.start - timedelta(hours=1)))

    assert not refused.value.retryable
    assert listing(subject.port, subject.calendar_id)[0] == []


# ---------------------------------------------------------------------- echo marker


def test_our_events_carry_our_key_for_our_tenant_only(subject: Subject) -> None:
    ours = draft()
    theirs = draft(tenant_id="tenant-other")
    mine = subject.port.create_event(subject.calendar_id, ours)
    other = subject.port.create_event(subject.calendar_id, theirs)
    users = subject.user.add("The user's own", ours.start, ours.end)

    seen = {e.event_id: e.crm_appointment_id for e in listing(subject.port, subject.calendar_id)[0]}
    seen_by_other = {e.event_id: e.crm_appointment_id for e in listing(subject.other_tenant, subject.calendar_id)[0]}

    assert seen == {mine.event_id: ours.key, other.event_id: None, users: None}
    assert seen_by_other == {mine.event_id: None, other.event_id: theirs.key, users: None}


# ---------------------------------------------------------------------- push channels


def test_watch_opens_a_channel_until_a_future_expiry(subject: Subject, webhook: str) -> None:
    """The channel's id is the one the provider answers: Google echoes ours, Graph assigns
    its own (and validates the address first: ``webhook`` answers its handshake); Google's
    channels name a resource, Graph's subscriptions none."""
    if _polled(subject):
        return
    channel_id = str(uuid.uuid4())

    watch = subject.port.watch(subject.calendar_id, channel_id=channel_id, address=webhook, token="t0")

    if subject.port.notification is ChangeNotification.PUSH_CHANNEL:
        assert watch.channel_id == channel_id
        assert watch.resource_id
    else:
        assert watch.channel_id
        assert watch.resource_id == ""
    assert watch.expires_at > clock.now() + timedelta(days=6)
    subject.port.stop_watch(watch.channel_id, watch.resource_id)
    with pytest.raises(ProviderNotFound):  # already stopped
        subject.port.stop_watch(watch.channel_id, watch.resource_id)


def test_stopping_an_unknown_channel_is_not_found(subject: Subject) -> None:
    if _polled(subject):
        return
    with pytest.raises(ProviderNotFound):
        subject.port.stop_watch(str(uuid.uuid4()), "no-such-resource")


def _polled(subject: Subject) -> bool:
    """A polled provider (CalDAV) has no push channels: opening or stopping one is refused,
    finally (not retryable), so nothing keeps trying; the caller's push checks end there."""
    if subject.port.notification is not ChangeNotification.POLLING:
        return False
    with pytest.raises(ProviderError) as refused:
        subject.port.watch(subject.calendar_id, channel_id=str(uuid.uuid4()), address="http://127.0.0.1:9/", token="t")
    assert not refused.value.retryable
    with pytest.raises(ProviderError) as refused:
        subject.port.stop_watch(str(uuid.uuid4()), "no-such-resource")
    assert not refused.value.retryable
    return True
