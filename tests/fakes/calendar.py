"""An in-memory calendar provider behind :class:`crmsync.ports.calendar.CalendarPort`.

It behaves like the Google adapter over Google Calendar (``tests/contract/test_calendar_port.py``
runs the same cases over both):

- events are listed in the order they were first made, deleted ones as cancelled items that
  carry only their id (and etag); every change moves a change log that cursors point into;
- a full list keeps events ending after ``since``; an incremental list (from a cursor) returns
  every event changed since, deleted ones always, others if they end after the ``since`` of
  the full list the cursor descends from;
- ``create_event`` inserts under :func:`crmsync.domain.event_id_for` of the draft's key; a
  taken id (a retry) updates that event instead (bringing back a deleted one, as Google
  does); an id gone for good (its tombstone purged) makes the event under a new id;
- updating a deleted event brings it back; updating an unknown or purged one, or deleting
  a deleted one, is ``ProviderNotFound``;
- only events whose marker names this adapter's tenant come back with ``crm_appointment_id``.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from urllib.parse import urlsplit

from crmsync.domain import WRITABLE_ROLES, ExternalEvent, ProviderCalendar, StoredConnection, event_id_for
from crmsync.ports.calendar import (
    ChangeNotification,
    CreateIdempotency,
    EventDraft,
    EventPage,
    Watch,
    WrittenEvent,
)
from crmsync.ports.errors import CursorInvalid, PreconditionFailed, ProviderError, ProviderNotFound

__all__ = ["FakeCalendar", "FakeCalendarAccess"]

#: Google's default lifetime of a push channel.
CHANNEL_LIFETIME = timedelta(days=7)
_ETAGS = itertools.count(1)


def _whole_seconds(moment: datetime) -> datetime:
    """An instant as Google keeps it (UTC, whole seconds); naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("event times must be aware datetimes")
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass
class _Event:
    event_id: str
    summary: str | None
    start: datetime
    end: datetime
    time_zone: str | None
    #: (appointment id, tenant id, revision) of an event we wrote; None for the user's own.
    marker: tuple[str, str, int] | None = None
    location: str | None = None
    description: str | None = None
    attendees: tuple[str, ...] = ()
    transparent: bool = False
    event_type: str = "default"
    cancelled: bool = False
    etag: str = ""
    seq: int = 0
    #: The change that made it (the calendar's ``seq`` then).
    born: int = 0


@dataclass
class _Calendar:
    info: ProviderCalendar
    resource_id: str
    events: dict[str, _Event] = field(default_factory=dict)
    #: Ids whose tombstones were purged: Google never lets them be used again.
    purged: set[str] = field(default_factory=set)
    seq: int = 0
    generation: int = 0


@dataclass(frozen=True)
class _Cursor:
    calendar_id: str
    generation: int
    seq: int
    since: datetime | None


@dataclass(frozen=True)
class _Channel:
    calendar_id: str
    resource_id: str
    address: str
    token: str
    expires_at: datetime


