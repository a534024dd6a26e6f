"""F4: availability — free slots after CRM appointments and the busy time of conflict calendars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from crmsync.dal.appointments import AppointmentStore
from crmsync.dal.calendars import CalendarStore
from crmsync.dal.mirror import MirrorStore
from crmsync.domain import (
    AppointmentStatus,
    ConnectedCalendar,
    ExternalEvent,
    Principal,
    appointment_id_in,
    imported_appointment_id,
)
from crmsync.errors import Unprocessable

MAX_RANGE = timedelta(days=62)


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime
    #: "crm" (an appointment) or "calendar" (an event of a conflict calendar)
    source: str
    #: For ``calendar``: the name of the user's calendar and the event's summary, when known.
    calendar: str | None = None
    event: str | None = None


class Availability:
    def __init__(self, *, appointments: AppointmentStore, calendars: CalendarStore, mirror: MirrorStore) -> None:
        self._appointments = appointments
        self._calendars = calendars
        self._mirror = mirror

    def external_busy(self, principal: Principal, start: datetime, end: datetime) -> list[Busy]:
        """Busy events of the conflict calendars overlapping [start, end), whole (not clipped).

        Transparent ("free"), declined and cancelled events do not block, nor do events
        without duration; all-day events block their days in their calendar's time zone;
        recurring series arrive expanded. The twins of our own appointments are skipped (the
        appointment itself counts): those we pushed (our id rides in the event) and those
        made from an event of the linked calendar (the appointment links to it).
        """
        found: list[tuple[ExternalEvent, ConnectedCalendar, tuple[datetime, datetime]]] = []
        for calendar in self._calendars.of_user(principal):
            if not calendar.conflict:
                continue
            zone = calendar.time_zone or "UTC"
            for event in self._mirror.events(principal, calendar.connection_id, calendar.calendar_id):
                if not event.blocks_time or event.crm_appointment_id:
                    continue
                interval = event.interval(zone)
                if interval and interval[0] < end and interval[1] > start:
                    found.append((event, calendar, interval))
        twins = self._twins(principal, [(e.event_id, c.connection_id, c.calendar_id) for e, c, _ in found])
        return [
            Busy(interval[0], interval[1], "calendar", calendar=calendar.name or None, event=event.summary or None)
            for event, calendar, interval in found
            if (event.event_id, calendar.connection_id, calendar.calendar_id) not in twins
        ]

    def _twins(self, principal: Principal, events: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Which of these ``(event, connection, calendar)`` an appointment of ours links to.

        Only two appointments can: the one the event id was derived from, and the one made
        from the event — so batch reads of those ids answer (one per 100 events in the window),
        however many appointments the user has."""
        candidates = {
            key: [
                i for i in (appointment_id_in(key[0]), imported_appointment_id(principal, key[1], key[2], key[0])) if i
            ]
            for key in events
        }
        known = self._appointments.get_many(principal, (i for ids in candidates.values() for i in ids))
        return {
            key
            for key, ids in candidates.items()
            for i in ids
            if i in known
            and (link := known[i].link) is not None
            and (link.event_id, link.connection_id, link.calendar_id) == key
        }

    def busy(self, principal: Principal, start: datetime, end: datetime) -> list[Busy]:
        """Everything that blocks [start, end): confirmed appointments (``crm``) and busy events
        of the conflict calendars (``calendar``), each whole, unmerged, by start then end."""
        crm = [
            Busy(a.start, a.end, "crm")
            for a in self._appointments.between(principal, start, end)
            if a.status is AppointmentStatus.CONFIRMED and a.end > a.start
        ]
        return sorted(crm + self.external_busy(principal, start, end), key=lambda b: (b.start, b.end))

    def free_slots(
        self, principal: Principal, start: datetime, end: datetime, duration: timedelta, step: timedelta
    ) -> tuple[list[tuple[datetime, datetime]], list[Busy]]:
        """Slots of ``duration`` starting every ``step`` from ``start`` that overlap no busy
        time. Times are absolute, so daylight-saving changes shift nothing."""
        if end <= start:
            raise Unprocessable("The window must end after it starts.")
        if end - start > MAX_RANGE:
            raise Unprocessable("The window may span at most 62 days.")
        busy = self.busy(principal, start, end)
        merged = _merge([(b.start, b.end) for b in busy])
        slots: list[tuple[datetime, datetime]] = []
        cursor, index = start, 0
        while cursor + duration <= end:
            slot_end = cursor + duration
            while index < len(merged) and merged[index][1] <= cursor:
                index += 1
            if index >= len(merged) or merged[index][0] >= slot_end:
                slots.append((cursor, slot_end))
            cursor += step
        return slots, busy


def _merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged
