"""Expansion of a recurring series (RRULE/EXRULE/RDATE/EXDATE lines) into occurrence starts.

Rules are evaluated in the event's wall-clock time (naive datetimes in the event's zone) so
that a 09:00 weekly meeting stays at 09:00 across DST changes, as Google does; results are
turned back into aware datetimes (timed events) or dates (all-day events).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dateutil.rrule import rruleset, rrulestr

from devstack.google.apis.calendar.times import UTC, event_zone, is_all_day, zone
from devstack.google.apis.discovery import ApiError

#: Upper bound of occurrences produced for one series (infinite rules stop here or at the horizon).
MAX_OCCURRENCES = 5000

Occurrence = dt.datetime | dt.date


def _invalid() -> ApiError:
    return ApiError(400, "Invalid recurrence rule.", "invalid")


def _split(line: str) -> tuple[str, dict[str, str], str]:
    """``EXDATE;TZID=Europe/Berlin:20240101T100000`` → (``EXDATE``, {TZID: …}, value)."""
    head, sep, value = line.partition(":")
    if not sep:
        raise _invalid()
    name, *raw_params = head.split(";")
    params = {}
    for raw in raw_params:
        key, _, val = raw.partition("=")
        params[key.upper()] = val
    return name.upper().strip(), params, value.strip()


def _local(value: str, params: dict[str, str], tz: dt.tzinfo, all_day: bool) -> dt.datetime:
    """One iCalendar DATE / DATE-TIME value as a naive wall-clock time in the event's zone."""
    try:
        if params.get("VALUE") == "DATE" or len(value) == 8:
            return dt.datetime.strptime(value[:8], "%Y%m%d")
        if value.endswith("Z"):
            moment = dt.datetime.strptime(value[:-1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        else:
            moment = dt.datetime.strptime(value, "%Y%m%dT%H%M%S")
            if "TZID" not in params:
                return moment  # floating time: already wall-clock time of the event
            moment = moment.replace(tzinfo=zone(params["TZID"]))
    except ValueError:
        raise _invalid() from None
    if all_day:
        return moment.replace(tzinfo=None)
    return moment.astimezone(tz).replace(tzinfo=None)


def _normalize_rule(value: str, tz: dt.tzinfo, all_day: bool) -> str:
    """Rewrite UNTIL into naive local time: dateutil refuses a UTC UNTIL with a naive DTSTART."""
    parts = []
    for part in value.split(";"):
        key, _, val = part.partition("=")
        if key.upper() == "UNTIL":
            if len(val) == 8 and not all_day:
                val += "T235959"  # a date UNTIL on a timed series includes that whole day
            local = _local(val, {}, tz, all_day)
            val = local.strftime("%Y%m%d") if all_day else local.strftime("%Y%m%dT%H%M%S")
        parts.append(f"{key.upper()}={val}")
    if not any(p.startswith("FREQ=") for p in parts):
        raise _invalid()
    return ";".join(parts)


def validate(recurrence: Any) -> list[str]:
    """Check the shape of ``recurrence`` (a list of RRULE/EXRULE/RDATE/EXDATE lines)."""
    if not isinstance(recurrence, list) or not all(isinstance(line, str) for line in recurrence):
        raise _invalid()
    for line in recurrence:
        if _split(line)[0] not in ("RRULE", "EXRULE", "RDATE", "EXDATE"):
            raise _invalid()
    return list(recurrence)


def expand(
    start: dict[str, Any], recurrence: list[str], default_tz: dt.tzinfo, horizon: dt.datetime
) -> list[Occurrence]:
    """Occurrence starts of a series whose first instance starts at ``start``, up to ``horizon``.

    Timed series yield aware datetimes in the event's zone; all-day series yield dates.
    """
    all_day = is_all_day(start)
    if all_day:
        tz: dt.tzinfo = default_tz
        first = dt.datetime.combine(dt.date.fromisoformat(str(start["date"])), dt.time())
    else:
        tz = event_zone(start, default_tz)  # type: ignore[arg-type]
        parsed = dt.datetime.fromisoformat(str(start["dateTime"]))
        first = (parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed.astimezone(tz)).replace(tzinfo=None)
    rules = rruleset()
    has_rule = False
    try:
        for line in recurrence:
            name, params, value = _split(line)
            if name in ("RRULE", "EXRULE"):
                rule = rrulestr(_normalize_rule(value, tz, all_day), dtstart=first)
                if name == "RRULE":
                    rules.rrule(rule)
                    has_rule = True
                else:
                    rules.exrule(rule)
            elif name in ("RDATE", "EXDATE"):
                for item in value.split(","):
                    local = _local(item.strip(), params, tz, all_day)
                    (rules.rdate if name == "RDATE" else rules.exdate)(local)
    except (ValueError, TypeError):
        raise _invalid() from None
    if not has_rule:
        rules.rdate(first)
    limit = horizon.astimezone(tz).replace(tzinfo=None)
    found: list[Occurrence] = []
    for local in rules:
        if local > limit or len(found) >= MAX_OCCURRENCES:
            break
        found.append(local.date() if all_day else local.replace(tzinfo=tz))
    return found


def stamp(occurrence: Occurrence) -> str:
    """The instance-id suffix: ``20240501T080000Z`` (UTC) or ``20240501`` for all-day series."""
    if isinstance(occurrence, dt.datetime):
        return occurrence.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return occurrence.strftime("%Y%m%d")
