"""Appointments (the CRM side of F3), under the user's partition."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from crmsync.dal import condition_failed, get_many, shared_connection
from crmsync.dal.versioned import update_unread
from crmsync.domain import (
    MAX_APPOINTMENT_DURATION,
    Appointment,
    AppointmentStatus,
    EventLink,
    Principal,
    busy_span,
)
from crmsync.errors import BookingConflict, Conflict, NotFound
from crmsync.models.appointment import (
    APPOINTMENT_SK_PREFIX,
    PUSH_DUE_PREFIX,
    PUSH_DUE_SHARDS,
    SCHEDULE_SK,
    STARTS_AT_PREFIX,
    AppointmentItem,
    ScheduleItem,
    push_due_at_key,
    push_due_shard,
    starts_at_key,
)
from crmsync.models.keys import check_id, user_pk


@dataclass(frozen=True)
class AppointmentFields:
    """What the CRM user sets; everything else is bookkeeping."""

    title: str
    start: datetime
    end: datetime
    time_zone: str
    contact_id: str | None = None
    attendees: tuple[str, ...] = ()
    location: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class DuePush:
    """An appointment marked as not pushed yet (the ``pushes_due`` index; read eventually
    consistently, so a mark may already be satisfied: ``pushed_revision >= revision``)."""

    principal: Principal
    appointment_id: str
    revision: int
    pushed_revision: int


def _to_domain(item: AppointmentItem) -> Appointment:
    link = (
        EventLink(item.link_connection_id, item.link_calendar_id, item.link_event_id, item.link_etag)
        if item.link_connection_id and item.link_calendar_id and item.link_event_id
        else None
    )
    return Appointment(
        tenant_id=item.tenant_id,
        user_id=item.user_id,
        appointment_id=item.appointment_id,
        title=item.title,
        start=item.start,
        end=item.end,
        time_zone=item.time_zone,
        status=AppointmentStatus(item.status),
        contact_id=item.contact_id,
        attendees=tuple(item.attendees or ()),
        location=item.location,
        description=item.description,
        created_at=item.created_at,
        updated_at=item.updated_at,
        revision=int(item.revision),
        link=link,
        pushed_revision=int(item.pushed_revision or 0),
        push_error=item.push_error,
    )


_BOOKING_ATTEMPTS = 8


def _valid_id(appointment_id: str) -> bool:
    try:
        check_id("appointment", appointment_id)
    except ValueError:
        return False
    return True


def _cancelled_by_condition(exc: TransactWriteError) -> bool:
    reasons = getattr(exc, "cancellation_reasons", None) or []
    codes = {getattr(r, "code", None) for r in reasons if r is not None}
    return "ConditionalCheckFailed" in codes or exc.cause_response_code == "TransactionCanceledException"


class AppointmentStore:
    def _item(self, principal: Principal, appointment_id: str) -> AppointmentItem | None:
        try:
            check_id("appointment", appointment_id)
            return AppointmentItem.get(
                user_pk(principal.tenant_id, principal.user_id),
                APPOINTMENT_SK_PREFIX + appointment_id,
                consistent_read=True,
            )
        except (DoesNotExist, ValueError):
            return None

    def get(self, principal: Principal, appointment_id: str) -> Appointment | None:
        item = self._item(principal, appointment_id)
        return _to_domain(item) if item else None

    def get_many(self, principal: Principal, appointment_ids: Iterable[str]) -> dict[str, Appointment]:
        """The user's appointments with these ids that exist, by id (BatchGetItem, consistent)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        wanted = sorted({i for i in appointment_ids if _valid_id(i)})
        found: dict[str, Appointment] = {}
        for first in range(0, len(wanted), 100):
            keys = [(AppointmentItem, pk, APPOINTMENT_SK_PREFIX + i) for i in wanted[first : first + 100]]
            for item in get_many(keys):
                if isinstance(item, AppointmentItem):
                    found[item.appointment_id] = _to_domain(item)
        return found

    def create(self, principal: Principal, appointment_id: str, fields: AppointmentFields) -> Appointment:
        """Book a new appointment; refused with :class:`BookingConflict` if it overlaps."""
        now = datetime.now(UTC)

        def build() -> AppointmentItem:
            return _new_item(principal, appointment_id, fields, now, link=None)

        return self._book(principal, appointment_id, fields, build, new=True)

    def _book(
        self,
        principal: Principal,
        appointment_id: str,
        fields: AppointmentFields,
        build: Callable[[], AppointmentItem | None],
        *,
        new: bool,
    ) -> Appointment:
        """Commit a confirmed appointment only if nothing else took its time meanwhile.

        Reads the user's schedule revision, checks for overlaps, then writes the appointment
        and the next schedule revision in one transaction conditioned on the revision read:
        of two bookings decided on the same view, exactly one commits; the other re-reads,
        sees the winner and is refused (F5).
        """
        pk = user_pk(principal.tenant_id, principal.user_id)
        for _ in range(_BOOKING_ATTEMPTS):
            revision = self._schedule_revision(pk)
            clashes = [
                a
                for a in self.between(principal, fields.start, fields.end)
                if a.status is AppointmentStatus.CONFIRMED and a.appointment_id != appointment_id and a.end > a.start
            ]
            if clashes:
                raise BookingConflict(
                    "The time is already booked: "
                    + "; ".join(f"{c.title} ({busy_span(c.start, c.end, fields.time_zone)})" for c in clashes)
                    + ".",
                    [
                        {
                            "start": c.start.isoformat(),
                            "end": c.end.isoformat(),
                            "source": "crm",
                            "calendar": None,
                            "event": c.title,
                        }
                        for c in clashes
                    ],
                )
            item = build()
            if item is None:
                raise NotFound(f"No appointment with id {appointment_id!r}.")
            schedule = ScheduleItem(pk, SCHEDULE_SK)
            try:
                with TransactWrite(connection=shared_connection()) as transaction:
                    transaction.save(item, condition=AppointmentItem.sk.does_not_exist() if new else None)
                    transaction.update(
                        schedule,
                        actions=[ScheduleItem.revision.set(revision + 1)],
                        condition=(ScheduleItem.revision == revision) if revision else ScheduleItem.sk.does_not_exist(),
                    )
            except TransactWriteError as exc:
                if not _cancelled_by_condition(exc):
                    raise
                continue  # someone booked (or edited) meanwhile: look again
            return _to_domain(item)
        raise Conflict("The schedule is changing too fast; try again.")

    def _schedule_revision(self, pk: str) -> int:
        try:
            return int(ScheduleItem.get(pk, SCHEDULE_SK, consistent_read=True).revision)
        except DoesNotExist:
            return 0

    def between(
        self, principal: Principal, start: datetime | None = None, end: datetime | None = None
    ) -> list[Appointment]:
        """Appointments overlapping [start, end), in start order. With a bound, only the
        appointments starting in the range that can reach it are read (``by_start`` index:
        none lasts longer than MAX_APPOINTMENT_DURATION)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        if start is None and end is None:
            every = AppointmentItem.sk.startswith(APPOINTMENT_SK_PREFIX)
            items = AppointmentItem.query(pk, every, consistent_read=True)
        else:
            low = starts_at_key(start - MAX_APPOINTMENT_DURATION) if start is not None else STARTS_AT_PREFIX
            high = starts_at_key(end) if end is not None else STARTS_AT_PREFIX + "~"
            in_range = AppointmentItem.starts_at.between(low, high)
            items = AppointmentItem.by_start.query(pk, in_range, consistent_read=True)
        out = [_to_domain(i) for i in items]
        if start is not None:
            out = [a for a in out if a.end > start]
        if end is not None:
            out = [a for a in out if a.start < end]
        return sorted(out, key=lambda a: (a.start, a.appointment_id))

    def change(
        self, principal: Principal, appointment_id: str, fields: AppointmentFields, status: AppointmentStatus
    ) -> Appointment | None:
        """A new revision of the appointment. A confirmed one is booked again (refused if it
        now overlaps); a concurrent edit of the same appointment makes this raise Conflict."""
        now = datetime.now(UTC)

        def build() -> AppointmentItem | None:
            item = self._item(principal, appointment_id)
            if item is None:
                return None
            _apply(item, fields, now)
            item.status = status.value
            item.revision = int(item.revision) + 1
            item.push_error = None
            _mark_push_due(item, now)
            return item

        if status is AppointmentStatus.CONFIRMED:
            try:
                return self._book(principal, appointment_id, fields, build, new=False)
            except NotFound:
                return None
        item = build()
        if item is None:
            return None
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The appointment changed concurrently; reload and try again.") from exc
            raise
        return _to_domain(item)

    def by_event(self, principal: Principal, connection_id: str, calendar_id: str) -> dict[str, Appointment]:
        """The user's appointments linked to events of one calendar, by event id."""
        return {
            a.link.event_id: a
            for a in self.between(principal, None, None)
            if a.link and (a.link.connection_id, a.link.calendar_id) == (connection_id, calendar_id)
        }

    def import_event(
        self, principal: Principal, appointment_id: str, fields: AppointmentFields, link: EventLink
    ) -> Appointment | None:
        """An appointment made from an event created in the linked calendar: already in sync
        (nothing to push back). ``None`` if it was imported before (idempotent)."""
        item = _new_item(principal, appointment_id, fields, datetime.now(UTC), link=link)
        try:
            item.save(condition=AppointmentItem.sk.does_not_exist())
        except PutError as exc:
            if condition_failed(exc):
                return None
            raise
        return _to_domain(item)

    def absorb_change(
        self,
        principal: Principal,
        appointment: Appointment,
        fields: AppointmentFields,
        status: AppointmentStatus,
        link: EventLink | None,
    ) -> Appointment | None:
        """A change made in the calendar: a new revision the calendar already has (so it is
        not pushed back: no echo). ``None`` if the appointment changed meanwhile."""
        item = self._item(principal, appointment.appointment_id)
        if item is None or int(item.revision) != appointment.revision:
            return None
        now = datetime.now(UTC)
        _apply(item, fields, now)
        item.status = status.value
        item.revision = int(item.revision) + 1
        item.pushed_revision = item.revision
        item.push_error = None
        item.push_due = None  # the calendar has this revision: nothing to push
        item.push_due_at = None
        item.link_connection_id = link.connection_id if link else None
        item.link_calendar_id = link.calendar_id if link else None
        item.link_event_id = link.event_id if link else None
        item.link_etag = link.etag if link else None
        return _saved(item)

    def detach(self, principal: Principal, appointment: Appointment) -> Appointment | None:
        """The appointment loses its event but stays (the user ignored the event's reported
        deletion): a new revision without a link, so its push puts an event back. ``None``
        if the appointment changed meanwhile."""
        item = self._item(principal, appointment.appointment_id)
        if item is None or int(item.revision) != appointment.revision:
            return None
        now = datetime.now(UTC)
        item.revision = int(item.revision) + 1
        item.push_error = None
        item.updated_at = now
        item.link_connection_id = None
        item.link_calendar_id = None
        item.link_event_id = None
        item.link_etag = None
        _mark_push_due(item, now)  # this revision puts the event back: the sweep makes sure it does
        return _saved(item)

    def record_push(
        self, principal: Principal, appointment_id: str, revision: int, link: EventLink | None, error: str | None = None
    ) -> bool:
        """Note that ``revision`` reached the provider (or failed for good). Never moves back:
        an older revision's push finishing late does not overwrite a newer one's link (the
        same revision may be recorded again, e.g. after moving to a newly linked calendar)."""
        actions: list[Action] = [
            AppointmentItem.pushed_revision.set(revision),
            _set_or_remove(AppointmentItem.push_error, error),
            _set_or_remove(AppointmentItem.link_connection_id, link.connection_id if link else None),
            _set_or_remove(AppointmentItem.link_calendar_id, link.calendar_id if link else None),
            _set_or_remove(AppointmentItem.link_event_id, link.event_id if link else None),
            _set_or_remove(AppointmentItem.link_etag, link.etag if link else None),
        ]
        try:
            update_unread(  # the version moves: an edit that read the item before this re-reads
                AppointmentItem,
                user_pk(principal.tenant_id, principal.user_id),
                APPOINTMENT_SK_PREFIX + appointment_id,
                actions,
                condition=AppointmentItem.sk.exists() & (AppointmentItem.pushed_revision <= revision),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        self.clear_push_due(principal, appointment_id, revision)
        return True

    def clear_push_due(self, principal: Principal, appointment_id: str, revision: int) -> bool:
        """Remove the appointment's push mark if ``revision`` is still its current one (a
        newer revision keeps its mark: it still has to be pushed). Touches nothing else, not
        even the version: a concurrent edit rewrites the whole item, mark included."""
        try:
            AppointmentItem._get_connection().update_item(
                user_pk(principal.tenant_id, principal.user_id),
                APPOINTMENT_SK_PREFIX + appointment_id,
                actions=[AppointmentItem.push_due.remove(), AppointmentItem.push_due_at.remove()],
                condition=AppointmentItem.sk.exists() & (AppointmentItem.revision == revision),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def pushes_due(self, before: datetime) -> Iterator[DuePush]:
        """Appointments marked as not pushed since before ``before``, shard by shard, oldest
        first within each (the ``pushes_due`` index)."""
        for shard in range(PUSH_DUE_SHARDS):
            for item in AppointmentItem.pushes_due.query(
                f"{PUSH_DUE_PREFIX}{shard}", AppointmentItem.push_due_at < push_due_at_key(before)
            ):
                yield DuePush(
                    Principal(item.tenant_id, item.user_id),
                    item.appointment_id,
                    int(item.revision),
                    int(item.pushed_revision or 0),
                )


def _saved(item: AppointmentItem) -> Appointment | None:
    """Save a changed item read before; ``None`` if it changed meanwhile (its version moved)."""
    try:
        item.save()
    except PutError as exc:
        if condition_failed(exc):
            return None
        raise
    return _to_domain(item)


def _mark_push_due(item: AppointmentItem, now: datetime) -> None:
    """The stored revision is not in the calendar yet: the push sweep finds it if its push
    never runs (e.g. the queue refused the message)."""
    item.push_due = push_due_shard(item.appointment_id)
    item.push_due_at = push_due_at_key(now)


def _set_or_remove(attribute: UnicodeAttribute, value: str | None) -> Action:
    return attribute.set(value) if value else attribute.remove()


def _new_item(
    principal: Principal, appointment_id: str, fields: AppointmentFields, now: datetime, *, link: EventLink | None
) -> AppointmentItem:
    """Revision 1 of a confirmed appointment; with ``link`` it came from that event, so the
    calendar already has it (pushed), without it is still to be pushed."""
    item = AppointmentItem(
        user_pk(principal.tenant_id, principal.user_id),
        APPOINTMENT_SK_PREFIX + appointment_id,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        appointment_id=appointment_id,
        status=AppointmentStatus.CONFIRMED.value,
        created_at=now,
        revision=1,
        pushed_revision=1 if link else 0,
        link_connection_id=link.connection_id if link else None,
        link_calendar_id=link.calendar_id if link else None,
        link_event_id=link.event_id if link else None,
        link_etag=link.etag if link else None,
    )
    _apply(item, fields, now)
    if link is None:
        _mark_push_due(item, now)
    return item


def _apply(item: AppointmentItem, fields: AppointmentFields, now: datetime) -> None:
    item.title = fields.title
    item.start = fields.start.astimezone(UTC)
    item.end = fields.end.astimezone(UTC)
    item.starts_at = starts_at_key(fields.start, item.appointment_id)
    item.time_zone = fields.time_zone
    item.contact_id = fields.contact_id
    item.attendees = list(fields.attendees) or None
    item.location = fields.location
    item.description = fields.description
    item.updated_at = now
