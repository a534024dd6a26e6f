"""Request and response bodies of the /v1 API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    model_validator,
)

from crmsync.domain import Appointment, ConnectedCalendar, Connection, SyncPreferences
from crmsync.guard import PendingDeletions

Feature = Literal["calendar", "email", "contacts"]

#: The range of times the API accepts (a time outside it is a client's mistake, and a year
#: 1 with a +23:59 offset would not even convert to UTC).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(value: object) -> object:
    """Only a date and time in RFC 3339 form: pydantic would also read ``0.5`` or ``1700000000``
    as seconds since 1970, which no client means."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("use an RFC 3339 date and time with its offset, e.g. 2030-01-31T09:00:00+01:00")
    return value


def _in_range(moment: datetime) -> datetime:
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"the time must be from {EARLIEST.year} to {LATEST.year - 1}")
    return moment


#: A time with its UTC offset, between 1900 and 2199.
Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_range)]


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Features to request scopes for; default: every feature enabled in this deployment.
    features: list[Feature] | None = Field(default=None, min_length=1, max_length=3)
    #: Pre-selects the account on the consent screen (Google's, Microsoft's).
    login_hint: str | None = Field(default=None, max_length=320)


class PasswordConnectRequest(BaseModel):
    """iCloud: the Apple ID and an app-specific password (appleid.apple.com → Sign-In and
    Security → App-Specific Passwords). ``server_url``: another CalDAV server instead of
    iCloud (https, on the public Internet). Never logged, never echoed."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    username: str = Field(min_length=1, max_length=320)
    password: SecretStr = Field(min_length=1, max_length=256)
    server_url: str | None = Field(default=None, max_length=2048)


class AuthorizeResponse(BaseModel):
    authorization_url: str
    expires_at: datetime


class IntegrationOut(BaseModel):
    id: str
    provider: str
    email: str
    display_name: str | None
    status: Literal["connected", "needs_reauth", "error"]
    status_reason: str | None
    scopes: list[str]
    connected_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None

    @classmethod
    def of(cls, c: Connection) -> IntegrationOut:
        return cls(
            id=c.connection_id,
            provider=c.provider,
            email=c.email,
            display_name=c.display_name,
            status=c.status.value,
            status_reason=c.status_reason,
            scopes=list(c.scopes),
            connected_at=c.created_at,
            updated_at=c.updated_at,
            last_checked_at=c.last_checked_at,
        )


class IntegrationList(BaseModel):
    items: list[IntegrationOut]
    #: The providers users may connect here (``google``, ``icloud``; ``microsoft`` where
    #: configured): the page offers a sign-in for each.
    providers: list[str] = []


class CalendarOut(BaseModel):
    connection_id: str
    account_email: str
    calendar_id: str
    name: str
    access_role: str
    primary: bool
    writable: bool
    color: str | None
    time_zone: str | None
    conflict: bool
    refreshed_at: datetime

    @classmethod
    def of(cls, c: ConnectedCalendar) -> CalendarOut:
        return cls(
            connection_id=c.connection_id,
            account_email=c.account_email,
            calendar_id=c.calendar_id,
            name=c.name,
            access_role=c.access_role,
            primary=c.primary,
            writable=c.writable,
            color=c.color,
            time_zone=c.time_zone,
            conflict=c.conflict,
            refreshed_at=c.refreshed_at,
        )


class CalendarSyncOut(BaseModel):
    #: ``synced``, ``pending`` (chosen, first sync not done yet), ``failing`` (the last
    #: sync failed: ``last_error``) or ``off`` (not synced).
    state: str
    last_synced_at: datetime | None
    push_channel: bool
    #: Why the last sync failed and when; ``null`` unless ``state`` is ``failing``.
    last_error: str | None = None
    last_error_at: datetime | None = None
    events_so_far: int | None = Field(
        default=None,
        description="Events mirrored so far by the calendar's full (first) sync while it runs, "
        "updated page by page; null when no such sync runs.",
    )

    @classmethod
    def of(cls, s: CalendarStatus) -> CalendarSyncOut:
        return cls(
            state=s.sync_state,
            last_synced_at=s.last_synced_at,
            push_channel=s.push_channel,
            last_error=s.last_error,
            last_error_at=s.last_error_at,
            events_so_far=s.events_so_far,
        )


class PendingDeletionsOut(BaseModel):
    """Deletions a sync held back for the user's confirmation (the mass-deletion guard):
    Google reports ``deletions`` of the ``mirrored`` events deleted."""

    deletions: int
    mirrored: int
    #: Found by a full sync (Google's complete list), not an incremental one.
    full_sync: bool
    detected_at: datetime
    #: ``null`` until answered; ``apply`` or ``ignore`` while the sync carrying it out runs.
    decision: Literal["apply", "ignore"] | None

    @classmethod
    def of(cls, p: PendingDeletions) -> PendingDeletionsOut:
        return cls(
            deletions=p.deletions,
            mirrored=p.mirrored,
            full_sync=p.complete,
            detected_at=p.detected_at,
            decision=p.decision.value if p.decision else None,
        )


class CalendarWithStatusOut(CalendarOut):
    #: The account's status: ``connected``, ``needs_reauth`` or ``error``.
    connection_status: str
    sync: CalendarSyncOut
    pending_deletions: PendingDeletionsOut | None

    @classmethod
    def of_status(cls, s: CalendarStatus) -> CalendarWithStatusOut:
        return cls(
            **CalendarOut.of(s.calendar).model_dump(),
            connection_status=s.connection_status.value,
            sync=CalendarSyncOut.of(s),
            pending_deletions=PendingDeletionsOut.of(s.pending_deletions) if s.pending_deletions else None,
        )


class CalendarList(BaseModel):
    items: list[CalendarWithStatusOut]


class SyncQueuedOut(BaseModel):
    """The account's syncs were queued ("Sync now"): ``calendars`` of them. Each calendar's
    ``sync.last_synced_at`` in ``GET /v1/calendars`` moves when its sync ran."""

    calendars: int


class CalendarRefIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_id: str = Field(min_length=1, max_length=128)
    calendar_id: str = Field(min_length=1, max_length=1024)


class ConflictCalendarsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The complete set of conflict calendars (an empty list: none).
    calendars: list[CalendarRefIn] = Field(max_length=200)


class SyncPreferencesIn(BaseModel):
    """Defaults: two-way, cancel the appointment on external deletion, 30 days back, 365 ahead."""

    model_config = ConfigDict(extra="forbid")

    direction: Literal["two_way", "crm_to_calendar", "calendar_to_crm"] = "two_way"
    external_deletion: Literal["cancel", "unlink"] = "cancel"
    window_days_back: StrictInt = Field(default=30, ge=0, le=365)
    window_days_ahead: StrictInt = Field(default=365, ge=1, le=730)


class SyncPreferencesOut(BaseModel):
    direction: str
    external_deletion: str
    window_days_back: int
    window_days_ahead: int

    @classmethod
    def of(cls, p: SyncPreferences) -> SyncPreferencesOut:
        return cls(
            direction=p.direction.value,
            external_deletion=p.external_deletion.value,
            window_days_back=p.window_days_back,
            window_days_ahead=p.window_days_ahead,
        )


class CalendarSettingsOut(BaseModel):
    linked_calendar: CalendarWithStatusOut | None
    conflict_calendars: list[CalendarWithStatusOut]
    sync_preferences: SyncPreferencesOut

    @classmethod
    def of(cls, view: CalendarSettingsView) -> CalendarSettingsOut:
        return cls(
            linked_calendar=CalendarWithStatusOut.of_status(view.status_of(view.linked)) if view.linked else None,
            conflict_calendars=[CalendarWithStatusOut.of_status(view.status_of(c)) for c in view.conflict_calendars],
            sync_preferences=SyncPreferencesOut.of(view.settings.preferences),
        )


Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)]


class AppointmentIn(BaseModel):
    """A new appointment. Times carry their UTC offset; ``time_zone`` is the IANA zone it is
    shown in (and kept in across DST)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    start: Moment
    end: Moment
    time_zone: str = Field(min_length=1, max_length=64)
    contact_id: str | None = Field(default=None, max_length=128)
    attendees: list[Email] = Field(default_factory=list, max_length=100)
    location: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=8000)

    @model_validator(mode="after")
    def _ends_after_start(self) -> AppointmentIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AppointmentPatch(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    start: Moment | None = None
    end: Moment | None = None
    time_zone: str | None = Field(default=None, min_length=1, max_length=64)
    contact_id: str | None = Field(default=None, max_length=128)
    attendees: list[Email] | None = Field(default=None, max_length=100)
    location: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=8000)


