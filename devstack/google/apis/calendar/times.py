"""RFC 3339 and Calendar time objects (``{date}`` / ``{dateTime, timeZone}``) → instants.

Google interprets an all-day ``date`` in the calendar's (or the request's) time zone, a
``dateTime`` without offset in the event's ``timeZone``, and renders responses in the
calendar's zone unless the request names another one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devstack.google.apis.discovery import ApiError

UTC = dt.UTC


def zone(name: str, what: str = "time zone") -> ZoneInfo:
    """The IANA zone ``name``; 400 like Google for an unknown zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, f"Invalid {what}: {name}", "invalid") from None


def parse_instant(value: str, name: str) -> dt.datetime:
    """An RFC 3339 timestamp with a mandatory offset (timeMin, timeMax, updatedMin, freeBusy)."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: {name} is not an RFC 3339 timestamp.", "badRequest") from None
    if parsed.tzinfo is None:
        raise ApiError(400, f"Bad Request: {name} needs a time zone offset.", "badRequest")
    return parsed


def format_instant(value: dt.datetime, tz: dt.tzinfo) -> str:
    """``2024-05-01T10:00:00+02:00``, or ``…Z`` in UTC, as Google renders dateTime."""
    text = value.astimezone(tz).replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_updated(epoch: float) -> str:
    """``updated``/``created``: RFC 3339 in UTC with milliseconds (``2024-05-01T10:00:00.123Z``)."""
    moment = dt.datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def is_all_day(when: dict[str, Any]) -> bool:
    """Whether an event time is an all-day ``date``."""
    return "date" in when and when.get("date") is not None


def event_zone(when: dict[str, Any], default: ZoneInfo) -> dt.tzinfo:
    """The zone an event time lives in: its own ``timeZone``, else its offset, else ``default``."""
    if when.get("timeZone"):
        return zone(str(when["timeZone"]))
    if "dateTime" in when:
        parsed = dt.datetime.fromisoformat(str(when["dateTime"]))
        if parsed.tzinfo is not None:
            return parsed.tzinfo
    return default


def to_instant(when: dict[str, Any], default: ZoneInfo) -> dt.datetime:
    """The aware instant an event time denotes (all-day dates start at midnight of ``default``)."""
    if is_all_day(when):
        day = dt.date.fromisoformat(str(when["date"]))
        return dt.datetime.combine(day, dt.time(), default)
    parsed = dt.datetime.fromisoformat(str(when["dateTime"]))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=event_zone(when, default))
    return parsed


def validate_time(when: Any, field: str) -> dict[str, Any]:
    """Check one of ``start``/``end``: a ``date`` or a ``dateTime`` (with offset or timeZone)."""
    if not isinstance(when, dict) or not (when.get("date") or when.get("dateTime")):
        raise ApiError(400, f"Missing {field} time.", "required")
    if when.get("date") and when.get("dateTime"):
        raise ApiError(400, f"Invalid {field} time: both date and dateTime are set.", "invalid")
    try:
        if when.get("date"):
            dt.date.fromisoformat(str(when["date"]))
        else:
            parsed = dt.datetime.fromisoformat(str(when["dateTime"]))
            if parsed.tzinfo is None and not when.get("timeZone"):
                raise ApiError(400, f"Missing time zone definition for {field} time.", "required")
    except ValueError:
        raise ApiError(400, f"Invalid {field} time.", "invalid") from None
    if when.get("timeZone"):
        zone(str(when["timeZone"]), f"time zone definition for {field} time")
    return {k: v for k, v in when.items() if v is not None}
