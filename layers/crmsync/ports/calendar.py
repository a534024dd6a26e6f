"""The calendar port: a connected account's calendars and their events.

Events come out normalised (:class:`ExternalEvent`) and go in as an :class:`EventDraft`;
the adapter owns the provider's wire format, its echo marker (our ids ride inside the
provider's event), its idempotency strategy and its change notification.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from crmsync.domain import Connection, ExternalEvent, ProviderCalendar, StoredConnection

# Read by the webhooks, which import only that module (see there).
from crmsync.ports.notifications import ChannelNotification

if TYPE_CHECKING:
    from crmsync.domain import Appointment

__all__ = [
    "INSTANCE_SEPARATOR",
    "CalendarAccess",
    "CalendarPort",
    "ChangeNotification",
    "ChannelNotification",
    "CreateIdempotency",
    "EventDraft",
    "EventPage",
    "ExternalEvent",
    "ProviderCalendar",
    "SubscriptionPort",
    "Watch",
    "WrittenEvent",
    "resource_of",
]

#: Between a resource's key and an instance's suffix in the event id of an instance of a
#: recurring series, for adapters whose provider reports whole resources (CalDAV):
#: ``<resource key>@<original start in UTC basic format>``.
INSTANCE_SEPARATOR = "@"
_INSTANCE_SUFFIX = re.compile(r"^\d{8}(T\d{6}Z)?$")


def resource_of(event_id: str) -> str:
    """The resource an event instance belongs to: the key before the instance suffix, or
    the id itself (a single event, or a provider whose ids have no such suffix)."""
    key, sep, suffix = event_id.rpartition(INSTANCE_SEPARATOR)
    return key if sep and key and _INSTANCE_SUFFIX.match(suffix) else event_id


class ChangeNotification(StrEnum):
    """How the provider tells us a calendar changed."""

    #: A push channel per calendar, opened with :meth:`CalendarPort.watch` and renewed
    #: before it expires (Google Calendar ``events.watch``).
    PUSH_CHANNEL = "push_channel"
    #: A subscription with a lifecycle (Microsoft Graph): opened like a channel, renewed in
    #: place (:class:`SubscriptionPort`).
    SUBSCRIPTION = "subscription"
    #: Nothing: we poll (CalDAV servers, iCloud).
    POLLING = "polling"


class CreateIdempotency(StrEnum):
    """How a retried create finds the event its lost first attempt made."""

    #: The client chooses the event id, derived from ours; a retry gets "duplicate" and
    #: updates that event (Google Calendar).
    DERIVED_ID = "derived_id"
    #: The client chooses the resource's UID/href and creates with ``If-None-Match: *``
    #: (CalDAV).
    CLIENT_UID = "client_uid"
    #: The provider deduplicates creates carrying the same ``transactionId`` (Graph).
    TRANSACTION_ID = "transaction_id"


@dataclass(frozen=True)
class EventPage:
    """One page of a calendar's events; ``cursor`` is set on the last page only: where the
    next incremental listing starts (Calendar's ``nextSyncToken``, a CalDAV sync token...)."""

    events: list[ExternalEvent]
    cursor: str | None
    #: Resources (see :func:`resource_of`) whose every instance in the listing's window is
    #: on this page: a mirrored instance of one of them that the page does not list is gone
    #: (a shortened RRULE, a new EXDATE, a deleted series). Providers that report every
    #: instance's changes themselves (Google) leave it empty.
    whole_resources: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EventDraft:
    """An event as the CRM wants it. ``key`` (the appointment id: lowercase hex) makes creates
    idempotent and marks the event as ours (with ``tenant_id`` and ``revision``)."""

    key: str
    tenant_id: str
    revision: int
    title: str
    start: datetime
    end: datetime
    time_zone: str
    location: str | None = None
    description: str | None = None
    attendees: tuple[str, ...] = ()

    @classmethod
    def of(cls, appointment: Appointment) -> EventDraft:
        return cls(
            key=appointment.appointment_id,
            tenant_id=appointment.tenant_id,
            revision=appointment.revision,
            title=appointment.title,
            start=appointment.start,
            end=appointment.end,
            time_zone=appointment.time_zone,
            location=appointment.location,
            description=appointment.description,
            attendees=appointment.attendees,
        )


@dataclass(frozen=True)
class WrittenEvent:
    """Where a written event lives at the provider, and its version there."""

    event_id: str
    etag: str | None


@dataclass(frozen=True)
class Watch:
    """An open push channel (or subscription) on a calendar."""

    channel_id: str
    resource_id: str
    expires_at: datetime


class CalendarPort(Protocol):
    """The calendars of one connected account.

    Every method raises the neutral errors of :mod:`crmsync.ports.errors`:
    ``CursorInvalid`` (list in full), ``ProviderNotFound``, ``PreconditionFailed``,
    ``RateLimited``, ``AuthRevoked``, or a ``ProviderError`` that says whether retrying helps.
    """

    #: How changes are learnt; :meth:`watch` and :meth:`stop_watch` exist for
    #: ``PUSH_CHANNEL`` and ``SUBSCRIPTION`` only.
    notification: ChangeNotification
    #: How :meth:`create_event` stays idempotent.
    idempotency: CreateIdempotency
    #: Whether an incremental listing reports the deletion of an event it never listed (one
    #: made after the cursor and deleted before the next listing): Google does; Graph's delta
    #: reports ``@removed`` only for instances it sent, and CalDAV's ctag fallback diffs
    #: against the last listing's members. When False, the sync
    #: checks the events our pushes created that no listing has shown yet
    #: (:meth:`event_exists`), or their deletion would never reach the CRM.
    reports_unseen_deletions: bool

    def list_calendars(self) -> list[ProviderCalendar]:
        """Every calendar of the account (all pages)."""
        ...

    def event_pages(self, calendar_id: str, *, cursor: str | None, since: datetime | None) -> Iterator[EventPage]:
        """The calendar's event instances (recurring series expanded, deletions included),
        page by page; incremental from ``cursor``, otherwise everything ending after
        ``since``. The last page carries the next cursor."""
        ...

    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        """Create the event; a retry after a lost answer finds the first attempt's event
        instead of making a second (by the adapter's :attr:`idempotency`)."""
        ...

    def created_event_id(self, key: str) -> str | None:
        """The id :meth:`create_event` gives the event of the draft keyed ``key``, when the
        adapter derives it from the key (``DERIVED_ID``, ``CLIENT_UID``); None when only the
        provider knows it. Lets a cancel reach an event whose create answer was lost; without
        it (``TRANSACTION_ID``), a cancel creates again with the same key, which answers with
        that event, and deletes it."""
        ...

    def event_exists(self, calendar_id: str, event_id: str) -> bool:
        """Whether the event is live in the calendar (False: deleted or unknown). One provider
        request; for the sync's check of created events no listing has shown yet
        (:attr:`reports_unseen_deletions`)."""
        ...

    def update_event(
        self, calendar_id: str, event_id: str, draft: EventDraft, *, etag: str | None = None
    ) -> WrittenEvent:
        """Replace the event; ``ProviderNotFound`` if it is gone, ``PreconditionFailed`` if
        ``etag`` is given and no longer current."""
        ...

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """``ProviderNotFound`` if it is already gone."""
        ...

    def watch(self, calendar_id: str, *, channel_id: str, address: str, token: str) -> Watch:
        """Open a push channel to ``address``; its notifications carry ``token``."""
        ...

    def stop_watch(self, channel_id: str, resource_id: str) -> None:
        """Close a channel; ``ProviderNotFound`` if it is already gone."""
        ...


class SubscriptionPort(CalendarPort, Protocol):
    """A calendar port whose channels are subscriptions (``SUBSCRIPTION``: Microsoft Graph),
    renewed in place rather than replaced."""

    def renew_watch(self, channel_id: str) -> datetime:
        """Extend the subscription (which also reauthorizes it); its new expiry.
        ``ProviderNotFound`` if it is gone (open a new one)."""
        ...


class CalendarAccess(Protocol):
    """Opens the calendar port of a stored connection, whatever its provider (the
    composition root decrypts its credential and picks the adapter)."""

    def calendar(self, stored: StoredConnection) -> CalendarPort: ...

    def reaches_calendars(self, connection: Connection) -> bool:
        """Whether the connection's grant lets us list its calendars (an OAuth grant may
        lack the scope: the user can untick it on the consent screen)."""
        ...
