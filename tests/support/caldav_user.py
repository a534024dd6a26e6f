"""A CalDAV account's owner working in their own calendar app: calendar objects written
straight to the server with ``requests`` (not through the adapter under test)."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import defusedxml.ElementTree as SafeET
import icalendar
import recurring_ical_events
import requests

from devstack.caldav import CalDavServer

TIMEOUT = 10


class CalDavUser:
    """A fresh Radicale user with one calendar (``calendar_url``); ``put`` writes any
    iCalendar text, ``add``/``move``/``delete`` are the calendar app's simple edits."""

    def __init__(self, server: CalDavServer, email: str | None = None) -> None:
        self.server = server
        self.email = email or f"dav-{uuid.uuid4().hex[:10]}@example.com"
        self.password = server.add_user(self.email)
        self.session = requests.Session()
        self.session.auth = (self.email, self.password)
        self.home_url = f"{server.base_url}/{quote(self.email)}/"
        self.calendar_url = self.home_url + "calendar/"
        body = (
            '<?xml version="1.0"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            "<d:set><d:prop><d:displayname>Calendar</d:displayname>"
            '<c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>'
            "</d:prop></d:set></c:mkcalendar>"
        )
        self.session.request("MKCALENDAR", self.calendar_url, data=body, timeout=TIMEOUT).raise_for_status()

    def url(self, name: str) -> str:
        return self.calendar_url + quote(name)

    def put(self, name: str, ics: str) -> None:
        response = self.session.put(
            self.url(name), data=ics.encode(), headers={"Content-Type": "text/calendar"}, timeout=TIMEOUT
        )
        response.raise_for_status()

    def get(self, name: str) -> icalendar.Calendar:
        response = self.session.get(self.url(name), timeout=TIMEOUT)
        response.raise_for_status()
        return icalendar.Calendar.from_ical(response.text)

    def add(self, summary: str, start: datetime, end: datetime) -> str:
        uid = uuid.uuid4().hex.upper()
        name = f"{uid}.ics"
        self.put(name, single(uid, summary, start, end))
        return name

    def move(self, event_id: str, start: datetime, end: datetime) -> None:
        calendar = self.get(event_id)
        [event] = calendar.walk("VEVENT")
        del event["DTSTART"]
        del event["DTEND"]
        event.add("dtstart", start.astimezone(UTC))
        event.add("dtend", end.astimezone(UTC))
        self.put(event_id, calendar.to_ical().decode())

    def delete(self, event_id: str) -> None:
        self.session.delete(self.url(event_id), timeout=TIMEOUT).raise_for_status()

    def rebase(self, base_url: str) -> None:
        """Reach the calendar on another host (iCloud's partition host serves it only there)."""
        self.home_url = f"{base_url}/{quote(self.email)}/"
        self.calendar_url = self.home_url + "calendar/"

    def names(self) -> list[str]:
        """The calendar's resources (their names), from a PROPFIND as any client sees it."""
        response = self.session.request(
            "PROPFIND", self.calendar_url, headers={"Depth": "1"}, data=_PROPFIND, timeout=TIMEOUT
        )
        response.raise_for_status()
        root = SafeET.fromstring(response.content)
        names = []
        for href in root.iter("{DAV:}href"):
            name = unquote(urlsplit(href.text or "").path.rstrip("/").rsplit("/", 1)[-1])
            if name.endswith(".ics"):
                names.append(name)
        return sorted(names)

    def instances(self, since: datetime, until: datetime) -> dict[str, tuple[datetime, datetime] | None]:
        """Every event instance between ``since`` and ``until``, keyed as the calendar port
        names them (a single event by its resource, an occurrence of a series by
        ``name@<original start in UTC>``); ``None`` for an all-day one. Expanded here with
        recurring-ical-events, independently of the adapter under test."""
        found: dict[str, tuple[datetime, datetime] | None] = {}
        for name in self.names():
            calendar = self.get(name)
            series = any(e.get("RRULE") or e.get("RDATE") or e.get("RECURRENCE-ID") for e in calendar.walk("VEVENT"))
            for event in recurring_ical_events.of(calendar).between(since, until):
                start, end = event.decoded("DTSTART"), event.decoded("DTEND")
                key = name
                if series:
                    original = event.decoded("RECURRENCE-ID") if event.get("RECURRENCE-ID") else start
                    key += "@" + _instance(original)
                found[key] = None if not isinstance(start, datetime) else (start.astimezone(UTC), end.astimezone(UTC))
        return found

    def invalidate_cursors(self, *, purge_deleted: bool = False) -> None:
        """Radicale's token is a digest of the collection's history, and the state behind
        each token is kept in the collection's cache. A short-lived resource moves the
        digest on (even in an empty calendar); dropping the kept states makes every earlier
        token refused (403 valid-sync-token). ``purge_deleted`` forgets the tombstones of
        earlier deletions too (the short-lived one's stays: it keeps the digest new)."""
        cache = (
            Path(self.server.folder) / "collections" / "collection-root" / self.email / "calendar" / ".Radicale.cache"
        )
        if purge_deleted:
            for path in (cache / "history").glob("*"):
                if not (cache.parent / path.name).exists():
                    path.unlink()
        marker = f"invalidated-{uuid.uuid4().hex}.ics"
        now = datetime.now(UTC)
        self.put(marker, single(marker, "token invalidation", now, now))
        self.session.delete(self.url(marker), timeout=TIMEOUT).raise_for_status()
        self._sync_collection()
        shutil.rmtree(cache / "sync-token", ignore_errors=True)

    def _sync_collection(self) -> None:
        """An initial sync report: Radicale records the deletion in its history then."""
        body = (
            '<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token/>'
            "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
        )
        response = self.session.request("REPORT", self.calendar_url, data=body, timeout=TIMEOUT)
        response.raise_for_status()


def single(uid: str, summary: str, start: datetime, end: datetime, *, extra: str = "") -> str:
    """A one-event calendar object in UTC, as a calendar app writes it."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{_z(start)}\r\nDTSTART:{_z(start)}\r\nDTEND:{_z(end)}\r\n"
        f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


_PROPFIND = b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'


def _instance(original: date | datetime) -> str:
    if isinstance(original, datetime):
        return _z(original)
    return original.strftime("%Y%m%d")


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
