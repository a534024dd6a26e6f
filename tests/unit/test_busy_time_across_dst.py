"""PROVIDERS.md §1 C: all-day events and daylight-saving changes. An all-day event covers its
days in its calendar's zone — 25 hours on the autumn change, 23 in spring — and free slots
are computed in absolute time, so a change shifts no booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync.domain import ExternalEvent
from crmsync.logic.availability import _merge


def all_day(first: str, after: str) -> ExternalEvent:
    return ExternalEvent(
        event_id="e",
        cancelled=False,
        start=None,
        end=None,
        start_date=first,
        end_date=after,
        transparent=False,
        declined=False,
        summary=None,
        etag=None,
        crm_appointment_id=None,
    )


@pytest.mark.parametrize(
    ("day", "after", "start_utc", "hours"),
    [
        ("2026-10-25", "2026-10-26", datetime(2026, 10, 24, 22, tzinfo=UTC), 25),  # CEST → CET
        ("2026-03-29", "2026-03-30", datetime(2026, 3, 28, 23, tzinfo=UTC), 23),  # CET → CEST
        ("2026-07-01", "2026-07-02", datetime(2026, 6, 30, 22, tzinfo=UTC), 24),
    ],
)
def test_an_all_day_event_covers_its_local_day_however_long_it_is(
    day: str, after: str, start_utc: datetime, hours: int
) -> None:
    interval = all_day(day, after).interval("Europe/Berlin")
    assert interval == (start_utc, start_utc + timedelta(hours=hours))


def test_the_same_all_day_event_is_another_interval_in_another_zone() -> None:
    berlin = all_day("2026-10-25", "2026-10-26").interval("Europe/Berlin")
    new_york = all_day("2026-10-25", "2026-10-26").interval("America/New_York")
    assert berlin is not None
    assert new_york is not None
    assert new_york[0] - berlin[0] == timedelta(hours=6)


def test_busy_intervals_merge_in_absolute_time() -> None:
    late = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    merged = _merge([(late, late + timedelta(hours=1)), (late - timedelta(hours=2), late + timedelta(minutes=10))])
    assert merged == [(late - timedelta(hours=2), late + timedelta(hours=1))]