class FakeCalendar:
    """The calendars of one connected account, in memory.

    ``tenant_id``: the CRM tenant of the connection (only its marker makes an event ours);
    ``email``: the account, whose primary calendar (role ``owner``) has the same id;
    ``page_size``: events per page of :meth:`event_pages`; ``clock``: the time watches expire
    from.
    """

    notification = ChangeNotification.PUSH_CHANNEL
    idempotency = CreateIdempotency.DERIVED_ID
    #: Set False to list like Graph's delta: a deletion is reported only to a cursor chain
    #: that listed the event (one made after the cursor and deleted since is not listed).
    reports_unseen_deletions = True

    def __init__(
        self,
        *,
        tenant_id: str,
        email: str = "user@example.com",
        page_size: int = 250,
        time_zone: str = "UTC",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.tenant_id = tenant_id
        self.email = email
        self.page_size = page_size
        self._clock = clock
        self._calendars: dict[str, _Calendar] = {}
        self._cursors: dict[str, _Cursor] = {}
        self._channels: dict[str, _Channel] = {}
        self._failures: list[tuple[str | None, Exception]] = []
        #: Port calls so far, by method name (``event_pages`` counts each page fetched).
        self.calls: Counter[str] = Counter()
        self.add_calendar(email, name=email, access_role="owner", primary=True, time_zone=time_zone)

    # ================================================================== the port
    def list_calendars(self) -> list[ProviderCalendar]:
        self._call("list_calendars")
        return [cal.info for cal in self._calendars.values()]

    def event_pages(self, calendar_id: str, *, cursor: str | None, since: datetime | None) -> Iterator[EventPage]:
        """A generator, like the adapter's: nothing is read (and nothing fails) before the
        first page is asked for. Each page fetched is one call."""
        self._call("event_pages")
        cal = self._calendar(calendar_id)
        if cursor:
            start = self._cursors.get(cursor)
            if start is None or start.calendar_id != cal.info.calendar_id:
                raise ProviderError(
                    "events.list: the cursor is not one of this calendar's.", retryable=False, status=400
                )
            if start.generation != cal.generation:
                raise CursorInvalid()
            window = start.since
            chosen = [
                e
                for e in cal.events.values()
                if e.seq > start.seq
                and (e.cancelled or _ends_after(e, window))
                and not (e.cancelled and e.born > start.seq and not self.reports_unseen_deletions)
            ]
        else:
            window = _whole_seconds(since) if since else None
            chosen = [e for e in cal.events.values() if _ends_after(e, window)]
        events = [self._external(e) for e in chosen]
        snapshot = _Cursor(cal.info.calendar_id, cal.generation, cal.seq, window)
        pages = [events[i : i + self.page_size] for i in range(0, len(events), self.page_size)] or [[]]
        for number, page in enumerate(pages):
            if number:
                self._call("event_pages")
            if number == len(pages) - 1:
                token = f"fake-cursor-{uuid.uuid4().hex}"
                self._cursors[token] = snapshot
                yield EventPage(page, token)
            else:
                yield EventPage(page, None)

    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        """Exactly the adapter's steps: insert under the derived id; a taken id → update it;
        not found on update (gone for good) → insert under a new id."""
        self._call("create_event")
        cal = self._writable(calendar_id)
        event_id = event_id_for(draft.key)
        if event_id not in cal.events and event_id not in cal.purged:
            return self._insert(cal, event_id, draft)
        if event_id in cal.events:
            return self._replace(cal, cal.events[event_id], draft)
        return self._insert(cal, f"fk{uuid.uuid4().hex}", draft)

    def created_event_id(self, key: str) -> str | None:
        return event_id_for(key)

    def update_event(
        self, calendar_id: str, event_id: str, draft: EventDraft, *, etag: str | None = None
    ) -> WrittenEvent:
        self._call("update_event")
        cal = self._writable(calendar_id)
        event = cal.events.get(event_id)
        if event is None:
            raise ProviderNotFound("events.update: not found at the provider.")
        if etag and etag != event.etag:
            raise PreconditionFailed("events.update: the resource changed at the provider.")
        if event.event_type != "default":
            raise ProviderError("events.update: the event type cannot be changed.", retryable=False, status=400)
        return self._replace(cal, event, draft)

    def event_exists(self, calendar_id: str, event_id: str) -> bool:
        self._call("event_exists")
        event = self._calendar(calendar_id).events.get(event_id)
        return event is not None and not event.cancelled

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        self._call("delete_event")
        cal = self._writable(calendar_id)
        event = cal.events.get(event_id)
        if event is None or event.cancelled:
            raise ProviderNotFound("events.delete: not found at the provider.")
        event.cancelled = True
        self._commit(cal, event)

    def watch(self, calendar_id: str, *, channel_id: str, address: str, token: str) -> Watch:
        self._call("watch")
        cal = self._calendar(calendar_id)
        parts = urlsplit(address)
        if not (parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname or ""))):
            raise ProviderError("events.watch: the address must be https.", retryable=False, status=400)
        self._prune_channels()
        if channel_id in self._channels:
            raise ProviderError("events.watch: the channel id is taken.", retryable=False, status=400)
        channel = _Channel(cal.info.calendar_id, cal.resource_id, address, token, self._clock() + CHANNEL_LIFETIME)
        self._channels[channel_id] = channel
        return Watch(channel_id=channel_id, resource_id=channel.resource_id, expires_at=channel.expires_at)

    def stop_watch(self, channel_id: str, resource_id: str) -> None:
        self._call("stop_watch")
        self._prune_channels()
        channel = self._channels.get(channel_id)
        if channel is None or channel.resource_id != resource_id:
            raise ProviderNotFound("channels.stop: not found at the provider.")
        del self._channels[channel_id]

    # ================================================================== test controls
    def add_calendar(
        self,
        calendar_id: str,
        *,
        name: str | None = None,
        access_role: str = "owner",
        primary: bool = False,
        time_zone: str | None = "UTC",
        color: str | None = None,
    ) -> ProviderCalendar:
        """Give the account another calendar (``access_role``: owner, writer, reader,
        freeBusyReader)."""
        if calendar_id in self._calendars:
            raise ValueError(f"calendar {calendar_id!r} exists")
        info = ProviderCalendar(calendar_id, name or calendar_id, access_role, primary, color, time_zone)
        self._calendars[calendar_id] = _Calendar(info, resource_id=f"fake-resource-{uuid.uuid4().hex[:16]}")
        return info

    def user_add(
        self,
        calendar_id: str,
        *,
        summary: str,
        start: datetime,
        end: datetime,
        time_zone: str | None = "UTC",
        transparent: bool = False,
        event_type: str = "default",
        event_id: str | None = None,
    ) -> ExternalEvent:
        """The user makes an event in the calendar app (no marker: not ours)."""
        cal = self._calendar(calendar_id)
        event_id = event_id or f"fk{uuid.uuid4().hex}"
        if event_id in cal.events or event_id in cal.purged:
            raise ValueError(f"event id {event_id!r} is taken")
        _check_times(start, end)
        event = _Event(
            event_id,
            summary,
            _whole_seconds(start),
            _whole_seconds(end),
            time_zone,
            transparent=transparent,
            event_type=event_type,
        )
        self._commit(cal, event)
        return self._external(event)

    def user_move(self, calendar_id: str, event_id: str, *, start: datetime, end: datetime) -> ExternalEvent:
        """The user drags an event to other times (its marker, if any, stays)."""
        return self.user_edit(calendar_id, event_id, start=start, end=end)

    def user_edit(
        self,
        calendar_id: str,
        event_id: str,
        *,
        summary: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        transparent: bool | None = None,
    ) -> ExternalEvent:
        """The user changes what is given of a live event."""
        cal = self._calendar(calendar_id)
        event = self._live(cal, event_id)
        new_start, new_end = start or event.start, end or event.end
        _check_times(new_start, new_end)
        event.start, event.end = _whole_seconds(new_start), _whole_seconds(new_end)
        if summary is not None:
            event.summary = summary
        if transparent is not None:
            event.transparent = transparent
        self._commit(cal, event)
        return self._external(event)

    def user_delete(self, calendar_id: str, event_id: str) -> None:
        """The user deletes a live event (it stays as a tombstone until purged)."""
        cal = self._calendar(calendar_id)
        event = self._live(cal, event_id)
        event.cancelled = True
        self._commit(cal, event)

    def invalidate_cursors(self, calendar_id: str | None = None, *, purge_deleted: bool = False) -> None:
        """Every cursor issued so far (for one calendar, or all) raises ``CursorInvalid``,
        like Google's 410. ``purge_deleted``: tombstones are forgotten too (a full list no
        longer shows them; their ids stay unusable)."""
        for cal in self._calendars.values():
            if calendar_id is None or cal.info.calendar_id == calendar_id:
                cal.generation += 1
                if purge_deleted:
                    for gone in [i for i, e in cal.events.items() if e.cancelled]:
                        del cal.events[gone]
                        cal.purged.add(gone)

    def as_tenant(self, tenant_id: str) -> FakeCalendar:
        """The same account as another CRM tenant's connection sees it: the calendars,
        events, cursors, channels, failures and call counts are shared; only whose marker
        makes an event ours differs."""
        view = copy.copy(self)
        view.tenant_id = tenant_id
        return view

    def fail_next(self, error: Exception, *, method: str | None = None, times: int = 1) -> None:
        """The next ``times`` calls (of ``method`` only, if given: a port method name) raise
        ``error`` instead of doing anything (each page of ``event_pages`` is a call)."""
        self._failures.extend([(method, error)] * times)

    def events(self, calendar_id: str | None = None, *, deleted: bool = False) -> list[ExternalEvent]:
        """What the calendar holds now, as this tenant's adapter would read it (not a call)."""
        cal = self._calendar(calendar_id or self.email)
        return [self._external(e) for e in cal.events.values() if deleted or not e.cancelled]

    def event(self, calendar_id: str, event_id: str) -> ExternalEvent | None:
        """One event (a deleted one as a cancelled item), or None (not a call)."""
        found = self._calendar(calendar_id).events.get(event_id)
        return self._external(found) if found else None

    def marker(self, calendar_id: str, event_id: str) -> tuple[str, str, int] | None:
        """The (appointment id, tenant id, revision) an event of ours carries, whatever the
        tenant (not a call)."""
        found = self._calendar(calendar_id).events.get(event_id)
        return found.marker if found else None

    def watches(self) -> dict[str, Watch]:
        """The live push channels, by channel id (not a call)."""
        self._prune_channels()
        return {cid: Watch(cid, ch.resource_id, ch.expires_at) for cid, ch in self._channels.items()}

    def channel_token(self, channel_id: str) -> str:
        """The token a live channel's notifications carry."""
        return self._channels[channel_id].token

    # ================================================================== internals
    def _call(self, method: str) -> None:
        self.calls[method] += 1
        for index, (wanted, error) in enumerate(self._failures):
            if wanted is None or wanted == method:
                del self._failures[index]
                raise error

    def _calendar(self, calendar_id: str) -> _Calendar:
        if calendar_id == "primary":
            calendar_id = self.email
        cal = self._calendars.get(calendar_id)
        if cal is None:
            raise ProviderNotFound("calendar: not found at the provider.")
        return cal

    def _writable(self, calendar_id: str) -> _Calendar:
        cal = self._calendar(calendar_id)
        if cal.info.access_role not in WRITABLE_ROLES:
            raise ProviderError("events: writer access to this calendar is required.", retryable=False, status=403)
        return cal

    @staticmethod
    def _live(cal: _Calendar, event_id: str) -> _Event:
        event = cal.events.get(event_id)
        if event is None or event.cancelled:
            raise KeyError(f"no live event {event_id!r}")
        return event

    def _insert(self, cal: _Calendar, event_id: str, draft: EventDraft) -> WrittenEvent:
        event = _Event(event_id, None, draft.start, draft.end, None)
        return self._replace(cal, event, draft)

    def _replace(self, cal: _Calendar, event: _Event, draft: EventDraft) -> WrittenEvent:
        _check_times(draft.start, draft.end)
        fresh = replace(
            event,
            summary=draft.title,
            start=_whole_seconds(draft.start),
            end=_whole_seconds(draft.end),
            time_zone=draft.time_zone,
            marker=(draft.key, draft.tenant_id, draft.revision),
            location=draft.location,
            description=draft.description,
            attendees=draft.attendees,
            transparent=False,
            cancelled=False,
        )
        self._commit(cal, fresh)
        return WrittenEvent(fresh.event_id, fresh.etag)

    @staticmethod
    def _commit(cal: _Calendar, event: _Event) -> None:
        cal.seq += 1
        event.seq = cal.seq
        if event.event_id not in cal.events:
            event.born = cal.seq
        event.etag = f'"fake-{next(_ETAGS)}"'
        cal.events[event.event_id] = event

    def _external(self, event: _Event) -> ExternalEvent:
        if event.cancelled:
            return ExternalEvent.gone(event.event_id, etag=event.etag)
        ours = event.marker[0] if event.marker and event.marker[1] == self.tenant_id else None
        return ExternalEvent(
            event_id=event.event_id,
            cancelled=False,
            start=event.start,
            end=event.end,
            start_date=None,
            end_date=None,
            transparent=event.transparent,
            declined=False,
            summary=event.summary,
            etag=event.etag,
            crm_appointment_id=ours,
            time_zone=event.time_zone,
            event_type=event.event_type,
        )

    def _prune_channels(self) -> None:
        now = self._clock()
        for channel_id in [c for c, ch in self._channels.items() if ch.expires_at <= now]:
            del self._channels[channel_id]


