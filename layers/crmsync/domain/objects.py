"""Domain objects shared by logic, the DAL, the ports and the API (all found as
``crmsync.domain.<name>``: see the package)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmsync.domain.principal import Principal

#: No appointment lasts longer (the by-start index relies on it to bound overlap reads).
MAX_APPOINTMENT_DURATION = timedelta(days=14)


class CredentialKind(StrEnum):
    """What a connection holds to act for the account, KMS-encrypted."""

    #: An OAuth refresh token (Google; later Microsoft).
    OAUTH_TOKENS = "oauth_tokens"
    #: An app-specific password (iCloud CalDAV, later).
    APP_PASSWORD = "app_password"  # noqa: S105 - a kind, not a password


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"


@dataclass(frozen=True)
class Connection:
    """A provider account connected by a CRM user. Never holds a token."""

    tenant_id: str
    user_id: str
    connection_id: str
    provider: str
    subject: str
    email: str
    display_name: str | None
    scopes: tuple[str, ...]
    status: ConnectionStatus
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None
    #: Connections stored before kinds were recorded hold OAuth tokens.
    credential_kind: CredentialKind = CredentialKind.OAUTH_TOKENS

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.user_id)


@dataclass(frozen=True)
class StoredConnection:
    """A connection with what only the use cases that act for the account may see (its
    encrypted credential), and the version it was read at (to update it only if nobody
    changed it since)."""

    connection: Connection
    credential_ciphertext: bytes
    version: int

    def __repr__(self) -> str:
        return f"StoredConnection({self.connection.connection_id!r}, version={self.version})"


@dataclass(frozen=True)
class ProviderCalendar:
    """A calendar as the provider lists it for the account (the calendar port's model).
    ``access_role``: ``owner``, ``writer``, ``reader`` or ``freeBusyReader``."""

    calendar_id: str
    name: str
    access_role: str
    primary: bool
    color: str | None
    time_zone: str | None

    @property
    def writable(self) -> bool:
        return self.access_role in WRITABLE_ROLES


#: Roles that may create and change events.
WRITABLE_ROLES = frozenset({"owner", "writer"})


@dataclass(frozen=True)
class PendingAuthorization:
    """An OAuth flow that was started and not yet completed."""

    tenant_id: str
    user_id: str
    provider: str
    binding_hash: str
    code_verifier: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    #: What to do once the account is connected (e.g. ``contacts_sync``: make it the
    #: contacts account); ``None``: only connect.
    intent: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.user_id)

    def __repr__(self) -> str:
        return f"PendingAuthorization(tenant_id={self.tenant_id!r}, user_id={self.user_id!r})"


@dataclass(frozen=True)
class ConnectedCalendar:
    """A calendar of one of the user's connected accounts (F2)."""

    connection_id: str
    calendar_id: str
    account_email: str
    name: str
    access_role: str
    primary: bool
    color: str | None
    time_zone: str | None
    conflict: bool
    refreshed_at: datetime

    @property
    def writable(self) -> bool:
        return self.access_role in WRITABLE_ROLES


class SyncDirection(StrEnum):
    TWO_WAY = "two_way"
    CRM_TO_CALENDAR = "crm_to_calendar"
    CALENDAR_TO_CRM = "calendar_to_crm"


class ExternalDeletion(StrEnum):
    """What deleting a pushed event in the calendar does to its CRM appointment."""

    CANCEL = "cancel"
    UNLINK = "unlink"


@dataclass(frozen=True)
class SyncPreferences:
    """F6, per user's linked calendar. Defaults: two-way, cancel on external deletion,
    30 days back and 365 days ahead."""

    direction: SyncDirection = SyncDirection.TWO_WAY
    external_deletion: ExternalDeletion = ExternalDeletion.CANCEL
    window_days_back: int = 30
    window_days_ahead: int = 365


@dataclass(frozen=True)
class CalendarRef:
    connection_id: str
    calendar_id: str


@dataclass(frozen=True)
class CalendarSettings:
    linked: CalendarRef | None
    preferences: SyncPreferences


class AppointmentStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class EventLink:
    """Where an appointment's twin lives at the provider."""

    connection_id: str
    calendar_id: str
    event_id: str
    etag: str | None


@dataclass(frozen=True)
class Appointment:
    tenant_id: str
    user_id: str
    appointment_id: str
    title: str
    start: datetime
    end: datetime
    time_zone: str
    status: AppointmentStatus
    contact_id: str | None
    attendees: tuple[str, ...]
    location: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime
    revision: int
    link: EventLink | None
    pushed_revision: int
    push_error: str | None

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.user_id)

    @property
    def sync_state(self) -> str:
        """``synced``: the linked calendar has this revision; ``pending``: a push is due;
        ``error``: the last push failed for good (``push_error`` says why)."""
        if self.push_error:
            return "error"
        return "synced" if self.pushed_revision >= self.revision else "pending"


