"""Appointments (the CRM side), and pushing them to the user's linked calendar (F3).

Every change is stored first and pushed through the queue: the API answers at once, a
failed push is retried, and a push of an old revision never undoes a newer one.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.dal.appointments import AppointmentFields, AppointmentStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import (
    MAX_APPOINTMENT_DURATION,
    Appointment,
    AppointmentStatus,
    ConnectionStatus,
    EventLink,
    ExternalDeletion,
    ExternalEvent,
    Principal,
    SyncDirection,
    SyncPreferences,
    busy_span,
    imported_appointment_id,
)
from crmsync.errors import BookingConflict, NotFound, ProviderError, ReauthorizationRequired, Unprocessable
from crmsync.messaging.events import (
    AppointmentCancelled,
    AppointmentChanged,
    AppointmentCreated,
    AppointmentEvent,
    EventPublisher,
    Origin,
)
from crmsync.messaging.messages import AppointmentPush
from crmsync.messaging.queue import SyncQueue
from crmsync.ports.calendar import CalendarAccess, CalendarPort, EventDraft, WrittenEvent
from crmsync.ports.errors import ProviderNotFound

log = logging.getLogger(__name__)


#: How long a stored revision may wait for its push before the sweep enqueues it again.
PUSH_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class PushSweep:
    """What one push sweep did: pushes enqueued again, satisfied marks removed, sends refused."""

    enqueued: int
    cleaned: int
    failed: int


class Appointments:
    def __init__(
        self,
        *,
        store: AppointmentStore,
        settings: SettingsStore,
        connections: ConnectionStore,
        calendars: CalendarAccess,
        queue: SyncQueue,
        external_busy: Callable[[Principal, datetime, datetime], list[Any]] | None = None,
        events: EventPublisher | None = None,
        created: Callable[[Principal, str, str, str], object] | None = None,
    ) -> None:
        """``external_busy(principal, start, end)``: busy intervals of conflict calendars
        (objects with ``start``/``end``), which block bookings like appointments do (F5).
        ``calendars``: opens the calendar port of a connection (whatever its provider).
        ``events``: where AppointmentCreated/Changed/Cancelled go once a change is stored.
        ``created(principal, connection, calendar, event_id)``: told of each event a push
        creates in a calendar whose provider does not report the deletion of events no
        listing has shown (``CalendarPort.reports_unseen_deletions``), so the sync checks
        it (``MirrorStore.record_unlisted``)."""
        self._store = store
        self._settings = settings
        self._connections = connections
        self._calendars = calendars
        self._queue = queue
        self._external_busy = external_busy
        self._events = events
        self._created = created

    # ------------------------------------------------------------------ the CRM side
    def create(self, principal: Principal, fields: AppointmentFields) -> Appointment:
        _check(fields)
        self._refuse_external_busy(principal, fields)
        appointment = self._store.create(principal, uuid.uuid4().hex, fields)
        self._enqueue(appointment)
        self._publish(AppointmentCreated, appointment, "crm")
        return appointment

    def get(self, principal: Principal, appointment_id: str) -> Appointment:
        appointment = self._store.get(principal, appointment_id)
        if appointment is None:
            raise NotFound(f"No appointment with id {appointment_id!r}.")
        return appointment

    def between(self, principal: Principal, start: datetime | None, end: datetime | None) -> list[Appointment]:
        return self._store.between(principal, start, end)

    def change(self, principal: Principal, appointment_id: str, **changes: Any) -> Appointment:
        current = self.get(principal, appointment_id)
        if current.status is AppointmentStatus.CANCELLED:
            raise Unprocessable("A cancelled appointment cannot be changed.")
        fields = replace(_fields_of(current), **changes)
        _check(fields)
        self._refuse_external_busy(principal, fields)
        return self._commit(principal, appointment_id, fields, AppointmentStatus.CONFIRMED)

    def cancel(self, principal: Principal, appointment_id: str) -> Appointment:
        current = self.get(principal, appointment_id)
        if current.status is AppointmentStatus.CANCELLED:
            return current  # cancelling twice changes nothing
        return self._commit(principal, appointment_id, _fields_of(current), AppointmentStatus.CANCELLED)

    def _refuse_external_busy(self, principal: Principal, fields: AppointmentFields) -> None:
        if self._external_busy is None:
            return
        clashes = sorted(self._external_busy(principal, fields.start, fields.end), key=lambda c: (c.start, c.end))
        if clashes:
            raise BookingConflict(
                "The time is busy in " + "; ".join(_busy_in(c, fields.time_zone) for c in clashes) + ".",
                [
                    {
                        "start": c.start.isoformat(),
                        "end": c.end.isoformat(),
                        "source": "calendar",
                        "calendar": c.calendar,
                        "event": c.event,
                    }
                    for c in clashes
                ],
            )

    def _commit(
        self, principal: Principal, appointment_id: str, fields: AppointmentFields, status: AppointmentStatus
    ) -> Appointment:
        changed = self._store.change(principal, appointment_id, fields, status)
        if changed is None:
            raise NotFound(f"No appointment with id {appointment_id!r}.")
        self._enqueue(changed)
        self._publish_change(changed, "crm")
        return changed

    def _publish_change(self, appointment: Appointment, origin: Origin) -> None:
        cancelled = appointment.status is AppointmentStatus.CANCELLED
        self._publish(AppointmentCancelled if cancelled else AppointmentChanged, appointment, origin)

    def _publish(self, kind: type[AppointmentEvent], appointment: Appointment, origin: Origin) -> None:
        if self._events is None:
            return
        self._events.publish(
            [
                kind(
                    event_id=f"appointment:{appointment.appointment_id}:{appointment.revision}",
                    tenant_id=appointment.tenant_id,
                    user_id=appointment.user_id,
                    origin=origin,
                    appointment_id=appointment.appointment_id,
                    revision=appointment.revision,
                    status=appointment.status.value,
                    title=appointment.title,
                    start=appointment.start,
                    end=appointment.end,
                    time_zone=appointment.time_zone,
                )
            ]
        )

    def _enqueue(self, appointment: Appointment, occasion: str = "") -> bool:
        return self._send_push(
            AppointmentPush(
                tenant_id=appointment.tenant_id,
                user_id=appointment.user_id,
                appointment_id=appointment.appointment_id,
                revision=appointment.revision,
                occasion=occasion,
            )
        )

    def _send_push(self, message: AppointmentPush) -> bool:
        try:
            self._queue.send(message)
        except Exception:  # stored, visibly pending and marked due: the push sweep sends it again
            log.exception("could not enqueue the appointment push")
            return False
        return True

    def sweep_pushes(self, now: datetime | None = None) -> PushSweep:
        """The push sweep (every 5 minutes): enqueue again the pushes still due
        ``PUSH_GRACE`` after their revision was stored — their message was never sent, or
        the worker is waiting for the user to reconnect. Marks already satisfied (the
        revision was pushed but the mark outlived it) are removed. One occasion per
        5-minute bucket: a repeated firing within it is a no-op at the FIFO queue."""
        now = now or datetime.now(UTC)
        bucket = now.astimezone(UTC).replace(minute=now.astimezone(UTC).minute // 5 * 5, second=0, microsecond=0)
        occasion = f"sweep@{bucket.strftime('%Y-%m-%dT%H:%M')}"
        enqueued = cleaned = failed = 0
        for due in self._store.pushes_due(now - PUSH_GRACE):
            if due.pushed_revision >= due.revision:
                cleaned += self._store.clear_push_due(due.principal, due.appointment_id, due.revision)
                continue
            message = AppointmentPush(
                tenant_id=due.principal.tenant_id,
                user_id=due.principal.user_id,
                appointment_id=due.appointment_id,
                revision=due.revision,
                occasion=occasion,
            )
            if self._send_push(message):
                enqueued += 1
            else:
                failed += 1
        return PushSweep(enqueued=enqueued, cleaned=cleaned, failed=failed)

    def enqueue_pending(self, principal: Principal, days_back: int) -> int:
        """After a calendar is linked: bring it every appointment of the sync window (those
        never pushed, and those living in a previously linked calendar)."""
        since = datetime.now(UTC) - timedelta(days=days_back)
        occasion = f"linked@{datetime.now(UTC).isoformat()}"
        appointments = [
            a
            for a in self._store.between(principal, since, None)
            if a.status is AppointmentStatus.CONFIRMED or a.link is not None
        ]
        for appointment in appointments:
            self._enqueue(appointment, occasion)
        return len(appointments)

    # ------------------------------------------------------------------ the calendar side (F3, F6)
    def absorb(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        events: list[ExternalEvent],
        complete_since: datetime | None = None,
    ) -> int:
        """Changes seen in the linked calendar, brought into the CRM (two-way and
        calendar → CRM directions): new events become appointments, moved ones move theirs,
        deleted ones cancel or unlink theirs (F6). Echoes of our own writes change nothing;
        while a CRM change is still being pushed, the CRM wins. Returns how many changed.

        ``complete_since``: ``events`` is the calendar's complete list of events ending after
        that moment (a full sync), so a linked appointment from then on whose event is not
        in it was deleted — even if Google no longer reports the deletion."""
        settings = self._settings.get(principal)
        linked = settings.linked
        if linked is None or (linked.connection_id, linked.calendar_id) != (connection_id, calendar_id):
            return 0
        if settings.preferences.direction is SyncDirection.CRM_TO_CALENDAR:
            return 0
        known = self._store.by_event(principal, connection_id, calendar_id)
        if complete_since is not None:
            listed = {e.event_id for e in events}
            events = events + [
                ExternalEvent.gone(event_id, crm_appointment_id=a.appointment_id)
                for event_id, a in known.items()
                if event_id not in listed and a.end >= complete_since
            ]
        changed = 0
        for event in events:
            appointment = known.get(event.event_id)
            if appointment is None and event.crm_appointment_id:
                appointment = self._store.get(principal, event.crm_appointment_id)
            if appointment is not None and appointment.pushed_revision < appointment.revision:
                continue  # our newer revision is on its way to the calendar
            outcome = self._absorb_one(principal, connection_id, calendar_id, event, appointment, settings.preferences)
            if outcome is not None:
                changed += 1
                if appointment is None:
                    self._publish(AppointmentCreated, outcome, "provider")
                else:
                    self._publish_change(outcome, "provider")
        return changed

    def linked_event_ids(
        self, principal: Principal, connection_id: str, calendar_id: str, since: datetime | None
    ) -> set[str]:
        """The events of this calendar that live appointments (ending after ``since``) are
        linked to: what a sync's deletions could cancel (the mass-deletion guard counts them)."""
        return {
            event_id
            for event_id, a in self._store.by_event(principal, connection_id, calendar_id).items()
            if a.status is AppointmentStatus.CONFIRMED and (since is None or a.end >= since)
        }

    def keep(self, principal: Principal, connection_id: str, calendar_id: str, event_ids: set[str]) -> int:
        """The user ignored the reported deletion of these events: their appointments stay
        confirmed, lose the link to the vanished event and are pushed again (the push puts an
        event back into the linked calendar; with the calendar → CRM direction they stay
        unlinked). So no later sync finds them missing again, and none cancels them.
        Idempotent: an appointment already detached is no longer linked to these events."""
        kept = 0
        occasion = f"kept@{datetime.now(UTC).isoformat()}"
        for event_id, appointment in self._store.by_event(principal, connection_id, calendar_id).items():
            if event_id not in event_ids or appointment.status is not AppointmentStatus.CONFIRMED:
                continue
            detached = self._store.detach(principal, appointment)
            if detached is not None:
                kept += 1
                self._enqueue(detached, occasion)
        return kept

    def _absorb_one(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        event: ExternalEvent,
        appointment: Appointment | None,
        preferences: SyncPreferences,
    ) -> Appointment | None:
        link = EventLink(connection_id, calendar_id, event.event_id, event.etag)
        if event.cancelled:
            if appointment is None or appointment.status is AppointmentStatus.CANCELLED or appointment.link is None:
                return None
            cancel = preferences.external_deletion is ExternalDeletion.CANCEL
            return self._store.absorb_change(
                principal,
                appointment,
                _fields_of(appointment),
                AppointmentStatus.CANCELLED if cancel else AppointmentStatus.CONFIRMED,
                None,
            )
        if event.start is None or event.end is None:
            return None  # all-day events block time but do not become appointments
        if appointment is None and event.event_type != "default":
            return None  # out of office, focus time…: they block time; Google keeps them as they are
        if event.end <= event.start:
            # No duration (or an end before the start): it blocks no time, and an appointment
            # must end after it starts — the appointment stays as it was, or is not made.
            log.info("event without duration; not brought into the CRM", extra={"connection_id": connection_id})
            return None
        if event.end - event.start > MAX_APPOINTMENT_DURATION:
            log.info("event too long for an appointment; it only blocks time", extra={"connection_id": connection_id})
            return None
        if appointment is None:
            if event.crm_appointment_id:
                return None  # the twin of an appointment we no longer have
            fields = AppointmentFields(
                title=event.summary or "(no title)",
                start=event.start,
                end=event.end,
                time_zone=event.time_zone or "UTC",
            )
            appointment_id = imported_appointment_id(principal, connection_id, calendar_id, event.event_id)
            return self._store.import_event(principal, appointment_id, fields, link)
        if appointment.status is AppointmentStatus.CANCELLED:
            return None
        title = event.summary or appointment.title
        if (appointment.start, appointment.end, appointment.title) == (event.start, event.end, title):
            return None  # nothing new: an echo of our own write
        fields = replace(_fields_of(appointment), start=event.start, end=event.end, title=title)
        return self._store.absorb_change(principal, appointment, fields, AppointmentStatus.CONFIRMED, link)

    # ------------------------------------------------------------------ the push (queue worker)
    def push(self, message: AppointmentPush) -> str:
        """Make the linked calendar hold the appointment's current revision.

        Idempotent: a duplicated or stale message finds nothing to do. Raises on retryable
        provider errors (the queue retries); records a permanent failure on the appointment.
        """
        principal = Principal(message.tenant_id, message.user_id)
        appointment = self._store.get(principal, message.appointment_id)
        if appointment is None:
            return "gone"
        settings = self._settings.get(principal)
        target = settings.linked if settings.preferences.direction is not SyncDirection.CALENDAR_TO_CRM else None
        if target is None:
            # Stays pending, and the sweep leaves it alone: linking a calendar pushes it.
            self._store.clear_push_due(principal, appointment.appointment_id, appointment.revision)
            return "not_linked"
        in_target = appointment.link is not None and (appointment.link.connection_id, appointment.link.calendar_id) == (
            target.connection_id,
            target.calendar_id,
        )
        settled = in_target or (appointment.link is None and appointment.status is AppointmentStatus.CANCELLED)
        if appointment.pushed_revision >= appointment.revision and settled:
            self._store.clear_push_due(principal, appointment.appointment_id, appointment.revision)
            return "up_to_date"
        writer = self._writer_for(principal, target.connection_id)
        if writer is None:
            # Keeps its push mark: the sweep tries again every 5 minutes, so it lands soon
            # after the user reconnects the account.
            return "waiting_for_reauth"
        try:
            link = self._apply(writer, appointment, target.connection_id, target.calendar_id)
        except ReauthorizationRequired:
            stored = self._connections.get_stored(principal, target.connection_id)
            if stored is not None:
                self._connections.set_status(
                    principal,
                    target.connection_id,
                    ConnectionStatus.NEEDS_REAUTH,
                    "invalid_grant",
                    version=stored.version,
                )
            return "waiting_for_reauth"
        except ProviderError as exc:
            if exc.retryable:
                raise
            self._store.record_push(
                principal, appointment.appointment_id, appointment.revision, appointment.link, exc.detail
            )
            return "failed"
        self._store.record_push(principal, appointment.appointment_id, appointment.revision, link)
        return "deleted" if link is None else "pushed"

    def _apply(
        self, writer: CalendarPort, appointment: Appointment, connection_id: str, calendar_id: str
    ) -> EventLink | None:
        old = appointment.link
        if old and (old.connection_id, old.calendar_id) != (connection_id, calendar_id):
            # The user linked another calendar: the event moves there.
            old_writer = self._writer_for(appointment.principal, old.connection_id)
            if old_writer is not None:
                _delete_quietly(old_writer, old.calendar_id, old.event_id)
            old = None
        if appointment.status is AppointmentStatus.CANCELLED:
            if old:
                _delete_quietly(writer, calendar_id, old.event_id)
            elif (ghost := writer.created_event_id(appointment.appointment_id)) is not None:
                # Never linked, but a create may have landed with its answer lost (the retry
                # was overtaken by this cancel): its event is gone too, or the calendar keeps
                # a booking the CRM cancelled.
                _delete_quietly(writer, calendar_id, ghost)
            else:
                _delete_lost_create(writer, calendar_id, appointment)
            return None
        draft = EventDraft.of(appointment)
        if old is None:
            # Idempotent by the adapter's strategy: a retry after a lost answer finds its event.
            event = self._create(writer, appointment.principal, connection_id, calendar_id, draft)
        else:
            try:
                event = writer.update_event(calendar_id, old.event_id, draft)
            except ProviderNotFound:
                # Gone from the calendar for good (deleted and purged) while this change was
                # on its way: the CRM's later change wins and puts the event back (F6).
                event = self._create(writer, appointment.principal, connection_id, calendar_id, draft)
        return EventLink(connection_id, calendar_id, event.event_id, event.etag)

    def _create(
        self, writer: CalendarPort, principal: Principal, connection_id: str, calendar_id: str, draft: EventDraft
    ) -> WrittenEvent:
        """Create the event; where the provider would never report its deletion before a
        listing showed it, record it for the sync's check — before the push is recorded, so
        an interrupted push's retry (the same event, by idempotency) records it again."""
        event = writer.create_event(calendar_id, draft)
        if self._created is not None and not writer.reports_unseen_deletions:
            self._created(principal, connection_id, calendar_id, event.event_id)
        return event

    def _writer_for(self, principal: Principal, connection_id: str) -> CalendarPort | None:
        stored = self._connections.get_stored(principal, connection_id)
        if stored is None or stored.connection.status is not ConnectionStatus.CONNECTED:
            return None
        return self._calendars.calendar(stored)


