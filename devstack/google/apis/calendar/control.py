"""Acting as the user in Google Calendar: JSON control routes and a small HTML page.

Changes made here go through the same store operations as the API, so they bump the
change log (sync tokens see them) and notify watch channels exactly like API changes. They act
as the calendar's owner, so a calendar the account only reads (a subscription) can be changed
here too, as its owner would change it in Google.

Routes (JSON in and out unless noted; ``email`` names an existing emulator account):

* ``GET    /_emulator/calendar/events?email=&calendarId=`` – stored events (series, exceptions, deleted)
* ``POST   /_emulator/calendar/events`` ``{email, calendarId?, event}`` or ``{…, events: [...]}`` – create
  (also accepts the page's forms)
* ``PATCH  /_emulator/calendar/events`` ``{email, calendarId?, eventId, event}`` – patch
* ``DELETE /_emulator/calendar/events`` ``{email, calendarId?, eventId}`` – delete
* ``POST   /_emulator/calendar/expire-sync-tokens`` ``{email, calendarId?, purgeDeleted?}`` – next use of older
  tokens → 410; ``purgeDeleted`` also drops the tombstones of deleted events (as Google does after a while)
* ``GET    /_emulator/calendar/channels?email=`` – live watch channels
* ``POST   /_emulator/calendar/calendars`` ``{email, summary, timeZone?, id?, accessRole?}`` – add a calendar
* ``DELETE /_emulator/calendar/calendars`` ``{email, calendarId}`` – delete it (channels get ``not_exists``)
* ``POST   /_emulator/calendar/seed`` ``{email}`` – seed the demo data for an account
* ``GET    /_emulator/ui/calendar?email=`` – the HTML page
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request, Response

from devstack.google.apis.calendar.store import AccountCalendars, Calendar, CalendarStore, new_id
from devstack.google.apis.discovery import ApiError
from devstack.google.responses import html_response, json_response
from devstack.google.server import EmulatorContext, Route

PREFIX = "/_emulator/calendar"
UI = "/_emulator/ui/calendar"


class _Failure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class CalendarControl:
    """The control routes and the page; every handler takes the emulator state lock."""

    def __init__(self, ctx: EmulatorContext, store: CalendarStore) -> None:
        self.ctx = ctx
        self.store = store

    def routes(self) -> list[Route]:
        """The control endpoints and the page."""
        return [
            Route(f"{PREFIX}/events", ("GET",), self.list_events),
            Route(f"{PREFIX}/events", ("POST",), self.create_event),
            Route(f"{PREFIX}/events", ("PATCH",), self.patch_event),
            Route(f"{PREFIX}/events", ("DELETE",), self.delete_event),
            Route(f"{PREFIX}/expire-sync-tokens", ("POST",), self.expire_sync_tokens),
            Route(f"{PREFIX}/channels", ("GET",), self.list_channels),
            Route(f"{PREFIX}/calendars", ("POST",), self.add_calendar),
            Route(f"{PREFIX}/calendars", ("DELETE",), self.delete_calendar),
            Route(f"{PREFIX}/seed", ("POST",), self.seed),
            Route(UI, ("GET",), self.page),
        ]

    # ------------------------------------------------------------------ plumbing

    def _run(self, request: Request, action: Any) -> Response:
        """Run ``action(fields)``; JSON requests get JSON, the page's forms a redirect back."""
        form = request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
        if form and request.headers.get("Origin") not in (None, "null", self.ctx.base_url):
            # Another web site must not drive the local emulator through the user's browser.
            return json_response({"error": "cross-origin form post refused"}, 403)
        fields = _fields(request)
        try:
            with self.ctx.state.lock:
                result, status = action(fields)
        except _Failure as failure:
            if form:
                return self._back(fields, failure.message)
            return json_response({"error": failure.message}, failure.status)
        except ApiError as error:
            if form:
                return self._back(fields, error.message)
            return json_response({"error": error.message, "reason": error.reason}, error.status)
        if form:
            return self._back(fields, "done")
        return json_response(result, status)

    def _back(self, fields: dict[str, Any], message: str) -> Response:
        query = urlencode(
            {"email": fields.get("email", ""), "calendarId": fields.get("calendarId", ""), "msg": message}
        )
        response = Response(status=303)
        response.headers["Location"] = f"{UI}?{query}"
        return response

    def _account(self, fields: dict[str, Any]) -> AccountCalendars:
        email = str(fields.get("email") or "")
        try:
            return self.store.account_by_email(email)
        except KeyError:
            raise _Failure(404, f"unknown account {email!r}") from None

    def _target(self, fields: dict[str, Any]) -> tuple[AccountCalendars, Calendar]:
        acct = self._account(fields)
        return acct, self.store.calendar(acct, str(fields.get("calendarId") or "primary"))

    # ------------------------------------------------------------------ events

    def list_events(self, request: Request) -> Response:
        """Stored events of one calendar (no expansion)."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            _, cal = self._target(fields)
            return [stored.data for stored in cal.events.values()], 200

        return self._run(request, action)

    def create_event(self, request: Request) -> Response:
        """Create an event as the user (form posts may also update or delete, see ``_action``)."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            acct, cal = self._target(fields)
            kind = fields.get("_action", "create")
            if isinstance(fields.get("events"), list):
                # Bulk creation (large calendars for paging tests and demos); one commit per event.
                return [self.store.insert(acct, cal, _event_body(e), as_owner=True) for e in fields["events"]], 201
            given = fields.get("event")
            event: dict[str, Any] = given if isinstance(given, dict) else _form_event(fields, cal)
            if kind == "delete":
                self.store.delete(acct, cal, str(fields.get("eventId")), as_owner=True)
                return {}, 200
            if kind == "update":
                event_id = str(fields.get("eventId"))
                return self.store.modify(acct, cal, event_id, event, replace=False, as_owner=True), 200
            return self.store.insert(acct, cal, event, as_owner=True), 201

        return self._run(request, action)

    def patch_event(self, request: Request) -> Response:
        """Patch an event as the user."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            acct, cal = self._target(fields)
            event = fields.get("event")
            if not isinstance(event, dict) or not fields.get("eventId"):
                raise _Failure(400, "eventId and event{} are required")
            return self.store.modify(acct, cal, str(fields["eventId"]), event, replace=False, as_owner=True), 200

        return self._run(request, action)

    def delete_event(self, request: Request) -> Response:
        """Delete an event as the user."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            acct, cal = self._target(fields)
            if not fields.get("eventId"):
                raise _Failure(400, "eventId is required")
            self.store.delete(acct, cal, str(fields["eventId"]), as_owner=True)
            return {}, 200

        return self._run(request, action)

    # ------------------------------------------------------------------ calendars, tokens, channels

    def expire_sync_tokens(self, request: Request) -> Response:
        """Invalidate sync tokens of the account (or of one calendar): their next use → 410."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            acct = self._account(fields)
            calendar_id = fields.get("calendarId")
            purge = fields.get("purgeDeleted") in (True, "true", "1")
            self.store.expire_sync_tokens(acct, str(calendar_id) if calendar_id else None, purge_deleted=purge)
            return {"expired": True}, 200

        return self._run(request, action)

    def list_channels(self, request: Request) -> Response:
        """Live watch channels (expired ones are pruned first)."""
        with self.ctx.state.lock:
            self.store.channels.prune(self.ctx.state.now())
            return json_response(self.store.channels.listing(request.args.get("email") or None))

    def add_calendar(self, request: Request) -> Response:
        """Add a secondary calendar to the account's calendar list."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            acct = self._account(fields)
            calendar_id = str(fields.get("id") or f"{new_id()}@group.calendar.google.com")
            try:
                cal = self.store.add_calendar(
                    acct,
                    calendar_id,
                    str(fields.get("summary") or "Calendar"),
                    str(fields.get("timeZone") or acct.primary.time_zone),
                    access_role=str(fields.get("accessRole") or "owner"),
                    description=str(fields.get("description") or ""),
                )
            except (ValueError, KeyError) as exc:
                raise _Failure(400, str(exc)) from None
            return {"id": cal.id, "summary": cal.summary, "timeZone": cal.time_zone, "accessRole": cal.access_role}, 201

        return self._run(request, action)

    def delete_calendar(self, request: Request) -> Response:
        """Delete a secondary calendar."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            acct = self._account(fields)
            try:
                self.store.delete_calendar(acct, str(fields.get("calendarId") or ""))
            except ValueError as exc:
                raise _Failure(400, str(exc)) from None
            return {}, 200

        return self._run(request, action)

    def seed(self, request: Request) -> Response:
        """Seed the demo calendars and events for ``email`` (idempotent)."""

        def action(fields: dict[str, Any]) -> tuple[Any, int]:
            try:
                self.store.seed_demo(str(fields.get("email") or ""))
            except ValueError as exc:
                raise _Failure(400, str(exc)) from None
            return {"seeded": True}, 200

        return self._run(request, action)

    # ------------------------------------------------------------------ the page

    def page(self, request: Request) -> Response:
        """``GET /_emulator/ui/calendar?email=``: see and edit a user's calendars."""
        email = request.args.get("email", "")
        with self.ctx.state.lock:
            accounts = [a["email"] for a in self.ctx.state.accounts()]
            if email not in accounts:
                links = "".join(f'<li><a href="{UI}?email={quote(a)}">{escape(a)}</a></li>' for a in accounts)
                return html_response(_layout("Calendar", f"<p>Choose an account:</p><ul>{links}</ul>"))
            acct = self.store.account_by_email(email)
            try:
                cal = self.store.calendar(acct, request.args.get("calendarId") or "primary")
            except ApiError:
                cal = acct.primary
            body = self._render_page(acct, cal, request.args.get("msg", ""))
        return html_response(_layout(f"Calendar of {email}", body))

    def _render_page(self, acct: AccountCalendars, cal: Calendar, message: str) -> str:
        tabs = " | ".join(
            f'<a href="{UI}?{urlencode({"email": acct.email, "calendarId": c.id})}">{escape(c.summary)}</a>'
            f" ({escape(c.access_role)})"
            for c in acct.calendars.values()
            if not c.deleted
        )
        hidden = (
            f'<input type="hidden" name="email" value="{escape(acct.email)}">'
            f'<input type="hidden" name="calendarId" value="{escape(cal.id)}">'
        )
        rows = []
        for stored in cal.events.values():
            data = stored.data
            when = _when(data)
            row_form = (
                f'<form method="post" action="{PREFIX}/events">{hidden}'
                f'<input type="hidden" name="eventId" value="{escape(data["id"])}">'
                f'<input name="summary" value="{escape(str(data.get("summary", "")))}">'
                '<button name="_action" value="update">Rename</button> '
                '<button name="_action" value="delete">Delete</button></form>'
                if data.get("status") != "cancelled"
                else ""
            )
            rows.append(
                f"<tr><td>{escape(str(data.get('summary', '')))}</td><td>{escape(when)}</td>"
                f"<td>{escape(str(data.get('status')))}</td><td>{escape('; '.join(data.get('recurrence') or []))}</td>"
                f"<td><code>{escape(data['id'])}</code></td><td>{row_form}</td></tr>"
            )
        create = (
            f'<h2>New event</h2><form method="post" action="{PREFIX}/events">{hidden}'
            '<input type="hidden" name="_action" value="create">'
            '<label>Summary <input name="summary" required></label> '
            '<label>Start <input type="datetime-local" name="start" required></label> '
            '<label>End <input type="datetime-local" name="end" required></label> '
            '<label><input type="checkbox" name="all_day" value="1"> all day</label> '
            '<label><input type="checkbox" name="transparent" value="1"> free</label> '
            '<label>Recurrence <input name="recurrence" placeholder="RRULE:FREQ=WEEKLY;COUNT=5"></label> '
            "<button>Create</button></form>"
        )
        expire = (
            f'<form method="post" action="{PREFIX}/expire-sync-tokens">{hidden}'
            "<button>Expire sync tokens (next incremental sync → 410)</button></form>"
        )
        channels = "".join(
            f"<li><code>{escape(c['id'])}</code> → {escape(c['address'])} (expires {escape(c['expiration'])})</li>"
            for c in self.store.channels.listing(acct.email)
            if c["calendarId"] == cal.id
        )
        notice = f'<p class="msg">{escape(message)}</p>' if message else ""
        return (
            f"{notice}<p>Calendars: {tabs}</p><h2>{escape(cal.summary)} <small>{escape(cal.time_zone)}</small></h2>"
            "<table><tr><th>Summary</th><th>When</th><th>Status</th><th>Recurrence</th><th>Id</th><th></th></tr>"
            f"{''.join(rows)}</table>{create}{expire}<h2>Watch channels</h2><ul>{channels or '<li>none</li>'}</ul>"
        )


