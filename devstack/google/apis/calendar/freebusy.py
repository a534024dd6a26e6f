"""freebusy.query: merged busy intervals of opaque, non-cancelled, non-declined events."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from devstack.google.apis.calendar.events import Selection, select
from devstack.google.apis.calendar.times import UTC, format_instant, parse_instant, to_instant, zone
from devstack.google.apis.discovery import ApiError

if TYPE_CHECKING:
    from devstack.google.apis.calendar.store import AccountCalendars, Calendar, CalendarStore

#: calendarExpansionMax: "Maximum value is 50" (freebusy.query doc).
MAX_CALENDARS = 50
#: Observed, not documented: longer ranges fail with "The requested time range is too long."
#: (calcom/cal.diy PR #11696 saw it as a failed request, hence an HTTP 400 here, and split into 90-day chunks
#: in PR #11962, so exactly 90 days is accepted).
MAX_RANGE = dt.timedelta(days=90)


def query_freebusy(store: CalendarStore, acct: AccountCalendars, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a freebusy.query body for the calendars ``acct`` can see."""
    for name in ("timeMin", "timeMax"):
        if not body.get(name):
            raise ApiError(400, f"Missing {name} parameter.", "required")
    time_min = parse_instant(str(body["timeMin"]), "timeMin")
    time_max = parse_instant(str(body["timeMax"]), "timeMax")
    if time_max <= time_min:
        raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
    if time_max - time_min > MAX_RANGE:
        raise ApiError(400, "The requested time range is too long.", "timeRangeTooLong")
    out_tz = zone(str(body["timeZone"])) if body.get("timeZone") else UTC
    items = body.get("items") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("id") for i in items):
        raise ApiError(400, "Invalid items: each needs an id.", "invalid")
    limit = body.get("calendarExpansionMax", MAX_CALENDARS)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_CALENDARS:
        raise ApiError(400, f"Invalid calendarExpansionMax: at most {MAX_CALENDARS}.", "invalid")
    if len(items) > limit:
        raise ApiError(400, "Too many calendars requested.", "tooManyCalendarsRequested")
    calendars: dict[str, Any] = {}
    for item in items:
        calendar_id = str(item["id"])
        try:
            cal = store.calendar(acct, calendar_id)
        except ApiError:
            calendars[calendar_id] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
            continue
        busy = _busy(cal, acct.email, time_min, time_max)
        calendars[calendar_id] = {
            "busy": [{"start": format_instant(s, out_tz), "end": format_instant(e, out_tz)} for s, e in busy]
        }
    return {
        "kind": "calendar#freeBusy",
        "timeMin": _echo(time_min),
        "timeMax": _echo(time_max),
        "calendars": calendars,
    }


def _busy(
    cal: Calendar, owner: str, time_min: dt.datetime, time_max: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    sel = Selection(single=True, time_min=time_min, time_max=time_max, horizon=time_max)
    me = {owner.lower(), cal.id.lower()}
    spans = []
    for data in select(cal.events, sel, cal.tz):
        if data.get("status") == "cancelled" or data.get("transparency") == "transparent":
            continue
        declined = any(
            (a.get("self") or str(a.get("email", "")).lower() in me) and a.get("responseStatus") == "declined"
            for a in data.get("attendees") or []
        )
        if declined:
            continue
        start = max(to_instant(data["start"], cal.tz), time_min)
        end = min(to_instant(data["end"], cal.tz), time_max)
        if end > start:
            spans.append((start, end))
    spans.sort()
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _echo(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
