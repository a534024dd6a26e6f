"""PROVIDERS.md §1 C: all-day events and daylight-saving changes. An all-day event covers its
days in its calendar's zone — 25 hours on the autumn change, 23 in spring — and free slots
are computed in absolute time, so a change shifts no booking."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from crmsync.domain import ExternalEvent
from crmsync.logic.availability import _merge
from tests.support import clock


def all_day(first: str, after: str) -> ExternalEvent:
    return event(start_date=first, end_date=after)


def event(
    start: datetime | None = None,
    end: datetime | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
) -> ExternalEvent:
    return ExternalEvent(
        event_id="e",
        cancelled=False,
        start=start,
        end=end,
        start_date=start_date,
        end_date=end_date,
        transparent=False,
        declined=False,
        summary=None,
        etag=None,
        crm_appointment_id=None,
    )


def transitions(zone: str) -> list[tuple[date, int]]:
    """The days of ``zone``'s next two daylight-saving changes (from the clock the test runs
    under), each with the length in hours of that local day: one autumn, one spring."""
    tz = ZoneInfo(zone)
    changes, after = [], None
    for _ in range(2):
        change = clock.next_offset_change(zone, after=after)
        day = change.astimezone(tz).date()
        # Aware datetimes sharing a tzinfo subtract as wall times: compare them in UTC.
        length = clock.at(day + timedelta(days=1), zone=tz).astimezone(UTC) - clock.at(day, zone=tz).astimezone(UTC)
        changes.append((day, round(length / timedelta(hours=1))))
        after = change
    return changes


def test_an_all_day_event_covers_its_local_day_however_long_it_is() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    changes = transitions("Europe/Berlin")
    assert sorted(hours for _, hours in changes) == [23, 25]  # one spring, one autumn change
    summer = next(day for day in (changes[0][0] + timedelta(days=n) for n in range(366)) if day.month == 7)
    for day, hours in [*changes, (summer, 24)]:
        interval = all_day(day.isoformat(), (day + timedelta(days=1)).isoformat()).interval("Europe/Berlin")
        start = clock.at(day, zone=berlin).astimezone(UTC)
        assert interval == (start, start + timedelta(hours=hours)), day


def test_the_same_all_day_event_is_another_interval_in_another_zone() -> None:
    autumn = next(day for day, hours in transitions("Europe/Berlin") if hours == 25)
    berlin = all_day(autumn.isoformat(), (autumn + timedelta(days=1)).isoformat()).interval("Europe/Berlin")
    new_york = all_day(autumn.isoformat(), (autumn + timedelta(days=1)).isoformat()).interval("America/New_York")
    assert berlin is not None
    assert new_york is not None
    # Midnight in New York is six hours after midnight in Berlin on the day Europe changes.
    assert new_york[0] - berlin[0] == timedelta(hours=6)


def test_busy_intervals_merge_in_absolute_time() -> None:
    autumn = next(day for day, hours in transitions("Europe/Berlin") if hours == 25)
    late = clock.at(autumn, 0, 30)
    merged = _merge([(late, late + timedelta(hours=1)), (late - timedelta(hours=2), late + timedelta(minutes=10))])
    assert merged == [(late - timedelta(hours=2), late + timedelta(hours=1))]


def test_events_without_duration_or_ending_before_they_start_occupy_no_time() -> None:
    """A DTSTART without DTEND arrives as start = end; an end before the start (which Google
    refuses, but other clients write) must not turn into a huge or inverted busy range."""
    nine = clock.next_weekday(clock.TUESDAY, 9)
    day = nine.date()
    assert event(nine, nine + timedelta(minutes=1)).interval("UTC") == (nine, nine + timedelta(minutes=1))
    assert event(nine, nine).interval("UTC") is None
    assert event(nine, nine - timedelta(hours=1)).interval("UTC") is None
    assert event(start_date=day.isoformat(), end_date=day.isoformat()).interval("Europe/Berlin") is None
    before = (day - timedelta(days=3)).isoformat()
    assert event(start_date=day.isoformat(), end_date=before).interval("Europe/Berlin") is None
