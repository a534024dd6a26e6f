"""F4: availability — free slots after CRM appointments and the busy time of conflict calendars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from crmsync.dal.appointments import AppointmentStore
from crmsync.dal.calendars import CalendarStore
from crmsync.dal.mirror import MirrorStore
from crmsync.domain import AppointmentStatus, Principal
from crmsync.errors import Unprocessable

MAX_RANGE = timedelta(days=62)


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime
    #: "crm" (an appointment) or "calendar" (an event of a conflict calendar)
    source: str


class Availability:
    def __init__(self, *, appointments: AppointmentStore, calendars: CalendarStore, mirror: MirrorStore) -> None:
        self._appointments = appointments
        self._calendars = calendars
        self._mirror = mirror

    def external_busy(self, principal: Principal, start: datetime, end: datetime) -> list[Busy]:
        """Busy events of the conflict calendars overlapping [start, end).

        Transparent ("free"), declined and cancelled events do not block; all-day events
        block their days in their calendar's time zone; recurring series arrive expanded;
        the twins of our own appointments are skipped (the appointment itself counts).
        """
        busy: list[Busy] = []
        for calendar in self._calendars.of_user(principal):
            if not calendar.conflict:
                continue
            zone = calendar.time_zone or "UTC"
            for event in self._mirror.events(principal, calendar.connection_id, calendar.calendar_id):
                if not event.blocks_time or event.crm_appointment_id:
                    continue
                interval = event.interval(zone)
                if interval and interval[0] < end and interval[1] > start:
                    busy.append(Busy(interval[0], interval[1], "calendar"))
        return busy

    def busy(self, principal: Principal, start: datetime, end: datetime) -> list[Busy]:
        crm = [
            Busy(a.start, a.end, "crm")
            for a in self._appointments.between(principal, start, end)
            if a.status is AppointmentStatus.CONFIRMED
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
