"""Per-account Calendar data: calendars, events with their change log, opaque tokens, channels.

Every mutation goes through :meth:`CalendarStore.commit`, which stamps the change-log
position (what sync tokens are computed from), ``updated`` and a new ``etag``, and
notifies the calendar's live watch channels. Callers hold ``state.lock``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from devstack.google.apis.calendar import recurrence
from devstack.google.apis.calendar.channels import Channels
from devstack.google.apis.calendar.events import (
    EVENT_ID,
    SERVER_FIELDS,
    StoredEvent,
    make_instance,
    merge_patch,
    validate_event,
)
from devstack.google.apis.calendar.times import UTC, format_updated, to_instant
from devstack.google.apis.discovery import ApiError
from devstack.google.state import State

ROLE_RANK = {"freeBusyReader": 0, "reader": 1, "writer": 2, "owner": 3}
#: Google's calendar colour palette (the ``calendar`` section of colors.get): colorId →
#: backgroundColor. calendarList entries carry one of these with foregroundColor #000000.
CALENDAR_COLORS = {
    "1": "#ac725e",
    "2": "#d06b64",
    "3": "#f83a22",
    "4": "#fa573c",
    "5": "#ff7537",
    "6": "#ffad46",
    "7": "#42d692",
    "8": "#16a765",
    "9": "#7bd148",
    "10": "#b3dc6c",
    "11": "#fbe983",
    "12": "#fad165",
    "13": "#92e1c0",
    "14": "#9fe1e7",
    "15": "#9fc6e7",
    "16": "#4986e7",
    "17": "#9a9cff",
    "18": "#b99aff",
    "19": "#c2c2c2",
    "20": "#cabdbf",
    "21": "#cca6ac",
    "22": "#f691b2",
    "23": "#cd74e6",
    "24": "#a47ae2",
}
#: The order in which an account's calendars get their colours, as Google spreads them:
#: each calendar added to a list gets the next one (the primary calendar the first).
_COLOR_ORDER = ("14", "16", "6", "8", "22", "18", "2", "10", "12", "7", "24", "3")
_DEMO_ZONES = {
    "ada@example.com": "Europe/London",
    "grace@example.org": "America/New_York",
    "linus@example.net": "America/Los_Angeles",
}


def new_id() -> str:
    """A server-chosen event id: 26 base32hex characters, like Google's."""
    return base64.b32hexencode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def _stable_id(*parts: str) -> str:
    """A deterministic base32hex id for seeded data (same account and name → same id)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()[:16]
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


@dataclass
class Calendar:
    """One calendar of one account, as it appears in that account's calendar list."""

    id: str
    summary: str
    time_zone: str
    access_role: str = "owner"
    primary: bool = False
    description: str = ""
    color_id: str = "14"
    background_color: str = "#9fe1e7"
    foreground_color: str = "#000000"
    #: Opaque id of the events collection, stable for the calendar (watch's resourceId).
    resource_id: str = field(default_factory=lambda: secrets.token_urlsafe(20))
    events: dict[str, StoredEvent] = field(default_factory=dict)
    seq: int = 0
    #: Bumped to invalidate every sync token issued for this calendar (410 fullSyncRequired).
    generation: int = 0
    list_seq: int = 0
    deleted: bool = False
    etag: str = '"0"'

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's zone."""
        return ZoneInfo(self.time_zone)

    @property
    def writable(self) -> bool:
        """Whether the account may change events here."""
        return ROLE_RANK[self.access_role] >= ROLE_RANK["writer"]


@dataclass
class AccountCalendars:
    """Everything Calendar keeps for one account."""

    sub: str
    email: str
    calendars: dict[str, Calendar] = field(default_factory=dict)
    list_seq: int = 0
    list_generation: int = 0
    seeded: bool = False

    @property
    def primary(self) -> Calendar:
        """The primary calendar (its id is the account's e-mail)."""
        return self.calendars[self.email]