@dataclass(frozen=True)
class ExternalEvent:
    """An event instance of a synced provider calendar."""

    event_id: str
    cancelled: bool
    start: datetime | None
    end: datetime | None
    start_date: str | None
    end_date: str | None
    transparent: bool
    declined: bool
    summary: str | None
    etag: str | None
    crm_appointment_id: str | None
    #: The IANA zone the event's start is written in (not mirrored; used for imports).
    time_zone: str | None = None
    #: Google's ``eventType``: ``default``, or a special kind (``outOfOffice``, ``focusTime``,
    #: ``workingLocation``, ``birthday``, ``fromGmail``) whose type cannot change and whose
    #: fields are restricted: those block time by their transparency but never become
    #: appointments (a CRM edit of one would be refused by Google). Not mirrored.
    event_type: str = "default"

    @classmethod
    def gone(cls, event_id: str, *, etag: str | None = None, crm_appointment_id: str | None = None) -> ExternalEvent:
        """A deleted event, as providers report one: its id and little else."""
        return cls(
            event_id=event_id,
            cancelled=True,
            start=None,
            end=None,
            start_date=None,
            end_date=None,
            transparent=False,
            declined=False,
            summary=None,
            etag=etag,
            crm_appointment_id=crm_appointment_id,
        )

    @property
    def all_day(self) -> bool:
        return self.start_date is not None

    @property
    def blocks_time(self) -> bool:
        """Busy for availability: not cancelled, not free/transparent, not declined (F4)."""
        return not (self.cancelled or self.transparent or self.declined)

    def interval(self, time_zone: str) -> tuple[datetime, datetime] | None:
        """The UTC interval it occupies; all-day events cover their days in ``time_zone``.

        ``None`` when it occupies no time: no duration (an iCalendar DTSTART without DTEND
        arrives as start = end), or an end before its start (Google refuses those, but an
        imported file or another client may still produce one) — neither blocks anything."""
        if self.start and self.end:
            first, after = self.start, self.end
        elif self.start_date and self.end_date:
            from datetime import date, time
            from zoneinfo import ZoneInfo

            zone = ZoneInfo(time_zone)
            first = datetime.combine(date.fromisoformat(self.start_date), time(0), zone).astimezone(UTC)
            after = datetime.combine(date.fromisoformat(self.end_date), time(0), zone).astimezone(UTC)
        else:
            return None
        return (first, after) if after > first else None


def event_end(end: datetime | None, end_date: str | None) -> datetime | None:
    """Until when an event counts for the sync window: its end, or for an all-day event the
    start (UTC) of the day after it; ``None`` when neither is readable."""
    if end is not None:
        return end
    if end_date:
        try:
            return datetime.fromisoformat(end_date).replace(tzinfo=UTC)
        except ValueError:
            return None
    return None


def imported_appointment_id(principal: Principal, connection_id: str, calendar_id: str, event_id: str) -> str:
    """The id of the appointment made from an event of the linked calendar: derived from the
    event, so importing it twice makes one appointment, and its mirrored twin is recognised."""
    import uuid

    key = f"{principal.tenant_id}|{principal.user_id}|{connection_id}|{calendar_id}|{event_id}"
    return uuid.uuid5(uuid.NAMESPACE_URL, key).hex


def event_id_for(appointment_id: str) -> str:
    """The provider event id derived from an appointment id, where the provider lets the
    client choose it (Google: base32hex, a–v and 0–9, 5–1024 characters; a CalDAV UID): a
    retried create after a timeout then finds the same event instead of making a second."""
    event_id = "crm" + appointment_id.lower()
    if not (5 <= len(event_id) <= 1024) or any(ch not in "0123456789abcdefghijklmnopqrstuv" for ch in event_id):
        raise ValueError("appointment ids must be hex")
    return event_id


def appointment_id_in(event_id: str) -> str | None:
    """The appointment id an event id was derived from (:func:`event_id_for`), if it was."""
    if not event_id.startswith("crm") or len(event_id) <= 3:
        return None
    rest = event_id[3:]
    return rest if all(ch in "0123456789abcdef" for ch in rest) else None


class Counter(Protocol):
    """Where use cases report countable outcomes (powertools Metrics in functions)."""

    def count(self, name: str) -> None: ...


class NoCounter:
    """Counts nothing: use cases built without metrics (tests, scripts)."""

    def count(self, name: str) -> None:
        return None


def busy_span(start: datetime, end: datetime, time_zone: str) -> str:
    """A busy interval as a person reads it in ``time_zone``: ``09:00–10:00``, with the
    dates when it does not start and end on one day (an unknown zone reads as UTC)."""
    try:
        zone: tzinfo = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if local_start.date() == local_end.date():
        return f"{local_start:%H:%M}–{local_end:%H:%M}"
    return f"{local_start:%Y-%m-%d %H:%M}–{local_end:%Y-%m-%d %H:%M}"
