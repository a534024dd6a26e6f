"""Event resources: validation of writes, recurring-series instances, rendering and the
selection rules of events.list / events.instances (windows, deleted items, sync deltas)."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from devstack.google.apis.calendar import recurrence
from devstack.google.apis.calendar.times import (
    format_instant,
    is_all_day,
    to_instant,
    validate_time,
)
from devstack.google.apis.discovery import ApiError

#: Client-chosen event ids: base32hex characters (a-v, 0-9), 5 to 1024 of them (events resource doc).
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
#: Fields the server owns: whatever a client sends for them is replaced.
SERVER_FIELDS = ("kind", "etag", "created", "updated", "htmlLink", "creator", "organizer", "recurringEventId")
_ENUMS = {
    "status": ("confirmed", "tentative", "cancelled"),
    "transparency": ("opaque", "transparent"),
    "visibility": ("default", "public", "private", "confidential"),
}
_TIME_FIELDS = ("start", "end", "originalStartTime")


@dataclass
class StoredEvent:
    """An event (single event, series master or modified instance) and its change-log position."""

    data: dict[str, Any]
    seq: int
    updated: float


def validate_event(event: dict[str, Any], *, instance: bool) -> None:
    """Check the writable content of an event the way Google's events.insert/update does."""
    for name in ("start", "end"):
        event[name] = validate_time(event.get(name), name)
    start, end = event["start"], event["end"]
    if is_all_day(start) != is_all_day(end):
        raise ApiError(400, "Start and end times must either both be date or both be dateTime.", "invalid")
    default = ZoneInfo("UTC")
    if to_instant(end, default) < to_instant(start, default):
        raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
    for name, allowed in _ENUMS.items():
        if name in event and event[name] not in allowed:
            raise ApiError(400, f"Invalid value for {name}: {event[name]!r}", "invalid")
    if event.get("recurrence"):
        if instance:
            raise ApiError(400, "Invalid recurrence: an instance of a series cannot recur.", "invalid")
        event["recurrence"] = recurrence.validate(event["recurrence"])
        if not is_all_day(start) and not start.get("timeZone"):
            # Google needs the zone to expand a timed series (DST); it answers exactly this.
            raise ApiError(400, "Missing time zone definition for start time.", "required")
        recurrence.expand(start, event["recurrence"], default, to_instant(start, default))
    props = event.get("extendedProperties")
    if props is not None and not _string_properties(props):
        raise ApiError(400, "Invalid extendedProperties: values must be strings.", "invalid")
    attendees = event.get("attendees")
    if attendees is not None and (
        not isinstance(attendees, list) or not all(isinstance(a, dict) and a.get("email") for a in attendees)
    ):
        raise ApiError(400, "Missing attendee email.", "required")


def _string_properties(props: Any) -> bool:
    return isinstance(props, dict) and all(
        isinstance(props.get(scope, {}), dict) and all(isinstance(v, str) for v in props.get(scope, {}).values())
        for scope in ("private", "shared")
    )


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Patch semantics: objects merge recursively, ``null`` removes, everything else replaces."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif key in _TIME_FIELDS and isinstance(value, dict) and ("date" in value or "dateTime" in value):
            # Switching between all-day and timed must not leave the other field behind.
            result[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def make_instance(master: dict[str, Any], occurrence: recurrence.Occurrence, tz: ZoneInfo) -> dict[str, Any]:
    """The generated (unmodified) instance of ``master`` starting at ``occurrence``."""
    inst = {k: copy.deepcopy(v) for k, v in master.items() if k != "recurrence"}
    inst["id"] = f"{master['id']}_{recurrence.stamp(occurrence)}"
    inst["recurringEventId"] = master["id"]
    start, end = master["start"], master["end"]
    if isinstance(occurrence, dt.datetime):
        duration = to_instant(end, tz) - to_instant(start, tz)
        new_start: dict[str, Any] = {"dateTime": format_instant(occurrence, occurrence.tzinfo or tz)}
        if start.get("timeZone"):
            new_start["timeZone"] = start["timeZone"]
        new_end: dict[str, Any] = {"dateTime": format_instant(occurrence + duration, occurrence.tzinfo or tz)}
        if end.get("timeZone"):
            new_end["timeZone"] = end["timeZone"]
    else:
        days = dt.date.fromisoformat(end["date"]) - dt.date.fromisoformat(start["date"])
        new_start = {"date": occurrence.isoformat()}
        new_end = {"date": (occurrence + days).isoformat()}
    inst["start"], inst["end"] = new_start, new_end
    inst["originalStartTime"] = dict(new_start)
    return inst


def render(data: dict[str, Any], response_tz: dt.tzinfo, calendar_tz: ZoneInfo) -> dict[str, Any]:
    """The event as the API returns it: dateTimes in the response zone; deleted ones minimal."""
    if data.get("status") == "cancelled":
        minimal: dict[str, Any] = {k: data[k] for k in ("kind", "etag", "id", "status") if k in data}
        if "recurringEventId" in data:
            minimal["recurringEventId"] = data["recurringEventId"]
            minimal["originalStartTime"] = _render_time(data["originalStartTime"], response_tz, calendar_tz)
        return minimal
    out = copy.deepcopy(data)
    for name in _TIME_FIELDS:
        if name in out:
            out[name] = _render_time(out[name], response_tz, calendar_tz)
    return out


def _render_time(when: dict[str, Any], response_tz: dt.tzinfo, calendar_tz: ZoneInfo) -> dict[str, Any]:
    if is_all_day(when):
        return dict(when)
    out = dict(when)
    out["dateTime"] = format_instant(to_instant(when, calendar_tz), response_tz)
    return out


@dataclass
class Selection:
    """What events.list / events.instances asked for (already validated)."""

    single: bool = False
    show_deleted: bool = False
    since_seq: int | None = None  # set for incremental (syncToken) requests
    time_min: dt.datetime | None = None
    time_max: dt.datetime | None = None
    updated_min: dt.datetime | None = None
    ical_uid: str | None = None
    private: list[tuple[str, str]] = field(default_factory=list)
    shared: list[tuple[str, str]] = field(default_factory=list)
    q: str | None = None
    event_types: list[str] | None = None
    order_by: str | None = None
    series: str | None = None  # events.instances: only this series
    original_start: dt.datetime | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    #: Unbounded series are expanded up to here (or as far past their start, if they start later).
    horizon: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=730))