class AppointmentOut(BaseModel):
    id: str
    title: str
    start: datetime
    end: datetime
    time_zone: str
    status: str
    contact_id: str | None
    attendees: list[str]
    location: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime
    revision: int
    #: ``synced`` (the linked calendar has this revision), ``pending`` or ``error``.
    sync_state: str
    sync_error: str | None
    calendar_event: dict[str, str] | None

    @classmethod
    def of(cls, a: Appointment) -> AppointmentOut:
        return cls(
            id=a.appointment_id,
            title=a.title,
            start=a.start,
            end=a.end,
            time_zone=a.time_zone,
            status=a.status.value,
            contact_id=a.contact_id,
            attendees=list(a.attendees),
            location=a.location,
            description=a.description,
            created_at=a.created_at,
            updated_at=a.updated_at,
            revision=a.revision,
            sync_state=a.sync_state,
            sync_error=a.push_error,
            calendar_event=(
                {"connection_id": a.link.connection_id, "calendar_id": a.link.calendar_id, "event_id": a.link.event_id}
                if a.link
                else None
            ),
        )


class AppointmentList(BaseModel):
    items: list[AppointmentOut]


if TYPE_CHECKING:
    from crmsync.logic.calendar_settings import CalendarSettingsView
    from crmsync.logic.calendars import CalendarStatus
