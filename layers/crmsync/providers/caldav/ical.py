"""iCalendar both ways: an :class:`EventDraft` as a calendar object resource (with its
VTIMEZONE), and a resource as the calendar port's event instances, recurring series expanded
with ``recurring-ical-events``.

Rules (docs/CALDAV.md): all-day events (``VALUE=DATE``) give ``start_date``/``end_date``;
an event without DTEND lasts its DURATION, else one day (a date) or no time (a date-time);
floating times are read in the calendar's time zone, else UTC; ``TRANSP:TRANSPARENT`` is
transparent; ``STATUS:CANCELLED`` is cancelled; the account's own ATTENDEE with
``PARTSTAT=DECLINED`` is declined. Our events carry our key, tenant and revision as
``X-CRMSYNC-*`` properties; only our own tenant's marker makes an event ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from crmsync.domain import ExternalEvent
from crmsync.ports.calendar import INSTANCE_SEPARATOR, EventDraft
from crmsync.ports.errors import ProviderError

__all__ = [
    "PROP_KEY",
    "PROP_REVISION",
    "PROP_TENANT",
    "OccurrenceGone",
    "draft_ics",
    "instances",
    "occurrence_ics",
    "zone_of",
]

PROP_KEY = "X-CRMSYNC-KEY"
PROP_TENANT = "X-CRMSYNC-TENANT"
PROP_REVISION = "X-CRMSYNC-REVISION"
PRODID = "-//crmsync//CalDAV adapter//EN"

_TZID = re.compile(r"^TZID:(.+)$", re.MULTILINE)


def draft_ics(draft: EventDraft, uid: str, *, stamp: datetime) -> bytes:
    """The calendar object for ``draft``: one VEVENT with its times in the draft's zone and
    that zone's VTIMEZONE (so calendar apps show the wall time the CRM booked)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(_draft_event(draft, uid, stamp=stamp))
    if (_zone(draft.time_zone) or UTC) is not UTC:
        calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


def _draft_event(draft: EventDraft, uid: str, *, stamp: datetime) -> icalendar.Event:
    """The VEVENT ``draft`` describes (times in the draft's zone, our markers)."""
    zone = _zone(draft.time_zone) or UTC
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", draft.start.astimezone(zone))
    event.add("dtend", draft.end.astimezone(zone))
    event.add("summary", draft.title)
    event.add("status", "CONFIRMED")
    event.add("sequence", draft.revision)
    if draft.location:
        event.add("location", draft.location)
    if draft.description:
        event.add("description", draft.description)
    for email in draft.attendees:
        event.add("attendee", f"mailto:{email}")
    event.add(PROP_KEY, draft.key)
    event.add(PROP_TENANT, draft.tenant_id)
    event.add(PROP_REVISION, str(draft.revision))
    return event


class OccurrenceGone(Exception):
    """The series has no such occurrence (never had, or it was cancelled)."""