def select(events: dict[str, StoredEvent], sel: Selection, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The event data (unrendered) that a list request returns, in response order."""
    exceptions: dict[str, dict[str, StoredEvent]] = defaultdict(dict)
    for stored in events.values():
        parent = stored.data.get("recurringEventId")
        if parent and parent in events:
            exceptions[parent][stored.data["id"]] = stored
    out: list[dict[str, Any]] = []
    for stored in events.values():
        data = stored.data
        changed = sel.since_seq is None or stored.seq > sel.since_seq
        parent = data.get("recurringEventId")
        if sel.series is not None:
            if data["id"] == sel.series and data.get("recurrence"):
                out.extend(_instances(data, exceptions[data["id"]], sel, tz))
            continue
        if parent and parent in events:
            # A modified or cancelled instance. Expanded lists show it in its series' place;
            # deltas send it alone when only it changed.
            if sel.single and (sel.since_seq is None or events[parent].seq > sel.since_seq):
                continue
            if changed and _keep(data, sel, tz):
                out.append(data)
        elif data.get("recurrence") and sel.single:
            if changed:
                out.extend(_instances(data, exceptions[data["id"]], sel, tz))
        elif changed and _keep(data, sel, tz):
            out.append(data)
    out = [d for d in out if _matches_filters(d, sel)]
    if sel.order_by == "startTime":
        out.sort(key=lambda d: to_instant(d.get("start") or d["originalStartTime"], tz))
    elif sel.order_by == "updated":
        out.sort(key=lambda d: str(d.get("updated", "")))
    return out


def _instances(
    master: dict[str, Any], exceptions: dict[str, StoredEvent], sel: Selection, tz: ZoneInfo
) -> list[dict[str, Any]]:
    found = []
    for occurrence in recurrence.expand(master["start"], master["recurrence"], tz, _horizon(master, sel, tz)):
        instance_id = f"{master['id']}_{recurrence.stamp(occurrence)}"
        stored = exceptions.get(instance_id)
        data = stored.data if stored is not None else make_instance(master, occurrence, tz)
        if master.get("status") == "cancelled":
            data = {**data, "status": "cancelled"}
        if sel.original_start is not None and to_instant(data["originalStartTime"], tz) != sel.original_start:
            continue
        if _keep(data, sel, tz):
            found.append(data)
    return found


def _keep(data: dict[str, Any], sel: Selection, tz: ZoneInfo) -> bool:
    """Deleted-item and time-window rules of one candidate."""
    if data.get("status") == "cancelled":
        if sel.since_seq is not None:
            return True  # "All events deleted since the previous list request will always be in the result set"
        # Doc of showDeleted: cancelled instances still come back when showDeleted and singleEvents are both false.
        if not (sel.show_deleted or (data.get("recurringEventId") and not sel.single)):
            return False
    if sel.time_min is None and sel.time_max is None:
        return True
    if data.get("recurrence") and not sel.single:
        probe = Selection(single=True, time_min=sel.time_min, time_max=sel.time_max, horizon=sel.horizon)
        return any(_keep(make_instance(data, o, tz), probe, tz) for o in _window_occurrences(data, sel, tz))
    if "start" not in data or "end" not in data:
        return True
    start, end = to_instant(data["start"], tz), to_instant(data["end"], tz)
    # timeMin bounds the end and timeMax the start, both exclusively (events.list doc).
    return (sel.time_min is None or end > sel.time_min) and (sel.time_max is None or start < sel.time_max)


def _window_occurrences(data: dict[str, Any], sel: Selection, tz: ZoneInfo) -> list[recurrence.Occurrence]:
    return recurrence.expand(data["start"], data["recurrence"], tz, _horizon(data, sel, tz))


def _horizon(master: dict[str, Any], sel: Selection, tz: ZoneInfo) -> dt.datetime:
    """How far to expand a series: timeMax, else the horizon (counted from the series start if later)."""
    if sel.time_max is not None:
        return sel.time_max
    return max(sel.horizon, to_instant(master["start"], tz) + (sel.horizon - sel.now))


def _matches_filters(data: dict[str, Any], sel: Selection) -> bool:
    if sel.updated_min is not None:
        updated = dt.datetime.fromisoformat(str(data.get("updated", "1970-01-01T00:00:00Z")))
        if updated < sel.updated_min:
            return False
    if sel.ical_uid is not None and data.get("iCalUID") != sel.ical_uid:
        return False
    props = data.get("extendedProperties") or {}
    for scope, wanted in (("private", sel.private), ("shared", sel.shared)):
        have = props.get(scope) or {}
        if any(have.get(name) != value for name, value in wanted):
            return False
    if sel.event_types and data.get("eventType", "default") not in sel.event_types:
        return False
    if sel.q:
        text = " ".join(
            [str(data.get(k, "")) for k in ("summary", "description", "location")]
            + [f"{a.get('email', '')} {a.get('displayName', '')}" for a in data.get("attendees") or []]
        ).lower()
        if not all(word in text for word in sel.q.lower().split()):
            return False
    return True
