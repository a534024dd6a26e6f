"""The part of Graph's patternedRecurrence the emulator expands: daily and weekly patterns with
``numbered``, ``endDate`` and ``noEnd`` ranges (resources/patternedrecurrence in the v1.0
reference). Other pattern types are refused with 400 rather than expanded wrongly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class RecurrenceError(ValueError):
    """A recurrence the emulator does not support or that is malformed."""


def validate(recurrence: dict[str, Any]) -> None:
    """Raise :class:`RecurrenceError` unless ``recurrence`` is one the emulator expands."""
    pattern, range_ = recurrence.get("pattern"), recurrence.get("range")
    if not isinstance(pattern, dict) or not isinstance(range_, dict):
        raise RecurrenceError("recurrence needs a pattern and a range")
    if pattern.get("type") not in ("daily", "weekly"):
        raise RecurrenceError(f"pattern type {pattern.get('type')!r} is not supported here")
    if not isinstance(pattern.get("interval", 1), int) or pattern.get("interval", 1) < 1:
        raise RecurrenceError("interval must be a positive integer")
    if pattern["type"] == "weekly":
        days = pattern.get("daysOfWeek")
        if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
            raise RecurrenceError("a weekly pattern needs daysOfWeek")
    kind = range_.get("type")
    if kind not in ("numbered", "endDate", "noEnd"):
        raise RecurrenceError(f"range type {kind!r} is not supported")
    try:
        date.fromisoformat(str(range_.get("startDate")))
        if kind == "endDate":
            date.fromisoformat(str(range_.get("endDate")))
    except ValueError as exc:
        raise RecurrenceError("startDate/endDate must be ISO dates") from exc
    if kind == "numbered" and (
        not isinstance(range_.get("numberOfOccurrences"), int) or range_["numberOfOccurrences"] < 1
    ):
        raise RecurrenceError("numberOfOccurrences must be a positive integer")


def dates(recurrence: dict[str, Any], until: date) -> Iterator[date]:
    """The series' occurrence dates in order, from the range's start, none after ``until``."""
    pattern, range_ = recurrence["pattern"], recurrence["range"]
    interval = int(pattern.get("interval", 1))
    start = date.fromisoformat(range_["startDate"])
    last = date.fromisoformat(range_["endDate"]) if range_["type"] == "endDate" else until
    last = min(last, until)
    remaining = int(range_["numberOfOccurrences"]) if range_["type"] == "numbered" else -1
    for day in _candidates(pattern, start, interval, last):
        if remaining == 0:
            return
        remaining -= 1
        yield day


def _candidates(pattern: dict[str, Any], start: date, interval: int, last: date) -> Iterator[date]:
    if pattern["type"] == "daily":
        day = start
        while day <= last:
            yield day
            day += timedelta(days=interval)
        return
    wanted = sorted(DAYS.index(d) for d in pattern["daysOfWeek"])
    first_day = DAYS.index(pattern.get("firstDayOfWeek", "sunday"))
    week = start - timedelta(days=(start.weekday() - first_day) % 7)
    while week <= last:
        for offset in sorted((d - first_day) % 7 for d in wanted):
            day = week + timedelta(days=offset)
            if start <= day <= last:
                yield day
        week += timedelta(weeks=interval)