def _ends_after(event: _Event, since: datetime | None) -> bool:
    return since is None or event.end > since


def _check_times(start: datetime, end: datetime) -> None:
    if _whole_seconds(end) < _whole_seconds(start):
        raise ProviderError("events: the end is before the start.", retryable=False, status=400)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class FakeCalendarAccess:
    """Opens each stored connection's :class:`FakeCalendar` (one per connection id, made on
    first use for the connection's tenant and email), like the composition root's
    ``CalendarAccess``."""

    def __init__(self, *, page_size: int = 250, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._page_size = page_size
        self._clock = clock
        self._calendars: dict[str, FakeCalendar] = {}
        #: Connection ids in the order they were opened (one entry per ``calendar`` call).
        self.opened: list[str] = []

    def calendar(self, stored: StoredConnection) -> FakeCalendar:
        connection = stored.connection
        self.opened.append(connection.connection_id)
        found = self._calendars.get(connection.connection_id)
        if found is None:
            found = FakeCalendar(
                tenant_id=connection.tenant_id, email=connection.email, page_size=self._page_size, clock=self._clock
            )
            self._calendars[connection.connection_id] = found
        return found

    def of(self, connection_id: str) -> FakeCalendar:
        """The calendar of a connection (``KeyError`` if it was never opened nor put)."""
        return self._calendars[connection_id]

    def put(self, connection_id: str, calendar: FakeCalendar) -> FakeCalendar:
        """Use ``calendar`` for this connection (to seed it before the code under test opens it)."""
        self._calendars[connection_id] = calendar
        return calendar
