"""The suite passes on any date: no test may write a date within two years of today.

Demo data, sync windows and "in the past" checks are relative to the clock, so a literal date
near today is a time bomb (it broke `make test` once: a booking on a day the demo data later
covered). Tests derive their dates from `tests.support.clock`. The files below must carry
fixed dates, and say why; a date anywhere else within two years of today fails this test.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
WINDOW = timedelta(days=2 * 365 + 1)

#: Files that must carry fixed dates, and why their outcome does not depend on today.
ALLOWED: dict[str, str] = {
    "contract/test_calendar_events.py": "contract cases in 2030: explicit timeMin/timeMax, nothing relative to now",
    "contract/test_calendar_freebusy.py": "contract cases in 2030: explicit query windows",
    "contract/test_calendar_push.py": "contract cases in 2030: events whose dates nothing reads",
    "contract/test_calendar_sync.py": "contract cases in 2030: explicit timeMin and updatedMin",
    "integration/test_inbound_mail.py": "mail samples: Date headers the CRM logs as written",
    "integration/test_inbound_mail_fuzz.py": "mail samples: Date headers drawn from fixed values",
    "unit/test_mail_parse.py": "mail samples: Date and Received headers of fixed messages",
    "unit/test_mail_receipt.py": "an SES receipt sample: its timestamps are data, not the clock",
}

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
MONTH_NUMBER = {name: number for number, name in enumerate(MONTHS.split("|"), start=1)}

#: The ways a test can write a day: ISO 8601 (2030-01-31, also inside date-times), compact
#: iCalendar (20300131T...), constructors (datetime(2030, 1, 31), date(2030, 1, 31)) and RFC 5322
#: mail dates (31 Jan 2030).
PATTERNS: tuple[tuple[re.Pattern[str], tuple[str, str, str]], ...] = (
    (re.compile(r"(?<![\d.])(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?!\d)"), ("y", "m", "d")),
    (re.compile(r"(?<![\d.])(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})T\d{4}"), ("y", "m", "d")),
    (
        re.compile(r"\b(?:datetime|date)\(\s*(?P<y>\d{4})\s*,\s*(?P<m>\d{1,2})\s*,\s*(?P<d>\d{1,2})\b"),
        ("y", "m", "d"),
    ),
    (re.compile(rf"\b(?P<d>\d{{1,2}}) (?P<m>{MONTHS}) (?P<y>\d{{4}})\b"), ("y", "m", "d")),
)


def dates_in(text: str) -> list[tuple[int, date]]:
    """Every calendar date written in ``text``, with its line number."""
    found = []
    for pattern, (y, m, d) in PATTERNS:
        for match in pattern.finditer(text):
            month = match.group(m)
            number = MONTH_NUMBER.get(month) or int(month)
            try:
                day = date(int(match.group(y)), number, int(match.group(d)))
            except ValueError:
                continue  # not a date (a version, an id)
            found.append((text.count("\n", 0, match.start()) + 1, day))
    return found


def near(day: date, today: date) -> bool:
    return abs(day - today) <= WINDOW


def test_no_test_writes_a_date_within_two_years_of_today() -> None:
    today = date.today()
    offenders = [
        f"{path.relative_to(TESTS)}:{line}: {day.isoformat()}"
        for path in sorted(TESTS.rglob("*"))
        if path.is_file()
        and path.suffix in {".py", ".yaml", ".json", ".eml", ".txt", ".ics", ".vcf"}
        and path.relative_to(TESTS).as_posix() not in ALLOWED
        for line, day in dates_in(path.read_text(encoding="utf-8", errors="replace"))
        if near(day, today)
    ]
    assert not offenders, (
        "dates near today in tests break on a later day; derive them from tests.support.clock "
        "(or add the file to ALLOWED with the reason its dates are fixed):\n" + "\n".join(offenders)
    )


@pytest.mark.parametrize("path", sorted(ALLOWED))
def test_every_allowed_file_still_carries_fixed_dates(path: str) -> None:
    """A stale entry would let a new time bomb into that file unnoticed."""
    assert dates_in((TESTS / path).read_text(encoding="utf-8")), f"{path} has no fixed date: drop it from ALLOWED"


def test_the_guard_finds_every_way_of_writing_a_day_near_today() -> None:
    today = date.today()
    soon = today + timedelta(days=40)
    month = list(MONTH_NUMBER)[soon.month - 1]
    written = [
        f'start = "{soon.isoformat()}T15:00:00+01:00"',
        f'dtstart = "{soon.strftime("%Y%m%d")}T150000Z"',
        f"datetime({soon.year}, {soon.month}, {soon.day}, 9)",
        f"date({soon.year}, {soon.month}, {soon.day})",
        f'"Date: Tue, {soon.day} {month} {soon.year} 10:00:00 +0000"',
    ]
    for text in written:
        assert [day for _, day in dates_in(text) if near(day, today)] == [soon], text


def test_the_guard_lets_far_dates_versions_and_ids_through() -> None:
    today = date.today()
    far = date(today.year + 5, 1, 31)
    text = f'"{far.isoformat()}" version 1.{today.isoformat()} id 9{today:%Y%m%d}'
    assert [day for _, day in dates_in(text) if near(day, today)] == []
    assert dates_in('"2026-13-45" mail-parser==4.8.0') == []