def _fields(request: Request) -> dict[str, Any]:
    """The request's fields: a JSON object, form fields, or query arguments (for DELETE)."""
    if request.mimetype == "application/json" or (request.get_data() and request.mimetype == ""):
        try:
            value = json.loads(request.get_data() or b"{}")
        except ValueError:
            raise _Failure(400, "invalid JSON") from None
        return value if isinstance(value, dict) else {}
    if request.form:
        return dict(request.form.items())
    return dict(request.args.items())


def _event_body(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Failure(400, "each event must be an object")
    return value


def _form_event(fields: dict[str, Any], cal: Calendar) -> dict[str, Any]:
    """An event body from the page's form fields."""
    event: dict[str, Any] = {}
    if fields.get("summary") is not None:
        event["summary"] = str(fields["summary"])
    start, end = str(fields.get("start") or ""), str(fields.get("end") or "")
    if start and end:
        if fields.get("all_day"):
            event["start"], event["end"] = {"date": start[:10]}, {"date": end[:10]}
        else:
            event["start"] = {"dateTime": _seconds(start), "timeZone": cal.time_zone}
            event["end"] = {"dateTime": _seconds(end), "timeZone": cal.time_zone}
    if fields.get("transparent"):
        event["transparency"] = "transparent"
    if fields.get("recurrence"):
        event["recurrence"] = [line.strip() for line in str(fields["recurrence"]).splitlines() if line.strip()]
    return event


def _seconds(value: str) -> str:
    return value + ":00" if len(value) == 16 else value


def _when(data: dict[str, Any]) -> str:
    start, end = data.get("start") or {}, data.get("end") or {}
    return f"{start.get('date') or start.get('dateTime', '')} → {end.get('date') or end.get('dateTime', '')}"


def _layout(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}.msg{background:#eef;padding:4px}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
