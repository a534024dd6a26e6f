"""A lone timed event skips recurring-ical-events' expansion (a cheap win of the CalDAV full
sync, docs/PERFORMANCE.md): it must keep exactly the events the expansion keeps, at the
window's edges and in any zone."""

from __future__ import annotations

from datetime import timedelta

import icalendar
import pytest
import recurring_ical_events

from crmsync.providers.caldav.ical import instances
from tests.support import clock

START = clock.days_ahead(10, 9)
WINDOW = (START, START + timedelta(days=7))


def event(begin: str, end: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\nUID:one\r\n"
        f"DTSTAMP:{clock.z(START)}\r\n{begin}\r\n{end}\r\nSUMMARY:one\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def utc(moment) -> str:  # type: ignore[no-untyped-def]
    return moment.strftime("%Y%m%dT%H%M%SZ")


CASES = {
    "inside": (START + timedelta(hours=1), START + timedelta(hours=2)),
    "ends at the window's start": (START - timedelta(hours=1), START),
    "ends just after the window's start": (START - timedelta(hours=1), START + timedelta(minutes=1)),
    "starts at the window's end": (WINDOW[1], WINDOW[1] + timedelta(hours=1)),
    "starts just before the window's end": (WINDOW[1] - timedelta(minutes=1), WINDOW[1] + timedelta(hours=1)),
    "spans the window": (START - timedelta(days=1), WINDOW[1] + timedelta(days=1)),
    "before": (START - timedelta(days=2), START - timedelta(days=1)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("zoned", [False, True])
def test_a_lone_event_is_kept_as_the_expansion_keeps_it(name: str, zoned: bool) -> None:
    first, last = CASES[name]
    if zoned:
        lines = (f"DTSTART;TZID=UTC:{utc(first)[:-1]}", f"DTEND;TZID=UTC:{utc(last)[:-1]}")
    else:
        lines = (f"DTSTART:{utc(first)}", f"DTEND:{utc(last)}")
    data = event(*lines)
    expanded = recurring_ical_events.of(icalendar.Calendar.from_ical(data)).between(*WINDOW)

    found = instances(data, "one.ics", etag='"1"', tenant_id="t", account="a@example.com", window=WINDOW, floating=None)

    assert len(found) == len(expanded)
    for one in found:
        assert (one.event_id, one.start, one.end) == ("one.ics", first, last)