def occurrence_ics(data: str, suffix: str, draft: EventDraft | None, *, stamp: datetime) -> bytes:
    """The series resource ``data`` with its occurrence ``suffix`` (the instance id's part
    after ``@``: the original start in UTC) moved to ``draft`` (an override VEVENT with that
    RECURRENCE-ID, replacing any earlier one), or cancelled when ``draft`` is None (an EXDATE,
    and any override dropped). Every other component (the rule, other overrides, VTIMEZONEs)
    is kept as it was. ``OccurrenceGone`` when the series has no such live occurrence;
    ``ProviderError`` (not retryable) for series we do not write: floating or all-day ones
    (a draft is timed; a floating RECURRENCE-ID needs the calendar's zone to be right)."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise ProviderError("CalDAV: a calendar object could not be parsed.", retryable=False) from exc
    events = [e for e in calendar.subcomponents if isinstance(e, icalendar.Event)]
    masters = [e for e in events if e.get("RECURRENCE-ID") is None]
    if len(masters) != 1 or not (masters[0].get("RRULE") or masters[0].get("RDATE")):
        raise OccurrenceGone()
    master = masters[0]
    first = master.decoded("DTSTART")
    if not isinstance(first, datetime):
        raise ProviderError("CalDAV: occurrences of an all-day series are not written alone.", retryable=False)
    if first.tzinfo is None:
        raise ProviderError("CalDAV: occurrences of a floating-time series are not written alone.", retryable=False)
    try:
        original = datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise OccurrenceGone() from None
    if not _is_live_occurrence(calendar, original):
        raise OccurrenceGone()
    # RECURRENCE-ID and EXDATE in the series' own zone (RFC 5545: the same value type as
    # DTSTART; calendar apps match them by wall time in that zone).
    recurrence_id = original.astimezone(first.tzinfo)
    earlier = [
        c
        for c in calendar.subcomponents
        if isinstance(c, icalendar.Event) and c.get("RECURRENCE-ID") is not None and _utc_of(c) == original
    ]
    calendar.subcomponents = [c for c in calendar.subcomponents if not any(c is e for e in earlier)]
    if draft is None:
        master.add("exdate", recurrence_id)
    else:
        override = _override(earlier[0] if earlier else master, draft, stamp=stamp)
        override.add("recurrence-id", recurrence_id)
        calendar.add_component(override)
        calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


#: What an override takes from the draft (or sets itself), never from the series.
_OVERRIDE_OWN = frozenset(
    {
        "UID",
        "DTSTAMP",
        "DTSTART",
        "DTEND",
        "DURATION",
        "SUMMARY",
        "SEQUENCE",
        "RRULE",
        "RDATE",
        "EXDATE",
        "EXRULE",
        "RECURRENCE-ID",
        "LAST-MODIFIED",
        PROP_KEY,
        PROP_TENANT,
        PROP_REVISION,
    }
)


def _override(base: icalendar.cal.Component, draft: EventDraft, *, stamp: datetime) -> icalendar.Event:
    """The override VEVENT for one moved occurrence: the draft's time, title and markers on
    top of everything else ``base`` (the occurrence's earlier override, else the series)
    says: organizer, attendees and their answers, alarms, categories, status, privacy. A
    location or description the draft gives replaces the series'; attendees the draft adds
    join the series' own. SEQUENCE goes above the base's (RFC 5545 §3.8.7.4: a rescheduling
    is a significant change)."""
    override = _draft_event(draft, str(base["UID"]), stamp=stamp)
    theirs = _attendees(base)
    known = {str(a).lower() for a in theirs}
    added = [a for a in _attendees(override) if str(a).lower() not in known]
    override.pop("ATTENDEE", None)
    drafted = set(override.keys()) - {"STATUS"}
    for name in list(base):
        if name in _OVERRIDE_OWN or name in drafted:
            continue
        if name == "STATUS" and str(base[name]).upper() == "CANCELLED":
            continue  # moving a cancelled occurrence brings it back: the draft's CONFIRMED
        override[name] = base[name]
    for attendee in added:
        override.add("attendee", attendee, encode=False)
    override["SEQUENCE"] = icalendar.vInt(max(draft.revision, int(base.get("SEQUENCE", 0) or 0) + 1))
    override.add("last-modified", stamp.astimezone(UTC))
    for component in base.subcomponents:
        override.add_component(component)
    return override


def _attendees(component: icalendar.cal.Component) -> list[object]:
    found = component.get("ATTENDEE")
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def _utc_of(override: icalendar.cal.Component) -> datetime | None:
    value = override.decoded("RECURRENCE-ID")
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return None


def _is_live_occurrence(calendar: icalendar.Calendar, original: datetime) -> bool:
    """Whether the series has a not-cancelled occurrence whose original start is
    ``original`` (overrides moved anywhere count by their RECURRENCE-ID)."""
    for component in calendar.walk("VEVENT"):
        if component.get("RECURRENCE-ID") is not None and _utc_of(component) == original:
            return str(component.get("STATUS", "")).upper() != "CANCELLED"
    try:
        found = recurring_ical_events.of(calendar, components=["VEVENT"]).between(
            original, original + timedelta(seconds=1)
        )
    except (ValueError, recurring_ical_events.InvalidCalendar) as exc:
        raise ProviderError("CalDAV: a calendar object could not be expanded.", retryable=False) from exc
    for occurrence in found:
        start = occurrence.decoded("DTSTART")
        if (
            occurrence.get("RECURRENCE-ID") is not None
            and _utc_of(occurrence) == original
            and isinstance(start, datetime)
            and start.tzinfo is not None
            and start.astimezone(UTC) == original
        ):
            return str(occurrence.get("STATUS", "")).upper() != "CANCELLED"
    return False


def zone_of(calendar_timezone: str | None) -> tzinfo | None:
    """The zone a calendar's ``calendar-timezone`` property (a VTIMEZONE, or a bare name as
    some servers write it) names, if Python knows it."""
    if not calendar_timezone:
        return None
    match = _TZID.search(calendar_timezone.replace("\r\n", "\n"))
    return _zone(match.group(1).strip() if match else calendar_timezone.strip())


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def instances(
    data: str,
    key: str,
    *,
    etag: str | None,
    tenant_id: str,
    account: str,
    window: tuple[datetime, datetime],
    floating: tzinfo | None,
) -> list[ExternalEvent]:
    """The resource's event instances that overlap ``window``. A single event's id is the
    resource ``key``; an instance of a series is ``key@<RECURRENCE-ID in UTC>`` (all-day:
    ``key@<date>``), stable whatever else changes in the series."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise ProviderError("CalDAV: a calendar object could not be parsed.", retryable=False) from exc
    zone = floating or UTC
    events = calendar.walk("VEVENT")
    if not events:
        return []
    recurring = any(e.get("RRULE") or e.get("RDATE") or e.get("RECURRENCE-ID") for e in events)
    start, end = window
    lone = events[0] if len(events) == 1 and isinstance(events[0], icalendar.Event) else None
    plain = None if recurring or lone is None else _plain_span(lone)
    if lone is not None and plain is not None:
        # Most resources are one timed event: deciding the overlap here spares the expansion
        # (a third of a full listing's CPU, docs/PERFORMANCE.md); the rest is expanded below.
        first, last = plain
        if first < end and last > start:
            return [_event(lone, key, etag=etag, tenant_id=tenant_id, account=account, zone=zone, series=False)]
        return []
    try:
        occurrences = recurring_ical_events.of(calendar, components=["VEVENT"], skip_bad_series=True).between(
            _naive_in(start, zone), _naive_in(end, zone)
        )
    except (ValueError, recurring_ical_events.InvalidCalendar) as exc:
        raise ProviderError("CalDAV: a calendar object could not be expanded.", retryable=False) from exc
    found: list[ExternalEvent] = []
    for occurrence in occurrences:
        found.append(
            _event(occurrence, key, etag=etag, tenant_id=tenant_id, account=account, zone=zone, series=recurring)
        )
    return found


