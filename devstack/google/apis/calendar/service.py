"""Calendar v3 methods: calendarList.list, calendars.get, events.*, channels.stop, freebusy.query."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Response

from devstack.google.apis.calendar.channels import DEFAULT_TTL_SECONDS, Channel, check_watch_body
from devstack.google.apis.calendar.events import Selection, render, select
from devstack.google.apis.calendar.freebusy import query_freebusy
from devstack.google.apis.calendar.store import ROLE_RANK, AccountCalendars, Calendar, CalendarStore, Token
from devstack.google.apis.calendar.times import UTC, format_updated, parse_instant, zone
from devstack.google.apis.discovery import ApiError
from devstack.google.apis.service import ApiCall, ApiService, implements
from devstack.google.server import Route

#: events.list parameters that cannot be combined with syncToken (events.list doc).
FORBIDDEN_WITH_SYNC = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
#: "The page size can never be larger than 2500 events"; larger requests are capped, not refused.
MAX_EVENTS_PAGE = 2500
DEFAULT_EVENTS_PAGE = 250
MAX_LIST_PAGE = 250
DEFAULT_LIST_PAGE = 100
#: How far an unbounded recurring series is expanded (Google's own limit is not documented).
EXPANSION_HORIZON = dt.timedelta(days=730)


def _binding(params: dict[str, Any], *names: str) -> str:
    """What an opaque token is bound to: the request parameters that shape its results."""
    return json.dumps({n: params.get(n) for n in names}, sort_keys=True, default=str)


_PAGE_BOUND = (
    "syncToken",
    "singleEvents",
    "showDeleted",
    "timeMin",
    "timeMax",
    "updatedMin",
    "iCalUID",
    "privateExtendedProperty",
    "sharedExtendedProperty",
    "q",
    "orderBy",
    "eventTypes",
    "timeZone",
    "originalStart",
    "eventId",
)
_SYNC_BOUND = ("singleEvents", "eventTypes", "showHiddenInvitations")


class CalendarService(ApiService):
    """The emulated Google Calendar API v3."""

    api_name = "calendar"
    api_version = "v3"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.store: CalendarStore = ctx.stores.setdefault("calendar", CalendarStore(ctx.state, ctx.push))

    def routes(self) -> list[Route]:
        """The API routes plus the control API and the web page."""
        from devstack.google.apis.calendar.control import CalendarControl

        return [*super().routes(), *CalendarControl(self.ctx, self.store).routes()]

    # ------------------------------------------------------------------ helpers

    def _account(self, call: ApiCall) -> AccountCalendars:
        return self.store.account(call.account.sub, call.account.email)

    def _calendar(self, call: ApiCall) -> tuple[AccountCalendars, Calendar]:
        acct = self._account(call)
        return acct, self.store.calendar(acct, str(call.params["calendarId"]))

    def _page(
        self,
        call: ApiCall,
        acct: AccountCalendars,
        cal_id: str,
        kind: str,
        binding: str,
        limit: int,
        build: Any,
        sync: tuple[str, str, int, tuple[dt.datetime | None, dt.datetime | None]] | None,
    ) -> dict[str, Any]:
        """Serve one page of a snapshot taken on the first page; the last page gets nextSyncToken.

        ``sync`` is (sync token kind, sync binding, generation, window) when the list is syncable;
        the sync token's log position is the one the snapshot was taken at, so changes made while
        a client pages through are delivered by the next incremental sync.
        """
        page_value = call.param("pageToken")
        if page_value:
            token = self.store.lookup(page_value, kind, acct.sub)
            if token is None or token.calendar_id != cal_id or token.binding != binding:
                raise ApiError(400, "Invalid page token value.", "invalid")
            items, offset, seq, window = token.items, token.offset, token.seq, token.window
        else:
            seq, items = build()
            offset, window = 0, sync[3] if sync else (None, None)
        out: dict[str, Any] = {"items": items[offset : offset + limit]}
        if offset + limit < len(items):
            generation = sync[2] if sync else 0
            page = Token(kind, acct.sub, cal_id, binding, seq, generation, items, offset + limit, window)
            out["nextPageToken"] = self.store.issue(page)
        elif sync is not None:
            sync_kind, sync_binding, generation, _ = sync
            out["nextSyncToken"] = self.store.issue(
                Token(sync_kind, acct.sub, cal_id, sync_binding, seq, generation, window=window)
            )
        return out

    # ------------------------------------------------------------------ calendarList / calendars

    @implements("calendar.calendarList.list")
    def calendar_list(self, call: ApiCall) -> dict[str, Any]:
        """calendarList.list with paging and optional syncToken (deleted entries → ``deleted``)."""
        with self.state.lock:
            acct = self._account(call)
            params = call.params
            since: int | None = None
            if params.get("syncToken"):
                if "minAccessRole" in params:
                    raise ApiError(400, "minAccessRole cannot be combined with syncToken.", "invalid")
                token = self.store.lookup(params["syncToken"], "list-sync", acct.sub)
                if token is None:
                    raise ApiError(400, "Invalid sync token value.", "invalid")
                if token.generation != acct.list_generation:
                    raise ApiError(410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired")
                since = token.seq
            floor = ROLE_RANK[params.get("minAccessRole", "freeBusyReader")]
            show_deleted = since is not None or bool(params.get("showDeleted"))

            def build() -> tuple[int, list[dict[str, Any]]]:
                items = []
                for cal in acct.calendars.values():
                    if since is not None and cal.list_seq <= since:
                        continue
                    if ROLE_RANK[cal.access_role] < floor or (cal.deleted and not show_deleted):
                        continue
                    items.append(_list_entry(cal))
                return acct.list_seq, items

            limit = min(int(params.get("maxResults", DEFAULT_LIST_PAGE)), MAX_LIST_PAGE)
            binding = _binding(params, "syncToken", "minAccessRole", "showDeleted", "showHidden")
            page = self._page(
                call,
                acct,
                "",
                "list-page",
                binding,
                limit,
                build,
                ("list-sync", "", acct.list_generation, (None, None)),
            )
            return {"kind": "calendar#calendarList", "etag": f'"p{acct.list_seq:016d}"', **page}

    @implements("calendar.calendars.get")
    def calendars_get(self, call: ApiCall) -> dict[str, Any]:
        """calendars.get (``primary`` aliases the primary calendar)."""
        with self.state.lock:
            _, cal = self._calendar(call)
            out: dict[str, Any] = {"kind": "calendar#calendar", "etag": cal.etag, "id": cal.id, "summary": cal.summary}
            if cal.description:
                out["description"] = cal.description
            out["timeZone"] = cal.time_zone
            out["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
            return out

    # ------------------------------------------------------------------ events

    @implements("calendar.events.list")
    def events_list(self, call: ApiCall) -> dict[str, Any]:
        """events.list: full or incremental (syncToken) listing with paging."""
        with self.state.lock:
            acct, cal = self._calendar(call)
            params = call.params
            response_tz = zone(params["timeZone"]) if params.get("timeZone") else cal.tz
            now = dt.datetime.fromtimestamp(self.state.now(), UTC)
            sync_binding = _binding(params, *_SYNC_BOUND)
            window: tuple[dt.datetime | None, dt.datetime | None] = (None, None)
            if params.get("syncToken") and not params.get("pageToken"):
                forbidden = [name for name in FORBIDDEN_WITH_SYNC if name in params]
                if forbidden:
                    raise ApiError(400, f"The parameter {forbidden[0]} cannot be used with syncToken.", "invalid")
                if params.get("showDeleted") is False:
                    raise ApiError(400, "showDeleted cannot be false with syncToken.", "invalid")
                token = self.store.lookup(params["syncToken"], "events-sync", acct.sub)
                if token is None or token.calendar_id != cal.id:
                    raise ApiError(400, "Invalid sync token value.", "invalid")
                if token.generation != cal.generation:
                    raise ApiError(410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired")
                if token.binding != sync_binding:
                    raise ApiError(
                        400, "The sync token was issued for different singleEvents/eventTypes parameters.", "invalid"
                    )
                window = token.window
                sel = Selection(
                    single=bool(params.get("singleEvents")),
                    show_deleted=True,
                    since_seq=token.seq,
                    time_min=window[0],
                    time_max=window[1],
                    event_types=params.get("eventTypes"),
                )
            else:
                sel = self._full_selection(params)
                window = (sel.time_min, sel.time_max)
            sel.now, sel.horizon = now, now + EXPANSION_HORIZON

            def build() -> tuple[int, list[dict[str, Any]]]:
                seq = cal.seq
                return seq, [render(d, response_tz, cal.tz) for d in select(cal.events, sel, cal.tz)]

            limit = min(int(params.get("maxResults", DEFAULT_EVENTS_PAGE)), MAX_EVENTS_PAGE)
            binding = _binding(params, *_PAGE_BOUND)
            page = self._page(
                call,
                acct,
                cal.id,
                "events-page",
                binding,
                limit,
                build,
                ("events-sync", sync_binding, cal.generation, window),
            )
            return {
                "kind": "calendar#events",
                "etag": f'"p{cal.seq:016d}"',
                "summary": cal.summary,
                "description": cal.description,
                "updated": format_updated(max((e.updated for e in cal.events.values()), default=self.state.now())),
                "timeZone": cal.time_zone,
                "accessRole": cal.access_role,
                "defaultReminders": _default_reminders(cal),
                **page,
            }

    @staticmethod
    def _full_selection(params: dict[str, Any]) -> Selection:
        single = bool(params.get("singleEvents"))
        if params.get("orderBy") == "startTime" and not single:
            raise ApiError(400, "The requested ordering is not available for the particular query.", "invalid")
        time_min = parse_instant(params["timeMin"], "timeMin") if params.get("timeMin") else None
        time_max = parse_instant(params["timeMax"], "timeMax") if params.get("timeMax") else None
        if time_min and time_max and time_max <= time_min:
            raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
        updated_min = parse_instant(params["updatedMin"], "updatedMin") if params.get("updatedMin") else None
        return Selection(
            single=single,
            # "When specified, entries deleted since this time will always be included regardless of showDeleted."
            show_deleted=bool(params.get("showDeleted")) or updated_min is not None,
            time_min=time_min,
            time_max=time_max,
            updated_min=updated_min,
            ical_uid=params.get("iCalUID"),
            private=_properties(params.get("privateExtendedProperty")),
            shared=_properties(params.get("sharedExtendedProperty")),
            q=params.get("q"),
            event_types=params.get("eventTypes"),
            order_by=params.get("orderBy"),
        )

    @implements("calendar.events.get")
    def events_get(self, call: ApiCall) -> Any:
        """events.get (stored events, deleted ones included, and generated instances)."""
        with self.state.lock:
            _, cal = self._calendar(call)
            data = self.store.find(cal, str(call.params["eventId"]))
            if data is None:
                raise ApiError(404, "Not Found", "notFound")
            if call.request.headers.get("If-None-Match") == data.get("etag"):
                return Response(status=304)
            response_tz = zone(call.params["timeZone"]) if call.params.get("timeZone") else cal.tz
            out = render({**data, "status": "confirmed"}, response_tz, cal.tz)
            out["status"] = data.get("status", "confirmed")
            return out

    @implements("calendar.events.insert")
    def events_insert(self, call: ApiCall) -> dict[str, Any]:
        """events.insert (client-chosen base32hex ids; duplicates → 409)."""
        with self.state.lock:
            acct, cal = self._calendar(call)
            return render(self.store.insert(acct, cal, _object(call.body)), cal.tz, cal.tz)

    @implements("calendar.events.patch")
    def events_patch(self, call: ApiCall) -> dict[str, Any]:
        """events.patch (If-Match → 412 when stale)."""
        return self._modify(call, replace=False)

    @implements("calendar.events.update")
    def events_update(self, call: ApiCall) -> dict[str, Any]:
        """events.update (If-Match → 412 when stale)."""
        return self._modify(call, replace=True)

    def _modify(self, call: ApiCall, *, replace: bool) -> dict[str, Any]:
        with self.state.lock:
            acct, cal = self._calendar(call)
            data = self.store.modify(
                acct,
                cal,
                str(call.params["eventId"]),
                _object(call.body),
                replace=replace,
                if_match=call.request.headers.get("If-Match"),
            )
            return _render_any(data, cal)

    @implements("calendar.events.delete")
    def events_delete(self, call: ApiCall) -> None:
        """events.delete (the event becomes ``cancelled``; deleting again → 410)."""
        with self.state.lock:
            acct, cal = self._calendar(call)
            self.store.delete(acct, cal, str(call.params["eventId"]), call.request.headers.get("If-Match"))

    @implements("calendar.events.instances")
    def events_instances(self, call: ApiCall) -> dict[str, Any]:
        """events.instances: the occurrences of one recurring series."""
        with self.state.lock:
            acct, cal = self._calendar(call)
            params = call.params
            event_id = str(params["eventId"])
            master = self.store.find(cal, event_id)
            if master is None:
                raise ApiError(404, "Not Found", "notFound")
            response_tz = zone(params["timeZone"]) if params.get("timeZone") else cal.tz
            time_min = parse_instant(params["timeMin"], "timeMin") if params.get("timeMin") else None
            time_max = parse_instant(params["timeMax"], "timeMax") if params.get("timeMax") else None
            original = parse_instant(params["originalStart"], "originalStart") if params.get("originalStart") else None
            sel = Selection(
                single=True,
                show_deleted=bool(params.get("showDeleted")),
                time_min=time_min,
                time_max=time_max,
                series=event_id,
                original_start=original,
                now=dt.datetime.fromtimestamp(self.state.now(), UTC),
                horizon=dt.datetime.fromtimestamp(self.state.now(), UTC) + EXPANSION_HORIZON,
            )

            def build() -> tuple[int, list[dict[str, Any]]]:
                return cal.seq, [render(d, response_tz, cal.tz) for d in select(cal.events, sel, cal.tz)]

            limit = min(int(params.get("maxResults", DEFAULT_EVENTS_PAGE)), MAX_EVENTS_PAGE)
            page = self._page(call, acct, cal.id, "instances-page", _binding(params, *_PAGE_BOUND), limit, build, None)
            return {
                "kind": "calendar#events",
                "etag": master.get("etag"),
                "summary": cal.summary,
                "updated": master.get("updated"),
                "timeZone": cal.time_zone,
                "accessRole": cal.access_role,
                "defaultReminders": _default_reminders(cal),
                **page,
            }

    # ------------------------------------------------------------------ push channels

    @implements("calendar.events.watch")
    def events_watch(self, call: ApiCall) -> dict[str, Any]:
        """events.watch: a web_hook channel; a ``sync`` message is sent at once."""
        with self.state.lock:
            acct, cal = self._calendar(call)
            channel_id, address, token, ttl, expiration = check_watch_body(call.body)
            now = self.state.now()
            if ttl is not None:
                expiration_ms = int((now + ttl) * 1000)
            elif expiration is not None:
                if expiration <= now * 1000:
                    raise ApiError(400, "Invalid expiration: it is in the past.", "invalid")
                expiration_ms = int(expiration)
            else:
                expiration_ms = int((now + DEFAULT_TTL_SECONDS) * 1000)
            resource_uri = (
                f"{self.ctx.base_url}/calendar/v3/calendars/{quote(str(call.params['calendarId']), safe='')}"
                "/events?alt=json"
            )
            channel = Channel(
                id=channel_id,
                resource_id=cal.resource_id,
                resource_uri=resource_uri,
                address=address,
                token=token,
                expiration_ms=expiration_ms,
                sub=acct.sub,
                email=acct.email,
                calendar_id=cal.id,
            )
            self.store.channels.add(channel, now)
            out = {"kind": "api#channel", "id": channel.id, "resourceId": channel.resource_id}
            out["resourceUri"] = resource_uri
            if token is not None:
                out["token"] = token
            out["expiration"] = str(expiration_ms)
            return out

    @implements("calendar.channels.stop")
    def channels_stop(self, call: ApiCall) -> None:
        """channels.stop ``{id, resourceId}``; an unknown channel → 404."""
        body = _object(call.body)
        if not body.get("id") or not body.get("resourceId"):
            raise ApiError(400, "Required: id and resourceId.", "required")
        with self.state.lock:
            self.store.channels.stop(str(body["id"]), str(body["resourceId"]), call.account.sub)

    # ------------------------------------------------------------------ free/busy

    @implements("calendar.freebusy.query")
    def freebusy(self, call: ApiCall) -> dict[str, Any]:
        """freebusy.query over up to 50 calendars and at most 90 days."""
        with self.state.lock:
            return query_freebusy(self.store, self._account(call), _object(call.body))


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received: expected an object.", "parseError")
    return body


def _properties(values: list[str] | None) -> list[tuple[str, str]]:
    """``privateExtendedProperty=name=value`` constraints (repeated → all must hold)."""
    found = []
    for value in values or []:
        name, sep, wanted = value.partition("=")
        if not sep or not name:
            raise ApiError(400, f"Invalid extended property constraint: {value}", "invalid")
        found.append((name, wanted))
    return found


def _render_any(data: dict[str, Any], cal: Calendar) -> dict[str, Any]:
    """A write's response: the whole event even when its status is ``cancelled``."""
    out = render({**data, "status": "confirmed"}, cal.tz, cal.tz)
    out["status"] = data.get("status", "confirmed")
    return out


def _default_reminders(cal: Calendar) -> list[dict[str, Any]]:
    return [{"method": "popup", "minutes": 10}] if cal.access_role == "owner" else []


def _list_entry(cal: Calendar) -> dict[str, Any]:
    if cal.deleted:
        return {"kind": "calendar#calendarListEntry", "etag": cal.etag, "id": cal.id, "deleted": True}
    entry: dict[str, Any] = {
        "kind": "calendar#calendarListEntry",
        "etag": cal.etag,
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "colorId": cal.color_id,
        "backgroundColor": cal.background_color,
        "foregroundColor": cal.foreground_color,
        "selected": True,
        "accessRole": cal.access_role,
        "defaultReminders": _default_reminders(cal),
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }
    if cal.description:
        entry["description"] = cal.description
    if cal.primary:
        entry["primary"] = True
    return entry
