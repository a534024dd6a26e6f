"""A CRM appointment, and its link to the event pushed to the linked calendar (F3)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from pynamodb.attributes import (
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, LocalSecondaryIndex

from crmsync.models.base import ConnectionsTableItem, OwnedItem

APPOINTMENT_SK_PREFIX = "APPT#"


#: ``starts_at`` values of appointments start with this (the index may hold other kinds later).
STARTS_AT_PREFIX = "APPT#"


def starts_at_key(moment: datetime, appointment_id: str = "") -> str:
    """The sort key of the by-start index: UTC, fixed width, so strings sort like times."""
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return STARTS_AT_PREFIX + stamp + ("#" + appointment_id if appointment_id else "")


class AppointmentsByStart(LocalSecondaryIndex["AppointmentItem"]):
    """The user's appointments in start order (a local index: consistent reads, which the
    overlap check needs). Sparse: only appointment items carry ``starts_at``."""

    class Meta:
        index_name = "by_start"
        projection = AllProjection()

    pk = UnicodeAttribute(hash_key=True)
    starts_at = UnicodeAttribute(range_key=True)


#: ``push_due`` values: the sweep reads this many shards of the ``pushes_due`` index.
PUSH_DUE_SHARDS = 8
PUSH_DUE_PREFIX = "PUSHDUE#"


def push_due_shard(appointment_id: str) -> str:
    """The ``push_due`` of an appointment: spread over the shards by its id, so no index
    partition is hot however many pushes are due."""
    return f"{PUSH_DUE_PREFIX}{zlib.crc32(appointment_id.encode()) % PUSH_DUE_SHARDS}"


def push_due_at_key(moment: datetime) -> str:
    """The range key of ``pushes_due``: UTC, fixed width, so strings sort like times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PushesDue(GlobalSecondaryIndex["AppointmentItem"]):
    """Appointments whose stored revision is not known to be in the linked calendar yet,
    oldest first per shard: what the push sweep re-enqueues. Sparse: only marked
    appointments carry ``push_due``; it projects what the sweep needs."""

    class Meta:
        index_name = "pushes_due"
        projection = IncludeProjection(["tenant_id", "user_id", "appointment_id", "revision", "pushed_revision"])

    push_due = UnicodeAttribute(hash_key=True)
    push_due_at = UnicodeAttribute(range_key=True)


class AppointmentItem(OwnedItem):
    """Lives in the connections table, in the user's partition (sk ``APPT#<id>``)."""

    appointment_id = UnicodeAttribute()
    title = UnicodeAttribute()
    start = UTCDateTimeAttribute()
    end = UTCDateTimeAttribute()
    #: ``starts_at_key(start, appointment_id)``: the range key of ``by_start``.
    starts_at = UnicodeAttribute(null=True)
    by_start = AppointmentsByStart()
    time_zone = UnicodeAttribute()
    status = UnicodeAttribute()
    contact_id = UnicodeAttribute(null=True)
    attendees: ListAttribute[str] = ListAttribute(null=True)
    location = UnicodeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    #: Bumped on every change of the appointment itself (not of its link).
    revision = NumberAttribute(default=1)
    # The provider twin, once pushed.
    link_connection_id = UnicodeAttribute(null=True)
    link_calendar_id = UnicodeAttribute(null=True)
    link_event_id = UnicodeAttribute(null=True)
    link_etag = UnicodeAttribute(null=True)
    pushed_revision = NumberAttribute(default=0)
    push_error = UnicodeAttribute(null=True)
    #: Set while ``revision`` is stored but not pushed (``push_due_shard``, and when it became
    #: due): the keys of ``pushes_due``. Removed once the revision is in the calendar, or there
    #: is nowhere to push it.
    push_due = UnicodeAttribute(null=True)
    push_due_at = UnicodeAttribute(null=True)
    pushes_due = PushesDue()
    version = VersionAttribute()


SCHEDULE_SK = "SCHEDULE"


class ScheduleItem(ConnectionsTableItem):
    """One per user: its revision changes with every booking, so two bookings decided on the
    same view of the schedule cannot both commit (F5)."""

    revision = NumberAttribute()