def _plain_span(component: icalendar.cal.Component) -> tuple[datetime, datetime] | None:
    """A lone event's span, when it needs no expansion rules: DTSTART and DTEND both
    date-times with a zone, ending after it starts, no EXDATE. Anything else (all-day,
    floating, DURATION, no end) is left to recurring-ical-events."""
    if component.get("EXDATE") is not None or component.get("DTEND") is None:
        return None
    try:
        first, last = component.decoded("DTSTART"), component.decoded("DTEND")
    except (KeyError, ValueError):
        return None
    if not (isinstance(first, datetime) and isinstance(last, datetime)):
        return None
    if first.tzinfo is None or last.tzinfo is None or last <= first:
        return None
    return first, last


def _naive_in(moment: datetime, zone: tzinfo) -> datetime:
    # recurring-ical-events compares floating events by wall time: give it the window in the
    # zone floating times are read in, and aware bounds for everything else.
    return moment.astimezone(zone)


def _event(
    component: icalendar.Event, key: str, *, etag: str | None, tenant_id: str, account: str, zone: tzinfo, series: bool
) -> ExternalEvent:
    raw_start = component.decoded("DTSTART")
    # recurring-ical-events gives every occurrence a DTEND: from DURATION, else RFC 5545's
    # defaults (a date lasts one day, a date-time no time); and a RECURRENCE-ID.
    raw_end = component.decoded("DTEND") if component.get("DTEND") is not None else raw_start
    event_id = key
    if series:
        original = component.decoded("RECURRENCE-ID") if component.get("RECURRENCE-ID") is not None else raw_start
        event_id = f"{key}{INSTANCE_SEPARATOR}{_instance_suffix(original, zone)}"
    ours = None
    if str(component.get(PROP_TENANT, "")) == tenant_id:
        ours = str(component.get(PROP_KEY, "")) or None
    start_zone = None
    if isinstance(raw_start, datetime) and raw_start.tzinfo is not None:
        start_zone = getattr(raw_start.tzinfo, "key", None)
    all_day = not isinstance(raw_start, datetime)
    return ExternalEvent(
        event_id=event_id,
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
        start=None if all_day else _utc(raw_start, zone),
        end=None if all_day else _utc(raw_end, zone),
        start_date=raw_start.isoformat() if all_day else None,
        end_date=_as_date(raw_end).isoformat() if all_day else None,
        transparent=str(component.get("TRANSP", "")).upper() == "TRANSPARENT",
        declined=_declined(component, account),
        summary=str(component["SUMMARY"]) if component.get("SUMMARY") is not None else None,
        etag=etag,
        crm_appointment_id=ours,
        time_zone=start_zone,
    )


def _instance_suffix(start: date | datetime, zone: tzinfo) -> str:
    """The occurrence's original start (its RECURRENCE-ID; for an occurrence of the rule,
    its start), in UTC basic format: what stays when the instance is moved."""
    if isinstance(start, datetime):
        return _utc(start, zone).strftime("%Y%m%dT%H%M%SZ")
    return start.strftime("%Y%m%d")


def _utc(value: date | datetime, zone: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _declined(component: icalendar.Event, account: str) -> bool:
    me = f"mailto:{account}".lower()
    return any(
        str(a).lower() == me and str(getattr(a, "params", {}).get("PARTSTAT", "")).upper() == "DECLINED"
        for a in _attendees(component)
    )


def walk_uids(data: str) -> Iterator[str]:
    """The UIDs in a calendar object (a resource holds one series: one UID)."""
    for component in icalendar.Calendar.from_ical(data).walk("VEVENT"):
        yield str(component.get("UID", ""))
