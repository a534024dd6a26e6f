"""The emulated mailboxes: users, calendars, events and delta sync states, in memory.

One lock guards everything (the server is threaded). Times come from the clock passed in, so
tests move "now" instead of sleeping. Event times are kept as wall time in the zone the event
was written in (Outlook keeps ``originalStartTimeZone``); instants are derived when needed.

The Python methods whose names start with ``user_`` act as the Outlook user (create, move,
cancel, delete, including single occurrences of a series), so tests can make the changes a
person makes in Outlook without going through the API the CRM uses.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from devstack.microsoft.graph import recurrence as rrule
from devstack.microsoft.graph.faults import Calls, Faults
from devstack.microsoft.graph.subscriptions import (
    DELIVERY_TIMEOUT,
    VALIDATION_TIMEOUT,
    Dispatcher,
    Subscriptions,
)
from devstack.microsoft.graph.zones import UnknownTimeZone, to_zone, windows_name

Clock = Callable[[], datetime]

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
RESPONSES = ("none", "organizer", "accepted", "declined", "tentativelyAccepted", "notResponded")
#: Graph's default page size for calendarView delta is not documented; 50 is a guess.
DEFAULT_DELTA_PAGE = 50


class GraphError(Exception):
    """An error Graph answers with ``{"error": {"code", "message"}}`` and ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def bad_request(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", message)


@dataclass
class User:
    email: str
    display_name: str
    id: str


@dataclass
class Calendar:
    id: str
    owner: str
    name: str
    is_default: bool
    hex_color: str = ""
    can_edit: bool = True


@dataclass
class Event:
    """A stored event: a single instance, a series master, or an exception of a series."""

    id: str
    calendar_id: str
    owner: str
    subject: str
    body: dict[str, str]
    start: datetime  # naive wall time in ``zone``
    end: datetime  # naive wall time in ``end_zone``
    zone: str
    end_zone: str
    is_all_day: bool = False
    show_as: str = "busy"
    is_cancelled: bool = False
    response: str = "organizer"
    type: str = "singleInstance"
    series_master_id: str | None = None
    recurrence: dict[str, Any] | None = None
    original_start: datetime | None = None  # occurrences and exceptions: the series' slot
    extended: dict[str, str] = field(default_factory=dict)
    transaction_id: str | None = None
    version: int = 1
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    cancelled_dates: set[date] = field(default_factory=set)
    exceptions: dict[date, Event] = field(default_factory=dict)

    def starts_at(self) -> datetime:
        return self.start.replace(tzinfo=to_zone(self.zone))

    def ends_at(self) -> datetime:
        return self.end.replace(tzinfo=to_zone(self.end_zone))

    def change_key(self) -> str:
        digest = hashlib.sha256(f"{self.id}:{self.version}".encode()).digest()[:15]
        return base64.b64encode(digest).decode()

    def etag(self) -> str:
        return f'W/"{self.change_key()}"'


@dataclass
class DeltaRound:
    """What a ``$deltatoken`` names: the fixed window and what the client has been sent."""

    owner: str
    calendar_id: str
    window_start: datetime
    window_end: datetime
    known: dict[str, str]  # instance id → changeKey sent
    issued: datetime


@dataclass
class DeltaPage:
    """What a ``$skiptoken`` names: one page of a round, computed when the round began."""

    round: DeltaRound  # the state the round ends in (its deltaLink)
    items: list[dict[str, Any]]
    offset: int
    size: int
    delta_token: str
    issued: datetime


def _new_id(prefix: str) -> str:
    # Outlook ids are long opaque base64 strings; hex keeps '_' free for occurrence ids.
    return prefix + uuid.uuid4().hex + uuid.uuid4().hex[:16]


def occurrence_id(master_id: str, day: date) -> str:
    """The id of one occurrence of a series (a guess at a shape: real ids are opaque)."""
    return f"{master_id}_{day:%Y%m%d}"


def _parse_wall(value: Any, zone: str) -> datetime:
    """A dateTimeTimeZone's ``dateTime`` as naive wall time in ``zone`` (Graph sends up to 7
    fractional digits; an explicit offset is converted into ``zone``)."""
    if not isinstance(value, str) or not value:
        raise bad_request("dateTime is required")
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        rest = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise bad_request(f"dateTime {value!r} is not an ISO date-time") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(to_zone(zone)).replace(tzinfo=None)
    return moment


def _parse_time(payload: Any, name: str) -> tuple[datetime, str]:
    if not isinstance(payload, dict):
        raise bad_request(f"{name} must be a dateTimeTimeZone")
    zone = payload.get("timeZone") or "UTC"
    try:
        zone = windows_name(str(zone))
    except UnknownTimeZone as exc:
        raise GraphError(
            400, "TimeZoneNotSupportedException", f"A valid TimeZone value must be specified: {zone}"
        ) from exc
    return _parse_wall(payload.get("dateTime"), zone), zone


class GraphState:
    """All mailboxes of the emulator."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        delta_token_lifetime: timedelta = timedelta(days=7),
        validation_timeout: float = VALIDATION_TIMEOUT,
        delivery_timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.lock = threading.RLock()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        #: A delta or skip token older than this answers 410 Gone (a guess: Outlook's limit
        #: "depends on the size of the internal delta token cache", Microsoft Q&A 649481).
        self.delta_token_lifetime = delta_token_lifetime
        self.faults = Faults()
        #: Graph requests per signed-in mailbox (benchmarks count with it).
        self.calls = Calls()
        self.users: dict[str, User] = {}
        self.calendars: dict[str, Calendar] = {}
        self.events: dict[str, Event] = {}
        self.transactions: dict[tuple[str, str], str] = {}
        self.rounds: dict[str, DeltaRound] = {}
        self.pages: dict[str, DeltaPage] = {}
        #: Webhook deliveries, from their own thread (faults: drop, duplicate, delay, retry).
        self.notifications = Dispatcher(delivery_timeout)
        #: Change-notification subscriptions; tests lower ``validation_timeout`` (Graph: 10 s).
        self.subscriptions = Subscriptions(self.lock, self.clock, self.notifications, validation_timeout)

    # ----- users and calendars
    def add_user(self, email: str, display_name: str | None = None) -> User:
        """Add a mailbox with its default calendar ("Calendar"); idempotent."""
        with self.lock:
            if email in self.users:
                return self.users[email]
            user = User(email, display_name or email.split("@")[0].title(), str(uuid.uuid5(uuid.NAMESPACE_URL, email)))
            self.users[email] = user
            self.add_calendar(email, "Calendar", default=True)
            return user

    def add_calendar(self, email: str, name: str, *, default: bool = False, hex_color: str = "") -> Calendar:
        with self.lock:
            self._user(email)
            calendar = Calendar(_new_id("AAMkCal"), email, name, default, hex_color)
            self.calendars[calendar.id] = calendar
            return calendar

    def user_calendars(self, email: str) -> list[Calendar]:
        with self.lock:
            return [c for c in self.calendars.values() if c.owner == email]

    def default_calendar(self, email: str) -> Calendar:
        with self.lock:
            return next(c for c in self.user_calendars(email) if c.is_default)

    def calendar(self, email: str, calendar_id: str) -> Calendar:
        with self.lock:
            calendar = self.calendars.get(calendar_id)
            if calendar is None or calendar.owner != email:
                raise not_found()
            return calendar

    def _user(self, email: str) -> User:
        user = self.users.get(email)
        if user is None:
            raise KeyError(email)
        return user

    # ----- events: create, read, update, delete
    def create_event(self, email: str, calendar_id: str, body: dict[str, Any]) -> tuple[Event, bool]:
        """Create from a Graph event body; returns (event, created). A ``transactionId`` seen
        before for this user returns the event it created, not a duplicate."""
        with self.lock:
            calendar = self.calendar(email, calendar_id)
            if not calendar.can_edit:
                raise GraphError(403, "ErrorAccessDenied", "Access is denied.")
            txn = body.get("transactionId")
            if isinstance(txn, str) and txn:
                first = self.transactions.get((email, txn))
                if first is not None and first in self.events:
                    return self.events[first], False
            start, zone = _parse_time(body.get("start"), "start")
            end, end_zone = _parse_time(body.get("end"), "end")
            now = self.clock()
            event = Event(
                id=_new_id("AAMkAG"),
                calendar_id=calendar.id,
                owner=email,
                subject="",
                body={"contentType": "text", "content": ""},
                start=start,
                end=end,
                zone=zone,
                end_zone=end_zone,
                transaction_id=txn if isinstance(txn, str) and txn else None,
                created=now,
                modified=now,
            )
            self._apply(event, body, creating=True)
            self.events[event.id] = event
            if event.transaction_id:
                self.transactions[(email, event.transaction_id)] = event.id
            self._notify(event, "created")
            return event, True

    def get(self, email: str, event_id: str) -> Event:
        """A stored event, or the view of one occurrence (a copy); 404 when absent."""
        with self.lock:
            event = self.events.get(event_id)
            if event is not None and event.owner == email:
                return event
            master, day = self._occurrence_slot(email, event_id)
            if day in master.exceptions:
                return master.exceptions[day]
            return self._occurrence(master, day)

    def update_event(self, email: str, event_id: str, patch: dict[str, Any], if_match: str | None = None) -> Event:
        """PATCH semantics: only the given properties change. A stale ``If-Match`` is 412.
        Patching an occurrence makes it an exception of its series."""
        with self.lock:
            current = self.get(email, event_id)
            if if_match and if_match.strip() not in ("*", current.etag()):
                # Graph's answer to a stale change key, as its users report it
                # (microsoft-graph-docs-contrib#7934, davmail#491).
                raise GraphError(
                    412,
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key "
                    "passed in the request does not match the current change key for the item.",
                )
            target = self._writable(current)
            self._apply(target, patch, creating=False)
            self._notify(target, "updated")
            return target

    def delete_event(self, email: str, event_id: str) -> None:
        """Delete an event, a whole series (its master) or one occurrence."""
        with self.lock:
            event = self.events.get(event_id)
            if event is not None and event.owner == email:
                del self.events[event_id]
                self._notify(event, "deleted")
                return
            master, day = self._occurrence_slot(email, event_id)
            # The other occurrences keep their change keys, so a delta round reports only this
            # one (as removed), not the whole series.
            gone = self.get(email, event_id)
            master.exceptions.pop(day, None)
            master.cancelled_dates.add(day)
            # A guess: Graph's notification for one deleted occurrence names the occurrence.
            self._notify(gone, "deleted")

    def _notify(self, event: Event, change: str) -> None:
        """Tell the subscriptions of the event's calendar (queued; sent by the dispatcher)."""
        owner = self.users[event.owner]
        self.subscriptions.changed(owner.email, owner.id, event.calendar_id, event.id, event.etag(), change)

    def revoke_subscriptions(self, email: str) -> int:
        """The user's grant to the app is revoked: every subscription of the mailbox is removed,
        each with a ``subscriptionRemoved`` lifecycle notification. Returns how many."""
        return self.subscriptions.revoke(email)

    def _writable(self, current: Event) -> Event:
        """The stored event a write changes: an occurrence becomes an exception first."""
        if current.type != "occurrence":
            return current
        master = self.events[current.series_master_id or ""]
        assert current.original_start is not None
        exception = copy.deepcopy(current)
        exception.type = "exception"
        exception.version = master.version + 1
        master.exceptions[current.original_start.date()] = exception
        return exception

    def _occurrence_slot(self, email: str, event_id: str) -> tuple[Event, date]:
        master_id, _, stamp = event_id.rpartition("_")
        master = self.events.get(master_id)
        if master is None or master.owner != email or master.recurrence is None:
            raise not_found()
        try:
            day = datetime.strptime(stamp, "%Y%m%d").date()
        except ValueError as exc:
            raise not_found() from exc
        if day in master.cancelled_dates or (
            day not in master.exceptions and day not in self._series_dates(master, day)
        ):
            raise not_found()
        return master, day

    def _series_dates(self, master: Event, until: date) -> set[date]:
        assert master.recurrence is not None
        return set(rrule.dates(master.recurrence, until))

    def _occurrence(self, master: Event, day: date) -> Event:
        length = master.ends_at() - master.starts_at()
        start = datetime.combine(day, master.start.time())
        end = (start.replace(tzinfo=to_zone(master.zone)) + length).astimezone(to_zone(master.end_zone))
        return Event(
            id=occurrence_id(master.id, day),
            calendar_id=master.calendar_id,
            owner=master.owner,
            subject=master.subject,
            body=dict(master.body),
            start=start,
            end=end.replace(tzinfo=None),
            zone=master.zone,
            end_zone=master.end_zone,
            is_all_day=master.is_all_day,
            show_as=master.show_as,
            is_cancelled=master.is_cancelled,
            response=master.response,
            type="occurrence",
            series_master_id=master.id,
            original_start=start,
            extended=dict(master.extended),
            version=master.version,
            created=master.created,
            modified=master.modified,
        )

    def _touch(self, event: Event) -> None:
        event.version += 1
        event.modified = self.clock()

    def _apply(self, event: Event, body: dict[str, Any], *, creating: bool) -> None:
        """Validate and apply the writable properties of a Graph event body."""
        changed = dict(body)
        if "subject" in changed:
            event.subject = str(changed["subject"] or "")
        if "body" in changed:
            given = changed["body"] or {}
            if not isinstance(given, dict):
                raise bad_request("body must be an itemBody")
            event.body = {
                "contentType": str(given.get("contentType", "text")),
                "content": str(given.get("content", "")),
            }
        if "start" in changed and not creating:
            event.start, event.zone = _parse_time(changed["start"], "start")
        if "end" in changed and not creating:
            event.end, event.end_zone = _parse_time(changed["end"], "end")
        if "isAllDay" in changed:
            event.is_all_day = bool(changed["isAllDay"])
        if "showAs" in changed:
            if changed["showAs"] not in SHOW_AS:
                raise bad_request(f"showAs must be one of {', '.join(SHOW_AS)}")
            event.show_as = str(changed["showAs"])
        if "isCancelled" in changed:
            event.is_cancelled = bool(changed["isCancelled"])
        if "responseStatus" in changed:
            response = (changed["responseStatus"] or {}).get("response")
            if response not in RESPONSES:
                raise bad_request(f"responseStatus.response must be one of {', '.join(RESPONSES)}")
            event.response = str(response)
        if "singleValueExtendedProperties" in changed:
            props = changed["singleValueExtendedProperties"]
            if not isinstance(props, list) or not all(isinstance(p, dict) and "id" in p for p in props):
                raise bad_request("singleValueExtendedProperties must be a list of {id, value}")
            for prop in props:
                event.extended[str(prop["id"])] = str(prop.get("value", ""))
        if "recurrence" in changed:
            if event.type in ("occurrence", "exception"):
                raise bad_request("an occurrence cannot have its own recurrence")
            given_rec = changed["recurrence"]
            if given_rec is None:
                event.recurrence, event.type = None, "singleInstance"
                event.cancelled_dates.clear()
                event.exceptions.clear()
            else:
                try:
                    rrule.validate(given_rec)
                except rrule.RecurrenceError as exc:
                    raise bad_request(str(exc)) from exc
                event.recurrence, event.type = copy.deepcopy(given_rec), "seriesMaster"
        if event.ends_at() <= event.starts_at() and not (event.is_all_day and event.end > event.start):
            raise bad_request("end must be after start")
        if event.is_all_day and (
            event.start.time() != time(0) or event.end.time() != time(0) or event.end <= event.start
        ):
            # "If true, regardless of whether it's a single-day or multi-day event, start and
            # end time must be set to midnight and be in the same time zone" (resources/event).
            raise bad_request("an all-day event starts and ends at midnight")
        if not creating:
            self._touch(event)

    # ----- calendarView
    def instances(self, email: str, calendar_id: str, start: datetime, end: datetime) -> list[Event]:
        """The calendarView of [start, end): single events, occurrences and exceptions that
        overlap it, series masters expanded (not listed themselves)."""
        with self.lock:
            self.calendar(email, calendar_id)
            found: list[Event] = []
            for event in self.events.values():
                if event.calendar_id != calendar_id:
                    continue
                for instance in self._expand(event, end):
                    if instance.starts_at() < end and instance.ends_at() > start:
                        found.append(instance)
            found.sort(key=lambda e: (e.starts_at(), e.id))
            return found

    def _expand(self, event: Event, end: datetime) -> Iterator[Event]:
        if event.recurrence is None:
            yield event
            return
        until = end.astimezone(to_zone(event.zone)).date() + timedelta(days=1)
        for day in rrule.dates(event.recurrence, until):
            if day in event.cancelled_dates or day in event.exceptions:
                continue
            yield self._occurrence(event, day)
        yield from event.exceptions.values()

    # ----- delta rounds
    def new_round(self, email: str, calendar_id: str, start: datetime, end: datetime) -> DeltaRound:
        with self.lock:
            self.calendar(email, calendar_id)
            if end <= start:
                raise bad_request("endDateTime must be after startDateTime")
            return DeltaRound(email, calendar_id, start, end, {}, self.clock())

    def find_round(self, email: str, token: str) -> DeltaRound:
        with self.lock:
            found = self.rounds.get(token)
            if found is None or found.owner != email:
                raise sync_state_not_found()
            return found

    def find_page(self, email: str, token: str) -> DeltaPage:
        with self.lock:
            found = self.pages.get(token)
            if found is None or found.round.owner != email:
                raise sync_state_not_found()
            return found

    def too_old(self, issued: datetime) -> bool:
        return self.clock() - issued > self.delta_token_lifetime

    def changes(self, since: DeltaRound, render: Callable[[Event], dict[str, Any]], page_size: int) -> str:
        """Start the pages of a round from ``since``: everything in the window whose change
        key differs from what was sent, plus ``@removed`` for what left it. Returns the
        skiptoken of the first page."""
        with self.lock:
            current = self.instances(since.owner, since.calendar_id, since.window_start, since.window_end)
            items: list[dict[str, Any]] = []
            known: dict[str, str] = {}
            for instance in current:
                key = instance.change_key()
                known[instance.id] = key
                if since.known.get(instance.id) != key:
                    items.append(render(instance))
            for gone in sorted(set(since.known) - set(known)):
                items.append({"@odata.type": "#microsoft.graph.event", "id": gone, "@removed": {"reason": "deleted"}})
            now = self.clock()
            after = DeltaRound(since.owner, since.calendar_id, since.window_start, since.window_end, known, now)
            delta_token = secrets.token_urlsafe(24)
            self.rounds[delta_token] = after
            return self._page(DeltaPage(after, items, 0, page_size, delta_token, now))

    def next_page(self, page: DeltaPage) -> str:
        with self.lock:
            return self._page(
                DeltaPage(page.round, page.items, page.offset + page.size, page.size, page.delta_token, page.issued)
            )

    def _page(self, page: DeltaPage) -> str:
        token = secrets.token_urlsafe(24)
        self.pages[token] = page
        return token

    def forget_sync_states(self, email: str | None = None) -> int:
        """Drop delta and skip tokens (of one user, or all): using one then answers
        ``syncStateNotFound``. Returns how many were dropped."""
        with self.lock:
            rounds = [t for t, r in self.rounds.items() if email is None or r.owner == email]
            pages = [t for t, p in self.pages.items() if email is None or p.round.owner == email]
            for token in rounds:
                del self.rounds[token]
            for token in pages:
                del self.pages[token]
            return len(rounds) + len(pages)

    # ----- the Outlook user's own edits
    def user_create_event(self, email: str, body: dict[str, Any], calendar_id: str | None = None) -> Event:
        """The user creates an event in Outlook (a Graph event body; default calendar)."""
        with self.lock:
            return self.create_event(email, calendar_id or self.default_calendar(email).id, body)[0]

    def user_update(self, email: str, event_id: str, patch: dict[str, Any]) -> Event:
        """The user edits an event or one occurrence (which becomes an exception)."""
        return self.update_event(email, event_id, patch)

    def user_move(self, email: str, event_id: str, start: datetime, end: datetime) -> Event:
        """The user drags an event or one occurrence to [start, end) (aware datetimes)."""
        with self.lock:
            zone = self.get(email, event_id).zone
            tz = to_zone(zone)

            def wall(moment: datetime) -> dict[str, str]:
                return {"dateTime": moment.astimezone(tz).replace(tzinfo=None).isoformat(), "timeZone": zone}

            return self.update_event(email, event_id, {"start": wall(start), "end": wall(end)})

    def user_cancel(self, email: str, event_id: str) -> Event:
        """The organizer cancels the meeting (or one occurrence): it stays, ``isCancelled``."""
        return self.update_event(email, event_id, {"isCancelled": True})

    def user_delete(self, email: str, event_id: str) -> None:
        """The user deletes an event, a series, or one occurrence of a series."""
        self.delete_event(email, event_id)


def sync_state_not_found() -> GraphError:
    from devstack.microsoft.graph.faults import KINDS

    status, code, message = KINDS["sync_state_not_found"]
    return GraphError(status, code, message)
