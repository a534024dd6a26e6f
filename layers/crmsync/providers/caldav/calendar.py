"""CalDAV calendars (iCloud, any RFC 4791 server) behind the calendar port.

Ids: a calendar is its collection's absolute URL (as the server's home listing names it); an
event is its resource's name in the collection, and an instance of a recurring series is
``<name>@<original start, UTC basic format>`` (:func:`crmsync.ports.calendar.resource_of`).
The server reports whole resources, so every page says which resources it lists completely
(``EventPage.whole_resources``): the sync then removes the instances a series lost.

Cursors are opaque to the sync; inside (docs/CALDAV.md): the RFC 6578 sync token and the
listing's window start, or, for servers without ``sync-collection``, the collection's ctag
and a compact digest map of its members' etags.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from crmsync.domain import ExternalEvent, ProviderCalendar, event_id_for
from crmsync.ports.calendar import (
    INSTANCE_SEPARATOR,
    ChangeNotification,
    CreateIdempotency,
    EventDraft,
    EventPage,
    Watch,
    WrittenEvent,
    resource_of,
)
from crmsync.ports.errors import (
    CursorInvalid,
    PreconditionFailed,
    ProviderDuplicate,
    ProviderError,
    ProviderNotFound,
)
from crmsync.providers.caldav.client import DavClient, DavResource, Discovery
from crmsync.providers.caldav.ical import PROP_KEY, OccurrenceGone, draft_ics, instances, occurrence_ics, zone_of

__all__ = ["HORIZON", "CalDavCalendar"]

log = logging.getLogger(__name__)

#: How far past the window's start recurring series are expanded: the largest look-ahead a
#: user can choose (``window_days_ahead`` ≤ 730). Google expands without a bound.
HORIZON = timedelta(days=730)
#: The window's start when a full listing names none.
DEFAULT_BACK = timedelta(days=30)
#: Statuses of a ``sync-collection`` REPORT that mean "not supported here" (fallback).
_UNSUPPORTED = frozenset({403, 405, 415, 501})


class CalDavCalendar:
    """The calendars of one CalDAV account, for one CRM tenant (only that tenant's marker
    makes an event ours). Discovery runs once per instance unless the hrefs are given."""

    notification = ChangeNotification.POLLING
    idempotency = CreateIdempotency.CLIENT_UID
    #: A sync-collection report lists deleted members, listed before or not (RFC 6578), but
    #: the ctag fallback diffs against the last listing's members: a member made and deleted
    #: in between is in neither. The mode is the cursor's, unknown to a push, so: False.
    reports_unseen_deletions = False

    def __init__(
        self,
        client: DavClient,
        *,
        tenant_id: str,
        home_url: str | None = None,
        principal_url: str | None = None,
        page_size: int = 250,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._tenant_id = tenant_id
        self._home_url = home_url
        self._principal_url = principal_url
        self._page_size = page_size
        self._clock = clock

    # ------------------------------------------------------------------ account
    def discover(self) -> Discovery:
        """Validate the credentials and find the account's principal and calendar home
        (``AuthRevoked`` for a wrong password): what the connect flow stores."""
        found = self._client.discover()
        self._home_url, self._principal_url = found.home_url, found.principal_url
        return found

    def _home(self) -> str:
        if self._home_url is None:
            self.discover()
        assert self._home_url is not None
        return self._home_url

    def list_calendars(self) -> list[ProviderCalendar]:
        """The home's event calendars; the first writable one (in the server's order) is
        primary: CalDAV has no primary calendar."""
        calendars: list[ProviderCalendar] = []
        for found in self._client.calendars(self._home()):
            primary = found.access_role in ("owner", "writer") and not any(c.primary for c in calendars)
            calendars.append(
                ProviderCalendar(
                    calendar_id=found.url,
                    name=found.name,
                    access_role=found.access_role,
                    primary=primary,
                    color=(found.color or "")[:7] or None,
                    time_zone=_zone_name(zone_of(found.time_zone)),
                )
            )
        return calendars

    # ------------------------------------------------------------------ listing
    def event_pages(self, calendar_id: str, *, cursor: str | None, since: datetime | None) -> Iterator[EventPage]:
        """Incremental from ``cursor`` (its window start is the full listing's), otherwise
        everything ending after ``since`` (30 days back when not given), up to
        :data:`HORIZON` after it."""
        state = _decode(cursor) if cursor else None
        if state is None:
            start = (since or self._clock() - DEFAULT_BACK).astimezone(UTC)
            state = {"since": start.isoformat()}
        window_start = datetime.fromisoformat(state["since"])
        window = (window_start, window_start + HORIZON)
        if state.get("mode") == "ctag":
            yield from self._ctag_pages(calendar_id, state, window)
            return
        try:
            result = self._client.sync_collection(calendar_id, state.get("token", ""))
        except CursorInvalid:
            raise
        except ProviderError as exc:
            if exc.status not in _UNSUPPORTED:
                raise
            if cursor:
                # A server that dropped sync-collection: our token means nothing there now.
                raise CursorInvalid() from exc
            yield from self._ctag_pages(calendar_id, {"since": state["since"]}, window)
            return
        next_cursor = _encode({"mode": "sync", "since": state["since"], "token": result.token})
        yield from self._pages(calendar_id, result.changed, result.removed, window, next_cursor)

    def _ctag_pages(
        self, calendar_id: str, state: dict[str, Any], window: tuple[datetime, datetime]
    ) -> Iterator[EventPage]:
        """The fallback: an unchanged ctag is a one-request no-op; otherwise the members'
        etags are compared with the digests the cursor kept."""
        ctag, _ = self._client.collection_state(calendar_id)
        if state.get("ctag") and ctag == state["ctag"]:
            yield EventPage([], _encode(state))
            return
        current = self._client.etags(calendar_id)
        digests = {_name(href): _digest(etag) for href, etag in current.items()}
        known: dict[str, str] = state.get("etags") or {}
        changed = [
            DavResource(href, etag) for href, etag in current.items() if known.get(_name(href)) != digests[_name(href)]
        ]
        removed = [urljoin(calendar_id, quote(name)) for name in known if name not in digests]
        next_cursor = _encode({"mode": "ctag", "since": state["since"], "ctag": ctag, "etags": digests})
        yield from self._pages(calendar_id, changed, removed, window, next_cursor)

    def _pages(
        self,
        calendar_id: str,
        changed: list[DavResource],
        removed: list[str],
        window: tuple[datetime, datetime],
        next_cursor: str,
    ) -> Iterator[EventPage]:
        """Pages of about ``page_size`` events; a resource's instances never straddle pages.
        The first page is a tenth of that (25 events at least, never more than a page),
        read with a small first multiget: the caller stores it while the rest is fetched (a
        full sync otherwise waits for a whole page of reads and parsing before its first
        write; docs/PERFORMANCE.md)."""
        events: list[ExternalEvent] = [ExternalEvent.gone(_name(href)) for href in removed]
        whole: set[str] = {_name(href) for href in removed}
        floating: tzinfo | None = None
        if changed:
            floating = self._calendar_zone(calendar_id)
        etags = {_name(r.url): r.etag for r in changed}
        limit = first = max(self._page_size // 10, min(self._page_size, 25))
        for resource in self._client.multiget(calendar_id, [r.url for r in changed], first=first):
            key = _name(resource.url)
            if resource.data is None:
                continue
            try:
                found = instances(
                    resource.data,
                    key,
                    etag=resource.etag or etags.get(key),
                    tenant_id=self._tenant_id,
                    account=self._client.username,
                    window=window,
                    floating=floating,
                )
            except ProviderError:
                # One broken calendar object must not stop the calendar's sync for good: it
                # counts as having no instances (its content is never logged).
                log.warning("unreadable calendar object skipped", extra={"resource": key})
                found = []
            events.extend(found)
            whole.add(key)
            if len(events) >= limit:
                yield EventPage(events, None, frozenset(whole))
                events, whole, limit = [], set(), self._page_size
        yield EventPage(events, next_cursor, frozenset(whole))

    def _calendar_zone(self, calendar_id: str) -> tzinfo | None:
        """The zone floating times are read in: the calendar's ``calendar-timezone`` (asked
        only when something changed, so a no-op poll stays one request)."""
        return zone_of(self._client.calendar_timezone(calendar_id))

    # ------------------------------------------------------------------ writes
    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        """PUT under a UID derived from our key with ``If-None-Match: *``: a retry after a
        lost answer gets 412, finds its own resource there and updates it. A 412 with nothing
        there (deleted meanwhile, or a refusal on the way) creates it, still only if absent.
        A second 412 (the resource keeps changing under us) is a retryable error: the queue
        tries again later, and the appointment is never given up as failed for it."""
        self._check(draft)
        uid = event_id_for(draft.key)
        name = self.created_event_id(draft.key)
        url = self._url(calendar_id, name)
        body = draft_ics(draft, uid, stamp=self._clock())
        try:
            return WrittenEvent(name, self._client.put(url, body, create=True))
        except PreconditionFailed:
            pass
        try:
            try:
                existing = self._client.get(url)
            except ProviderNotFound:
                return WrittenEvent(name, self._client.put(url, body, create=True))
            if f"{PROP_KEY}:{draft.key}" not in (existing.data or "").replace("\r\n ", ""):
                raise ProviderDuplicate(f"CalDAV: the resource {name} is someone else's.")
            return WrittenEvent(name, self._client.put(url, body, if_match=existing.etag or "*"))
        except PreconditionFailed:
            raise ProviderError(
                f"CalDAV: {name} kept changing while it was created.", retryable=True, status=412
            ) from None

    def created_event_id(self, key: str) -> str:
        return f"{event_id_for(key)}.ics"

    def update_event(
        self, calendar_id: str, event_id: str, draft: EventDraft, *, etag: str | None = None
    ) -> WrittenEvent:
        """PUT with ``If-Match`` (the given etag, else ``*``: the resource must exist, so a
        gone one is ``ProviderNotFound`` and never silently recreated). An occurrence of a
        series (``<name>@<original start>``) becomes an override in its series' resource
        (:meth:`_write_occurrence`)."""
        self._check(draft)
        name = resource_of(event_id)
        if name != event_id:
            return self._write_occurrence(calendar_id, event_id, draft, etag=etag)
        url = self._url(calendar_id, name)
        uid = name.removesuffix(".ics")
        if etag is None:
            current = self._client.get(url)
            uid = _uid_of(current.data) or uid
        body = draft_ics(draft, uid, stamp=self._clock())
        try:
            return WrittenEvent(name, self._client.put(url, body, if_match=etag or "*"))
        except PreconditionFailed:
            if etag is None:
                raise ProviderNotFound(f"CalDAV: {name} is gone.") from None
            raise

    def event_exists(self, calendar_id: str, event_id: str) -> bool:
        """GET the event's resource (an occurrence's: its series; our creates are single
        events); 404 → False."""
        try:
            self._client.get(self._url(calendar_id, resource_of(event_id)))
        except ProviderNotFound:
            return False
        return True

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """DELETE the resource; an occurrence of a series gets an EXDATE instead (the rest
        of the series stays)."""
        name = resource_of(event_id)
        if name != event_id:
            self._write_occurrence(calendar_id, event_id, None)
            return
        self._client.delete(self._url(calendar_id, name))

    def _write_occurrence(
        self, calendar_id: str, event_id: str, draft: EventDraft | None, *, etag: str | None = None
    ) -> WrittenEvent:
        """Move (``draft``) or cancel (None) one occurrence: GET the series, merge, PUT the
        whole resource with ``If-Match`` its etag. A 412 means someone changed the series
        meanwhile (another occurrence, often): refetch and merge once more, so their change
        and ours both stay; a second 412 is a retryable error (the queue tries again later:
        the CRM's change is not given up because the series is busy). An instance's etag is
        its resource's (as the listing reports it), so a given ``etag`` must still be the
        resource's: otherwise ``PreconditionFailed``."""
        name = resource_of(event_id)
        suffix = event_id[len(name) + len(INSTANCE_SEPARATOR) :]
        url = self._url(calendar_id, name)
        for _attempt in range(2):
            current = self._client.get(url)
            current_etag = current.etag or self._client.etag(url)
            if etag is not None and current_etag != etag:
                raise PreconditionFailed(f"CalDAV: {name} changed since {etag}.")
            try:
                body = occurrence_ics(current.data or "", suffix, draft, stamp=self._clock())
            except OccurrenceGone:
                raise ProviderNotFound(f"CalDAV: {event_id} is not an occurrence of its series.") from None
            try:
                return WrittenEvent(event_id, self._client.put(url, body, if_match=current_etag or "*"))
            except PreconditionFailed:
                if etag is not None:
                    raise
                log.info("series changed while writing one occurrence; merging again", extra={"resource": name})
        raise ProviderError(
            f"CalDAV: {name} kept changing while one occurrence was written.", retryable=True, status=412
        )

    @staticmethod
    def _check(draft: EventDraft) -> None:
        if draft.end < draft.start:
            raise ProviderError("CalDAV: the event ends before it starts.", retryable=False, status=400)

    @staticmethod
    def _url(calendar_id: str, name: str) -> str:
        return urljoin(calendar_id.rstrip("/") + "/", quote(name, safe="@"))

    # ------------------------------------------------------------------ no push
    def watch(self, calendar_id: str, *, channel_id: str, address: str, token: str) -> Watch:
        raise ProviderError("CalDAV has no push channels: calendars are polled.", retryable=False)

    def stop_watch(self, channel_id: str, resource_id: str) -> None:
        raise ProviderError("CalDAV has no push channels: calendars are polled.", retryable=False)


def _name(href: str) -> str:
    """A member's key: its last path segment, unescaped."""
    return unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])


def _digest(etag: str | None) -> str:
    return hashlib.sha256((etag or "").encode()).hexdigest()[:12]


def _uid_of(data: str | None) -> str | None:
    for line in (data or "").replace("\r\n ", "").splitlines():
        if line.startswith("UID:"):
            return line[4:].strip()
    return None


def _zone_name(zone: tzinfo | None) -> str | None:
    return getattr(zone, "key", None)


def _encode(state: dict[str, Any]) -> str:
    raw = zlib.compress(json.dumps(state, separators=(",", ":"), sort_keys=True).encode(), 9)
    return "cd1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any] | None:
    """The cursor's state; a cursor we cannot read is invalid (list in full)."""
    if not cursor.startswith("cd1."):
        raise CursorInvalid()
    payload = cursor[4:]
    try:
        state: dict[str, Any] = json.loads(
            zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        )
    except (ValueError, zlib.error) as exc:
        raise CursorInvalid() from exc
    return state
