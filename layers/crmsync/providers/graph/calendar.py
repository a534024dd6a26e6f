"""Microsoft Graph v1.0 calendars behind the calendar port, on plain ``requests``.

Why not ``msgraph-sdk``: it is an async kiota stack (httpx, and an event loop under our
synchronous Lambda code), and its import is a large cold-start cost (kiota plus generated
models; not measured here) that issue 17 counts; the few routes we need are plain JSON.

Ids are Graph's own (opaque): an occurrence or an exception of a series has its own id and
is patched or deleted like any event (Graph turns a patched occurrence into an exception), so
no instance suffix is needed (:func:`crmsync.ports.calendar.resource_of` returns it whole).

Cursors are opaque to the sync; inside (docs/GRAPH.md): the round's ``@odata.deltaLink``
(relative to the base URL) and its fixed window, compressed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from crmsync.domain import ExternalEvent, ProviderCalendar
from crmsync.ports.calendar import (
    ChangeNotification,
    CreateIdempotency,
    EventDraft,
    EventPage,
    Watch,
    WrittenEvent,
)
from crmsync.ports.errors import (
    AuthRevoked,
    CursorInvalid,
    PreconditionFailed,
    ProviderError,
    ProviderNotFound,
    RateLimited,
)

__all__ = ["BLOCKING_SHOW_AS", "GRAPH_BASE_URL", "HORIZON", "MARKER_PROPERTIES", "GraphCalendar", "iana_zone"]

#: Production base URL; tests and the local stack pass the emulator's.
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
#: The delta round's window: from ``since`` (30 days back when not given) to 730 days after
#: it, the largest look-ahead a user can choose (as CalDAV's HORIZON).
HORIZON = timedelta(days=730)
DEFAULT_BACK = timedelta(days=30)
#: A round whose window ends less than this far ahead is renewed: the cursor counts as
#: invalid and the sync lists in full over a new window (Graph's window is fixed per round,
#: learn.microsoft.com/graph/delta-query-events).
ROLL_AHEAD = timedelta(days=365)
#: (connect, read) seconds on every request.
TIMEOUT = (5, 30)
#: ``Prefer: odata.maxpagesize`` of the delta pages. Graph caps a preference above its own
#: limit (not documented for calendarView/delta), so asking for more costs nothing; at 100 a
#: page, a full sync spent a third of its time between pages (docs/PERFORMANCE.md, Graph).
PAGE_SIZE = 1000
#: A subscription's lifetime: just under the 10,080 minutes Graph allows for Outlook events
#: (learn.microsoft.com/graph/api/resources/subscription, "Subscription lifetime"), with an
#: hour's margin for a clock a little ahead of Graph's. Channels renew it 24 h before expiry.
SUBSCRIPTION_LIFETIME = timedelta(minutes=10_080) - timedelta(hours=1)
#: What a subscription on a calendar's events is told about: everything the sync reads.
SUBSCRIPTION_CHANGES = "created,updated,deleted"

#: Our markers: single-value extended properties, each a String named in one fixed property
#: set GUID of ours (learn.microsoft.com/graph/api/resources/singlevaluelegacyextendedproperty:
#: ``String {guid} Name name``), written on every create and update. calendarView/delta does
#: not support ``$expand`` (techcommunity.microsoft.com idea 3222051, citing event-delta's
#: OData parameters), so listings recognise our events by their ``transactionId``
#: (:func:`transaction_id`); these are for a read of one event and for support staff.
_MARKER_SET = "{8c3f5a52-6d1e-4b8f-9a07-3e2b7c41d9a6}"
PROP_APPOINTMENT = f"String {_MARKER_SET} Name crmAppointmentId"
PROP_TENANT = f"String {_MARKER_SET} Name crmTenantId"
PROP_REVISION = f"String {_MARKER_SET} Name crmRevision"
MARKER_PROPERTIES = (PROP_APPOINTMENT, PROP_TENANT, PROP_REVISION)
#: ``crm.<appointment key>.<tenant tag>``: see :func:`transaction_id`.
_TRANSACTION = re.compile(r"^crm\.([0-9a-f]{1,64})\.([0-9a-f]{16})$")

#: ``showAs`` values that block time (learn.microsoft.com/graph/api/resources/event: free,
#: tentative, busy, oof, workingElsewhere, unknown). Free and workingElsewhere do not: someone
#: working from another place is still available for a booking; tentative and unknown block
#: (the safe side against a double booking).
BLOCKING_SHOW_AS = frozenset({"tentative", "busy", "oof", "unknown"})

_IANA_TO_WINDOWS = {iana: windows for windows, iana in sorted(WINDOWS_TO_OLSON.items())}


def iana_zone(name: str | None) -> str | None:
    """The IANA name of a Windows time-zone name (Outlook's ``originalStartTimeZone``), from
    CLDR's windowsZones as the ``icalendar`` package ships it; an IANA name stays; unknown →
    None."""
    if not name:
        return None
    if name in ("UTC", "Etc/UTC", "tzone://Microsoft/Utc"):
        return "UTC"
    candidate = WINDOWS_TO_OLSON.get(name, name)
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return candidate


def _windows_zone(iana: str) -> str:
    """The Windows name for an IANA zone (CLDR), as Outlook itself writes zones (its
    ``originalStartTimeZone``); Graph takes IANA names too, but a Windows name is what every
    Outlook client knows. UTC stays UTC."""
    if iana in ("UTC", "Etc/UTC"):
        return "UTC"
    return _IANA_TO_WINDOWS.get(iana, iana)


class GraphCalendar:
    """The calendars of one connected Microsoft account, for one CRM tenant.

    Change notifications: :meth:`watch` opens a Graph subscription on a calendar's events,
    :meth:`renew_watch` renews it (which also reauthorizes it), :meth:`stop_watch` deletes it."""

    notification = ChangeNotification.SUBSCRIPTION
    idempotency = CreateIdempotency.TRANSACTION_ID
    #: A delta round reports ``@removed`` only for instances it sent (docs/GRAPH.md).
    reports_unseen_deletions = False

    def __init__(
        self,
        base_url: str,
        access_token: Callable[[], str],
        *,
        tenant_id: str,
        page_size: int = PAGE_SIZE,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lifecycle_url: str = "",
    ) -> None:
        """``access_token`` is asked before every request (MSAL's cache refreshes it);
        ``page_size`` is ``Prefer: odata.maxpagesize`` of the delta pages;
        ``lifecycle_url``: where Graph sends a subscription's lifecycle notifications (it can
        only be set when the subscription is created; empty: none are asked for)."""
        self._base = base_url.rstrip("/")
        self._lifecycle_url = lifecycle_url
        self._token = access_token
        self._tenant_id = tenant_id
        self._page_size = page_size
        self._session = session or requests.Session()
        self._clock = clock

    # ------------------------------------------------------------------ HTTP
    def _request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        delta: bool = False,
    ) -> requests.Response:
        full = url if url.startswith(("http://", "https://")) else self._base + url
        sent = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json", **(headers or {})}
        try:
            response = self._session.request(method, full, json=json_body, headers=sent, params=params, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ProviderError(f"Graph {what}: {type(exc).__name__}", retryable=True) from exc
        if response.status_code >= 400:
            raise _error(response, what, delta=delta, conditional="If-Match" in sent)
        return response

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderError(f"Graph {what}: the answer is not JSON.", retryable=True) from exc
        if not isinstance(body, dict):
            raise ProviderError(f"Graph {what}: the answer is not a JSON object.", retryable=True)
        return body

    # ------------------------------------------------------------------ calendars
    def list_calendars(self) -> list[ProviderCalendar]:
        """``/me/calendars``, every page. The role: not ``canEdit`` → reader; editable and
        ``canShare`` (only the calendar's creator may share it, learn.microsoft.com/graph/api/
        resources/calendar) → owner; editable only (shared with write access) → writer. Graph
        calendars carry no time zone."""
        calendars: list[ProviderCalendar] = []
        url: str | None = "/me/calendars"
        while url:
            page = self._json(self._request("GET", url, "calendars"), "calendars")
            for entry in page.get("value") or []:
                role = ("owner" if entry.get("canShare") else "writer") if entry.get("canEdit") else "reader"
                color = entry.get("hexColor") or None
                calendars.append(
                    ProviderCalendar(
                        calendar_id=str(entry["id"]),
                        name=str(entry.get("name") or entry["id"]),
                        access_role=role,
                        primary=bool(entry.get("isDefaultCalendar")),
                        color=color,
                        time_zone=None,
                    )
                )
            url = page.get("@odata.nextLink")
        return calendars

    # ------------------------------------------------------------------ listing
    def event_pages(self, calendar_id: str, *, cursor: str | None, since: datetime | None) -> Iterator[EventPage]:
        """A ``calendarView/delta`` round: from the cursor's deltaLink, or a first request over
        [since (30 days back when not given), +730 days]; a page per Graph page
        (``@odata.nextLink``), the last one's cursor holds the new deltaLink and the window.
        Times come in UTC (``Prefer: outlook.timezone="UTC"``)."""
        if cursor:
            state = _decode(cursor)
            window_end = datetime.fromisoformat(state["end"])
            if window_end - self._clock() < ROLL_AHEAD:
                raise CursorInvalid("Graph: the delta round's window has rolled; a new round starts.")
            window_start = datetime.fromisoformat(state["start"])
            url = self._absolute(state["link"])
            if not self._ours_link(url):
                raise CursorInvalid("Graph: the cursor's link is not on this adapter's base URL.")
        else:
            window_start = (since or self._clock() - DEFAULT_BACK).astimezone(UTC)
            window_end = window_start + HORIZON
            url = f"{self._base}/me/calendars/{quote(calendar_id, safe='')}/calendarView/delta"
        params: dict[str, str] | None = None
        if not cursor:
            params = {"startDateTime": _utc(window_start), "endDateTime": _utc(window_end)}
        headers = {"Prefer": f'outlook.timezone="UTC", odata.maxpagesize={self._page_size}'}
        while True:
            response = self._request("GET", url, "calendarView/delta", headers=headers, params=params, delta=True)
            page = self._json(response, "calendarView/delta")
            events = [event for raw in page.get("value") or [] if (event := self._parse(raw)) is not None]
            if page.get("@odata.nextLink"):
                url, params = str(page["@odata.nextLink"]), None
                if not self._ours_link(url):
                    raise ProviderError("Graph calendarView/delta: a nextLink off the base URL.", retryable=False)
                yield EventPage(events, None)
                continue
            link = page.get("@odata.deltaLink")
            if not link:
                raise ProviderError("Graph calendarView/delta: the last page carried no deltaLink.", retryable=True)
            state = {"link": self._relative(str(link)), "start": _utc(window_start), "end": _utc(window_end)}
            yield EventPage(events, _encode(state))
            return

    def _absolute(self, link: str) -> str:
        return link if link.startswith(("http://", "https://")) else self._base + link

    def _ours_link(self, link: str) -> bool:
        """Whether a link is on our base URL: the bearer token goes with every request, so a
        link elsewhere (a cursor not written by us, an odd answer) is never followed."""
        return link.startswith(self._base + "/")

    def _relative(self, link: str) -> str:
        # Compact cursors: the base URL is the adapter's, not the cursor's.
        return link[len(self._base) :] if link.startswith(self._base + "/") else link

    def _parse(self, raw: dict[str, Any]) -> ExternalEvent | None:
        """A delta item as the port's event; a series master is not an instance (None)."""
        if "@removed" in raw:
            return ExternalEvent.gone(str(raw["id"]))
        if raw.get("type") == "seriesMaster":
            return None
        ours = self._ours(raw)
        start, end = raw.get("start") or {}, raw.get("end") or {}
        all_day = bool(raw.get("isAllDay"))
        response = (raw.get("responseStatus") or {}).get("response")
        return ExternalEvent(
            event_id=str(raw["id"]),
            cancelled=bool(raw.get("isCancelled")),
            start=None if all_day else _instant(start),
            end=None if all_day else _instant(end),
            start_date=_day(start) if all_day else None,
            end_date=_day(end) if all_day else None,
            transparent=raw.get("showAs") not in BLOCKING_SHOW_AS,
            declined=response == "declined",
            summary=raw.get("subject"),
            etag=raw.get("@odata.etag"),
            crm_appointment_id=ours or None,
            time_zone=iana_zone(raw.get("originalStartTimeZone")),
        )

    def _ours(self, raw: dict[str, Any]) -> str | None:
        """Our appointment key if the event is ours, for our tenant only, from its
        ``transactionId`` ("only returned in a response payload if an app has set it",
        learn.microsoft.com/graph/api/resources/event)."""
        found = _TRANSACTION.match(str(raw.get("transactionId") or ""))
        if found and found.group(2) == _tenant_tag(self._tenant_id):
            return found.group(1)
        return None

    # ------------------------------------------------------------------ writes
    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        """POST with a ``transactionId`` derived from the draft's key and tenant: Graph
        answers a repeated one with the first create's event instead of a duplicate
        (learn.microsoft.com/graph/api/resources/event, ``transactionId``)."""
        body = self._body(draft)
        body["transactionId"] = transaction_id(draft)
        response = self._request(
            "POST",
            f"/me/calendars/{quote(calendar_id, safe='')}/events",
            "create event",
            json_body=body,
        )
        created = self._json(response, "create event")
        written = WrittenEvent(str(created["id"]), created.get("@odata.etag"))
        if not _shows(created, draft):
            # The transactionId was seen before (a create whose answer was lost) and Graph
            # answered with that first event, written from the revision of then: the
            # appointment changed meanwhile (moved, renamed), so this revision is written over it.
            return self.update_event(calendar_id, written.event_id, draft)
        return written

    def created_event_id(self, key: str) -> str | None:
        """Graph chooses event ids: a lost create is found again by its transactionId."""
        return None

    def update_event(
        self, calendar_id: str, event_id: str, draft: EventDraft, *, etag: str | None = None
    ) -> WrittenEvent:
        """PATCH ``/me/events/{id}`` (``If-Match`` when ``etag`` is given: 412 →
        ``PreconditionFailed``; a gone event → ``ProviderNotFound``). An occurrence's id is
        patched the same way; Graph makes it an exception of its series."""
        headers = {"If-Match": etag} if etag else None
        response = self._request(
            "PATCH",
            f"/me/events/{quote(event_id, safe='')}",
            "update event",
            json_body=self._body(draft),
            headers=headers,
        )
        updated = self._json(response, "update event")
        return WrittenEvent(str(updated.get("id") or event_id), updated.get("@odata.etag"))

    def event_exists(self, calendar_id: str, event_id: str) -> bool:
        """GET ``/me/events/{id}`` (only ``id`` selected); 404 → False."""
        try:
            self._request("GET", f"/me/events/{quote(event_id, safe='')}", "get event", params={"$select": "id"})
        except ProviderNotFound:
            return False
        return True

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        self._request("DELETE", f"/me/events/{quote(event_id, safe='')}", "delete event")

    def _body(self, draft: EventDraft) -> dict[str, Any]:
        zone = ZoneInfo(draft.time_zone)
        windows = _windows_zone(draft.time_zone)

        def when(moment: datetime) -> dict[str, str]:
            wall = moment.astimezone(zone).replace(tzinfo=None)
            return {"dateTime": wall.isoformat(timespec="seconds"), "timeZone": windows}

        body: dict[str, Any] = {
            "subject": draft.title,
            "body": {"contentType": "text", "content": draft.description or ""},
            "start": when(draft.start),
            "end": when(draft.end),
            "isAllDay": False,
            "showAs": "busy",
            "singleValueExtendedProperties": [
                {"id": PROP_APPOINTMENT, "value": draft.key},
                {"id": PROP_TENANT, "value": draft.tenant_id},
                {"id": PROP_REVISION, "value": str(draft.revision)},
            ],
        }
        if draft.location:
            body["location"] = {"displayName": draft.location}
        if draft.attendees:
            body["attendees"] = [{"emailAddress": {"address": a}, "type": "required"} for a in draft.attendees]
        return body

    # ------------------------------------------------------------------ subscriptions
    def watch(self, calendar_id: str, *, channel_id: str, address: str, token: str) -> Watch:
        """``POST /subscriptions`` on the calendar's events (learn.microsoft.com/graph/api/
        subscription-post-subscriptions). Graph assigns the subscription's id (``channel_id``
        is not used: the returned :class:`Watch` carries Graph's), validates ``address`` (and
        the lifecycle URL) with its handshake before answering 201, and echoes ``token`` as
        every notification's ``clientState``. The expiry is Graph's answer, not ours."""
        body: dict[str, Any] = {
            "changeType": SUBSCRIPTION_CHANGES,
            "notificationUrl": address,
            "resource": f"me/calendars/{quote(calendar_id, safe='')}/events",
            "expirationDateTime": _utc(self._clock() + SUBSCRIPTION_LIFETIME),
            "clientState": token,
        }
        if self._lifecycle_url:
            body["lifecycleNotificationUrl"] = self._lifecycle_url
        created = self._json(
            self._request("POST", "/subscriptions", "create subscription", json_body=body), "create subscription"
        )
        subscription_id, expires = created.get("id"), created.get("expirationDateTime")
        if not isinstance(subscription_id, str) or not subscription_id or not isinstance(expires, str):
            raise ProviderError("Graph create subscription: no id or expiry in the answer.", retryable=True)
        return Watch(channel_id=subscription_id, resource_id="", expires_at=_instant_of(expires))

    def renew_watch(self, channel_id: str) -> datetime:
        """``PATCH /subscriptions/{id}`` with a new ``expirationDateTime`` (learn.microsoft.com/
        graph/api/subscription-update); the new expiry, as Graph answers it. Renewing also
        reauthorizes the subscription (a ``reauthorizationRequired`` is answered this way:
        learn.microsoft.com/graph/change-notifications-lifecycle-events). A gone subscription →
        ``ProviderNotFound`` (then a new one is opened)."""
        body = {"expirationDateTime": _utc(self._clock() + SUBSCRIPTION_LIFETIME)}
        response = self._request(
            "PATCH", f"/subscriptions/{quote(channel_id, safe='')}", "renew subscription", json_body=body
        )
        expires = self._json(response, "renew subscription").get("expirationDateTime")
        if not isinstance(expires, str):
            raise ProviderError("Graph renew subscription: no expiry in the answer.", retryable=True)
        return _instant_of(expires)

    def stop_watch(self, channel_id: str, resource_id: str) -> None:
        """``DELETE /subscriptions/{id}`` (learn.microsoft.com/graph/api/subscription-delete);
        a gone one → ``ProviderNotFound``. ``resource_id`` is Google's; Graph has none."""
        self._request("DELETE", f"/subscriptions/{quote(channel_id, safe='')}", "delete subscription")


def _shows(event: dict[str, Any], draft: EventDraft) -> bool:
    """Whether a created event's answer shows the draft: its time, subject and location.
    (Not its body or attendees: Graph may answer those reformatted, and comparing them would
    patch every create.)"""
    location = (event.get("location") or {}).get("displayName") or None
    return (
        _instant(event.get("start") or {}) == draft.start.replace(microsecond=0)
        and _instant(event.get("end") or {}) == draft.end.replace(microsecond=0)
        and (event.get("subject") or "") == draft.title
        and location == (draft.location or None)
    )


def transaction_id(draft: EventDraft) -> str:
    """``crm.<appointment key>.<tenant tag>``: deterministic, so a retried create sends the
    same one; readable back, so a listing knows the event is ours (Graph keeps it: it
    "can't change" after the create, resources/event). The tenant appears only as a tag (the
    first 16 hex digits of a SHA-256), so the id does not name the tenant."""
    return f"crm.{draft.key}.{_tenant_tag(draft.tenant_id)}"


def _tenant_tag(tenant_id: str) -> str:
    return hashlib.sha256(f"crmsync-tenant\x00{tenant_id}".encode()).hexdigest()[:16]


def _error(response: requests.Response, what: str, *, delta: bool, conditional: bool = False) -> ProviderError:
    """Graph's status and error code as the port's neutral errors (never the body's message:
    it may quote event contents). On a delta request, the three sync-reset forms
    (learn.microsoft.com/graph/delta-query-overview#synchronization-reset: 410 Gone with a
    Location, ``syncStateNotFound``, ``resyncRequired``) are ``CursorInvalid``. A 412 is
    ``PreconditionFailed`` only for a ``conditional`` request (we sent ``If-Match``): one we
    did not make conditional met a concurrent change of the event, and writing again later
    is right (the CRM's change wins), so it is a retryable error."""
    status = response.status_code
    try:
        payload = response.json()
        code: str | None = str(((payload or {}).get("error") or {}).get("code") or "")
    except ValueError:
        code = None  # not JSON: a proxy's or gateway's page, not Graph's answer
    detail = f"Graph {what}: {status} {code or ''}".rstrip()
    if code in _RESET_CODES or (delta and status == 410):
        return CursorInvalid(f"{detail}: a new delta round is needed.")
    if status == 401:
        return AuthRevoked(f"{detail}: the token is not accepted.")
    if status == 403:
        return ProviderError(detail, retryable=False, status=status)
    if status in (429, 503) and response.headers.get("Retry-After"):
        return RateLimited(detail, retry_after=_seconds(response.headers["Retry-After"]), status=status)
    if status == 429:
        return RateLimited(detail, status=status)
    if status in (404, 410):
        return ProviderNotFound(detail)
    if status == 412:
        if not conditional:
            return ProviderError(f"{detail}: the event changed meanwhile.", retryable=True, status=status)
        return PreconditionFailed(detail)
    if status >= 500 or code is None:
        return ProviderError(detail, retryable=True, status=status)
    return ProviderError(detail, retryable=False, status=status)


#: Error codes of a sync reset, in either spelling seen in Microsoft's pages.
_RESET_CODES = frozenset({"syncStateNotFound", "resyncRequired", "SyncStateNotFound", "ResyncRequired"})


def _seconds(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant_of(value: str) -> datetime:
    """An ISO instant of Graph's (seven fractional digits, ``Z`` or an offset; Python 3.11
    reads both) as an aware UTC datetime; one without a zone is read as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ProviderError("Graph: an instant that is not ISO 8601.", retryable=True) from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _parse_wall(value: str) -> datetime:
    # Graph writes seven fractional digits; Python reads six.
    head, dot, tail = value.replace("Z", "").partition(".")
    return datetime.fromisoformat(head + (dot + tail[:6] if dot else ""))


def _instant(when: dict[str, Any]) -> datetime | None:
    """A dateTimeTimeZone as an aware UTC instant (we ask for UTC; another zone is
    converted)."""
    value = when.get("dateTime")
    if not value:
        return None
    zone = iana_zone(when.get("timeZone")) or "UTC"
    return _parse_wall(str(value)).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _day(when: dict[str, Any]) -> str | None:
    """An all-day bound: midnight in the event's zone, whatever Prefer says → its date."""
    value = when.get("dateTime")
    return date.isoformat(_parse_wall(str(value)).date()) if value else None


def _encode(state: dict[str, Any]) -> str:
    raw = zlib.compress(json.dumps(state, separators=(",", ":"), sort_keys=True).encode(), 9)
    return "gr1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    """The cursor's state; one we cannot read is invalid (list in full)."""
    if not cursor.startswith("gr1."):
        raise CursorInvalid()
    payload = cursor[4:]
    try:
        state = json.loads(zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (ValueError, zlib.error) as exc:
        raise CursorInvalid() from exc
    if not isinstance(state, dict) or not {"link", "start", "end"} <= state.keys():
        raise CursorInvalid()
    return state
