"""Dates for tests, derived from the clock the test runs under — never written literally.

Demo data, sync windows and "in the past" checks are all relative to now, so a test that books
a fixed day breaks on some later day. Ask for "next Wednesday 15:00 in Europe/Paris" instead:
the answer is always a week or less ahead, always on the weekday asked, always in the zone asked.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = range(7)


def now(zone: str | tzinfo = UTC) -> datetime:
    """The current time in ``zone`` (a name or a tzinfo)."""
    return datetime.now(_zone(zone))


def next_weekday(weekday: int, hour: int, minute: int = 0, *, zone: str | tzinfo = UTC) -> datetime:
    """The next ``weekday`` (0 = Monday) at ``hour:minute`` wall time in ``zone``, strictly after
    tomorrow (so "today" and "tomorrow" never race midnight)."""
    tz = _zone(zone)
    first = now(tz).date() + timedelta(days=2)
    day = first + timedelta(days=(weekday - first.weekday()) % 7)
    return at(day, hour, minute, zone=tz)


def days_ahead(days: int, hour: int = 9, minute: int = 0, *, zone: str | tzinfo = UTC) -> datetime:
    """``hour:minute`` wall time in ``zone``, ``days`` calendar days from today there."""
    tz = _zone(zone)
    return at(now(tz).date() + timedelta(days=days), hour, minute, zone=tz)


def at(day: date, hour: int = 0, minute: int = 0, *, zone: str | tzinfo = UTC) -> datetime:
    """``day`` at ``hour:minute`` wall time in ``zone`` (an aware datetime)."""
    return datetime.combine(day, time(hour, minute), tzinfo=_zone(zone))


def z(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as Google writes ``dateTime`` values."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def offset(moment: datetime) -> str:
    """RFC 3339 with the moment's own UTC offset (``+01:00``), as the CRM API answers."""
    return moment.isoformat(timespec="seconds")


def next_offset_change(zone: str, *, after: datetime | None = None) -> datetime:
    """The first instant after ``after`` (default: now) at which ``zone``'s UTC offset changes
    (a daylight-saving transition), to the minute, in UTC."""
    tz = ZoneInfo(zone)
    start = (after or now()).astimezone(UTC).replace(second=0, microsecond=0)
    step = timedelta(days=1)
    before = start.astimezone(tz).utcoffset()
    low = start
    for _ in range(2 * 366):
        high = low + step
        if high.astimezone(tz).utcoffset() != before:
            break
        low = high
    else:
        raise ValueError(f"{zone} has no offset change within two years")
    while high - low > timedelta(minutes=1):  # bisect to the minute
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle.astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def _zone(zone: str | tzinfo) -> tzinfo:
    return ZoneInfo(zone) if isinstance(zone, str) else zone