@dataclass
class Token:
    """What an opaque page or sync token stands for; looked up, never decoded."""

    kind: str  # events-page | events-sync | list-page | list-sync
    sub: str
    calendar_id: str
    binding: str
    seq: int
    generation: int
    items: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    window: tuple[dt.datetime | None, dt.datetime | None] = (None, None)


class CalendarStore:
    """All Calendar data of the emulator (``ctx.stores["calendar"]``)."""

    def __init__(self, state: State, push: Any) -> None:
        self.state = state
        self.accounts: dict[str, AccountCalendars] = {}
        self.tokens: dict[str, Token] = {}
        self.channels = Channels(push)

    def reset(self) -> None:
        """Forget every account's calendars, tokens and channels (the emulator's reset)."""
        with self.state.lock:
            self.accounts.clear()
            self.tokens.clear()
            self.channels.by_id.clear()

    # ------------------------------------------------------------------ accounts and calendars

    def account(self, sub: str, email: str) -> AccountCalendars:
        """The account's calendars, creating the primary one (and the demo data) on first use."""
        with self.state.lock:
            acct = self.accounts.get(sub)
            if acct is None:
                acct = AccountCalendars(sub, email)
                self.accounts[sub] = acct
                self.add_calendar(acct, email, email, _DEMO_ZONES.get(email, "UTC"), primary=True)
                if email in _DEMO_ZONES:
                    self.seed_demo(email)
            return acct

    def account_by_email(self, email: str) -> AccountCalendars:
        """The calendars of an existing emulator account (KeyError if there is none)."""
        with self.state.lock:
            account = self.state.accounts_by_email[email.strip().lower()]
            return self.account(account.sub, account.email)

    def add_calendar(
        self,
        acct: AccountCalendars,
        calendar_id: str,
        summary: str,
        time_zone: str,
        *,
        access_role: str = "owner",
        primary: bool = False,
        description: str = "",
    ) -> Calendar:
        """Add a calendar to the account's list (a calendarList change)."""
        if access_role not in ROLE_RANK:
            raise ValueError(f"unknown accessRole {access_role!r}")
        ZoneInfo(time_zone)  # raises for an unknown zone
        with self.state.lock:
            existing = acct.calendars.get(calendar_id)
            if existing is not None and not existing.deleted:
                raise ValueError(f"calendar {calendar_id} exists")
            color_id = _COLOR_ORDER[len(acct.calendars) % len(_COLOR_ORDER)]
            cal = Calendar(
                calendar_id,
                summary,
                time_zone,
                access_role,
                primary,
                description,
                color_id=color_id,
                background_color=CALENDAR_COLORS[color_id],
            )
            acct.calendars[calendar_id] = cal
            self._list_changed(acct, cal)
            return cal

    def delete_calendar(self, acct: AccountCalendars, calendar_id: str) -> None:
        """Remove a secondary calendar: channels get ``not_exists``, the list a tombstone."""
        with self.state.lock:
            cal = self.calendar(acct, calendar_id)
            if cal.primary:
                raise ValueError("the primary calendar cannot be deleted")
            cal.deleted = True
            self._list_changed(acct, cal)
            self.channels.notify(acct.sub, cal.id, self.state.now(), "not_exists")

    def _list_changed(self, acct: AccountCalendars, cal: Calendar) -> None:
        acct.list_seq += 1
        cal.list_seq = acct.list_seq
        cal.etag = f'"{int(self.state.now() * 1000)}{acct.list_seq:03d}"'

    def calendar(self, acct: AccountCalendars, calendar_id: str) -> Calendar:
        """The calendar ``calendar_id`` (``primary`` aliases the primary one); 404 otherwise."""
        with self.state.lock:
            cal = acct.primary if calendar_id == "primary" else acct.calendars.get(calendar_id)
            if cal is None or cal.deleted:
                raise ApiError(404, "Not Found", "notFound")
            return cal

    # ------------------------------------------------------------------ tokens

    def issue(self, token: Token) -> str:
        """Store ``token`` under a fresh unguessable value and return the value."""
        value = base64.urlsafe_b64encode(b"\x08" + secrets.token_bytes(35)).decode().rstrip("=")
        with self.state.lock:
            self.tokens[value] = token
        return value

    def lookup(self, value: str, kind: str, sub: str) -> Token | None:
        """The token ``value`` if it is of ``kind`` and was issued to ``sub``."""
        with self.state.lock:
            token = self.tokens.get(value)
        if token is None or token.kind != kind or token.sub != sub:
            return None
        return token

    def expire_sync_tokens(
        self, acct: AccountCalendars, calendar_id: str | None = None, purge_deleted: bool = False
    ) -> None:
        """Make every sync token issued so far for the account (or one calendar) answer 410.

        ``purge_deleted``: also forget deleted events (Google keeps tombstones only for a
        while; once they are gone, a full sync simply no longer lists those events)."""
        with self.state.lock:
            for cal in acct.calendars.values():
                if calendar_id is None or cal.id == calendar_id or (calendar_id == "primary" and cal.primary):
                    cal.generation += 1
                    if purge_deleted:
                        for event_id in [k for k, v in cal.events.items() if v.data.get("status") == "cancelled"]:
                            del cal.events[event_id]
            if calendar_id is None:
                acct.list_generation += 1

    # ------------------------------------------------------------------ events

    def commit(self, acct: AccountCalendars, cal: Calendar, changed: list[StoredEvent]) -> None:
        """Record changes: change-log position, ``updated``, a new ``etag``; then notify channels."""
        with self.state.lock:
            now = self.state.now()
            for stored in changed:
                cal.seq += 1
                stored.seq = cal.seq
                stored.updated = now
                stored.data["updated"] = format_updated(now)
                stored.data["etag"] = f'"{int(now * 1000) * 1000 + cal.seq % 1000}"'
                cal.events[stored.data["id"]] = stored
            if changed:
                self.channels.notify(acct.sub, cal.id, now)

    def find(self, cal: Calendar, event_id: str) -> dict[str, Any] | None:
        """A stored event, or the generated instance ``<seriesId>_<stamp>`` of a series."""
        with self.state.lock:
            stored = cal.events.get(event_id)
            if stored is not None:
                return stored.data
            series_id, sep, stamp = event_id.rpartition("_")
            master = cal.events.get(series_id) if sep else None
            if master is None or not master.data.get("recurrence"):
                return None
            try:
                when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ" if "T" in stamp else "%Y%m%d").replace(tzinfo=UTC)
            except ValueError:
                return None
            horizon = when + dt.timedelta(days=2)
            for occurrence in recurrence.expand(master.data["start"], master.data["recurrence"], cal.tz, horizon):
                if recurrence.stamp(occurrence) == stamp:
                    instance = make_instance(master.data, occurrence, cal.tz)
                    if master.data.get("status") == "cancelled":
                        instance["status"] = "cancelled"
                    return instance
            return None

    def insert(
        self, acct: AccountCalendars, cal: Calendar, body: dict[str, Any], *, as_owner: bool = False
    ) -> dict[str, Any]:
        """events.insert: validate, assign ids and server fields, store, notify.

        ``as_owner`` skips the access check: the control API also acts as the owner of a calendar
        the account only subscribes to.
        """
        with self.state.lock:
            self._require_writer(cal, as_owner)
            event = {k: copy.deepcopy(v) for k, v in body.items() if k not in SERVER_FIELDS}
            event_id = event.get("id")
            if event_id is not None:
                if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
                    raise ApiError(400, "Invalid resource id value.", "invalid")
                # Deleted events keep their id: Google refuses to reuse it as well.
                if event_id in cal.events:
                    raise ApiError(409, "The requested identifier already exists.", "duplicate")
            else:
                event_id = new_id()
            validate_event(event, instance=False)
            now = self.state.now()
            owner = {"email": acct.email, "self": True}
            organizer = owner if cal.primary else {"email": cal.id, "displayName": cal.summary, "self": True}
            event.update(
                kind="calendar#event",
                id=event_id,
                status=event.get("status", "confirmed"),
                htmlLink=_html_link(event_id, cal.id),
                created=format_updated(now),
                creator=owner,
                organizer=organizer,
                iCalUID=event.get("iCalUID") or f"{event_id}@google.com",
                sequence=int(event.get("sequence") or 0),
                reminders=event.get("reminders") or {"useDefault": True},
                eventType=event.get("eventType") or "default",
            )
            stored = StoredEvent(event, 0, now)
            self.commit(acct, cal, [stored])
            return stored.data

    def modify(
        self,
        acct: AccountCalendars,
        cal: Calendar,
        event_id: str,
        body: dict[str, Any],
        *,
        replace: bool,
        if_match: str | None = None,
        as_owner: bool = False,
    ) -> dict[str, Any]:
        """events.patch (``replace=False``) or events.update (``replace=True``)."""
        with self.state.lock:
            self._require_writer(cal, as_owner)
            current = self._existing(cal, event_id, if_match)
            incoming = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
            if replace:
                kept = {k: current[k] for k in (*SERVER_FIELDS, "id", "iCalUID", "originalStartTime") if k in current}
                updated = {**copy.deepcopy(incoming), **kept}
                updated.setdefault("status", "confirmed")
                # A replacement without an event type asks for "default" (events resource:
                # "If unset, 'default' type will be used") — an error on another type.
                updated.setdefault("eventType", "default")
            else:
                updated = merge_patch(current, incoming)
                for key in ("id", "iCalUID", "recurringEventId", "originalStartTime"):
                    if key in current:
                        updated[key] = current[key]
                updated.setdefault("eventType", current.get("eventType") or "default")
            if updated.get("id") != event_id:
                raise ApiError(400, "Invalid resource id value.", "invalid")
            if updated["eventType"] != (current.get("eventType") or "default"):
                # "Event type cannot be changed after an event is created" (event-types guide).
                raise ApiError(400, "Event type cannot be changed.", "invalid")
            # Without reminders (or with them removed) the event follows the calendar's defaults.
            updated["reminders"] = updated.get("reminders") or {"useDefault": True}
            instance = "recurringEventId" in current
            validate_event(updated, instance=instance)
            if any(updated.get(k) != current.get(k) for k in ("start", "end", "recurrence", "location")):
                updated["sequence"] = int(current.get("sequence") or 0) + 1
            else:
                updated["sequence"] = max(int(updated.get("sequence") or 0), int(current.get("sequence") or 0))
            stored = cal.events.get(event_id) or StoredEvent(updated, 0, 0.0)
            stored.data = updated
            self.commit(acct, cal, [stored])
            return stored.data

    def delete(
        self,
        acct: AccountCalendars,
        cal: Calendar,
        event_id: str,
        if_match: str | None = None,
        *,
        as_owner: bool = False,
    ) -> None:
        """events.delete: the event (and a series' modified instances) become ``cancelled``."""
        with self.state.lock:
            self._require_writer(cal, as_owner)
            current = self._existing(cal, event_id, if_match)
            if current.get("status") == "cancelled":
                raise ApiError(410, "Resource has been deleted", "deleted")
            changed = []
            stored = cal.events.get(event_id) or StoredEvent(copy.deepcopy(current), 0, 0.0)
            stored.data["status"] = "cancelled"
            changed.append(stored)
            if current.get("recurrence"):
                for other in cal.events.values():
                    if other.data.get("recurringEventId") == event_id and other.data.get("status") != "cancelled":
                        other.data["status"] = "cancelled"
                        changed.append(other)
            self.commit(acct, cal, changed)

    def _existing(self, cal: Calendar, event_id: str, if_match: str | None) -> dict[str, Any]:
        current = self.find(cal, event_id)
        if current is None:
            raise ApiError(404, "Not Found", "notFound")
        if if_match is not None and if_match.strip() not in ("*", current.get("etag")):
            raise ApiError(412, "Precondition Failed", "conditionNotMet")
        return copy.deepcopy(current)

    @staticmethod
    def _require_writer(cal: Calendar, as_owner: bool) -> None:
        if not (as_owner or cal.writable):
            raise ApiError(403, "You need to have writer access to this calendar.", "requiredAccessLevel")

    # ------------------------------------------------------------------ demo data

    def seed_demo(self, email: str) -> None:
        """Give a demo account its calendars and events (idempotent; dates relative to the clock)."""
        with self.state.lock:
            account = self.state.add_account(email)
            acct = self.accounts.get(account.sub)
            if acct is None:  # create the primary calendar (which seeds the demo accounts' own data)
                acct = self.account(account.sub, account.email)
            if acct.seeded:
                return
            acct.seeded = True
            primary = acct.primary
            team = self.add_calendar(
                acct, f"{_stable_id(email, 'team')}@group.calendar.google.com", "Team", primary.time_zone
            )
            holidays = self.add_calendar(
                acct,
                "en.usa#holiday@group.v.calendar.google.com",
                "Holidays in United States",
                "America/New_York",
                access_role="reader",
            )
            today = dt.datetime.fromtimestamp(self.state.now(), primary.tz).date()

            def at(days: int, hour: int, minute: int = 0) -> dict[str, str]:
                moment = dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour, minute))
                return {"dateTime": moment.isoformat(), "timeZone": primary.time_zone}

            def day(days: int) -> dict[str, str]:
                return {"date": (today + dt.timedelta(days=days)).isoformat()}

            def add(cal: Calendar, name: str, event: dict[str, Any]) -> dict[str, Any]:
                # The subscribed calendar's owner wrote these, hence as_owner.
                return self.insert(acct, cal, {"id": _stable_id(email, name), **event}, as_owner=True)

            weekly = add(
                primary,
                "one-on-one",
                {
                    "summary": "Weekly 1:1",
                    "start": at(1, 10),
                    "end": at(1, 10, 30),
                    "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=10"],
                },
            )
            second = to_instant(at(8, 10), primary.tz)
            self.modify(
                acct,
                primary,
                f"{weekly['id']}_{recurrence.stamp(second)}",
                {"start": at(8, 11), "end": at(8, 11, 30)},
                replace=False,
            )
            self.delete(acct, primary, f"{weekly['id']}_{recurrence.stamp(to_instant(at(15, 10), primary.tz))}")
            add(
                primary,
                "customer-call",
                {
                    "summary": "Customer call: Acme",
                    "location": "Video call",
                    "start": at(2, 14),
                    "end": at(2, 15),
                    "attendees": [
                        {"email": email, "self": True, "responseStatus": "accepted"},
                        {"email": "buyer@acme.test"},
                    ],
                },
            )
            add(
                primary,
                "focus",
                {"summary": "Focus time", "transparency": "transparent", "start": at(1, 13), "end": at(1, 15)},
            )
            add(
                primary,
                "declined",
                {
                    "summary": "Vendor pitch (declined)",
                    "start": at(3, 16),
                    "end": at(3, 17),
                    "attendees": [{"email": email, "self": True, "responseStatus": "declined"}],
                },
            )
            add(primary, "offsite", {"summary": "Offsite", "start": day(7), "end": day(9)})
            add(
                team,
                "planning",
                {
                    "summary": "Sprint planning",
                    "start": at(1, 9, 30),
                    "end": at(1, 10, 30),
                    "recurrence": ["RRULE:FREQ=WEEKLY;INTERVAL=2"],
                },
            )
            add(
                holidays,
                "holiday",
                {"summary": "Public holiday", "start": day(10), "end": day(11), "transparency": "transparent"},
            )


def _html_link(event_id: str, calendar_id: str) -> str:
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"