def _delete_lost_create(writer: CalendarPort, calendar_id: str, appointment: Appointment) -> None:
    """The same ghost for an adapter that cannot name the event a create made (Graph: the
    provider chooses ids; ``created_event_id`` is None), whose creates are idempotent by a key
    the provider remembers (``transactionId``): a create with the same key answers with the
    event a lost create made, which is then deleted. When none had landed, this makes one and
    deletes it at once: without attendees, so no invitation or cancellation goes out. Costs
    two provider calls per cancelled appointment that was never linked."""
    probe = replace(EventDraft.of(appointment), attendees=())
    _delete_quietly(writer, calendar_id, writer.create_event(calendar_id, probe).event_id)


def _delete_quietly(writer: CalendarPort, calendar_id: str, event_id: str) -> None:
    with contextlib.suppress(ProviderNotFound):  # already gone: that is what we wanted
        writer.delete_event(calendar_id, event_id)


def _fields_of(a: Appointment) -> AppointmentFields:
    return AppointmentFields(
        title=a.title,
        start=a.start,
        end=a.end,
        time_zone=a.time_zone,
        contact_id=a.contact_id,
        attendees=a.attendees,
        location=a.location,
        description=a.description,
    )


def _busy_in(busy: Any, time_zone: str) -> str:
    """``Team: Weekly sync (09:00–10:00)`` — the user's own calendar and event, by name."""
    where = busy.calendar or "a conflict calendar"
    what = f": {busy.event}" if busy.event else ""
    return f"{where}{what} ({busy_span(busy.start, busy.end, time_zone)})"


def _check(fields: AppointmentFields) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if fields.end <= fields.start:
        raise Unprocessable("An appointment must end after it starts.")
    if fields.end - fields.start > MAX_APPOINTMENT_DURATION:
        raise Unprocessable(f"An appointment may last at most {MAX_APPOINTMENT_DURATION.days} days.")
    try:
        ZoneInfo(fields.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise Unprocessable(f"Unknown time zone {fields.time_zone!r}.") from None
