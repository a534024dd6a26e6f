"""Demo iCloud-like users for `make dev`: the Google emulator's demo people at an
``@icloud.test`` address (RFC 2606 keeps ``.test`` unused), each with a "Home" and a "Work"
calendar holding a few events dated relative to today.

The app-specific passwords are fixed and printed by `make dev` (a dev server on loopback:
they guard nothing), shaped like Apple's (four groups of four lowercase letters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import requests

from devstack.caldav.server import CalDavServer

#: (Apple ID, name, app-specific password)
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("ada@icloud.test", "Ada Lovelace", "adal-ovel-demo-pass"),
    ("grace@icloud.test", "Grace Hopper", "grac-ehop-demo-pass"),
    ("linus@icloud.test", "Linus Torvalds", "linu-stor-demo-pass"),
)

#: calendar path segment → (display name, [(days from today, UTC hour, hours, summary)])
DEMO_CALENDARS: dict[str, tuple[str, list[tuple[int, int, int, str]]]] = {
    "home": ("Home", [(1, 17, 1, "Dentist"), (3, 18, 2, "Dinner with friends")]),
    "work": ("Work", [(1, 9, 1, "Team stand-up"), (2, 14, 1, "Customer call"), (4, 10, 2, "Quarterly review")]),
}


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    password: str
    calendars: tuple[str, ...]


def seed_demo(server: CalDavServer, today: date | None = None) -> list[DemoUser]:
    """Add the demo users, their calendars and events (idempotent: what exists is kept, so a
    persisted dev state keeps its edits; new events only where a calendar is new)."""
    today = today or datetime.now(UTC).date()
    users = []
    for email, name, password in DEMO_USERS:
        server.add_user(email, password)
        auth = (email, password)
        urls = []
        for segment, (display, events) in DEMO_CALENDARS.items():
            url = f"{server.base_url}/{email}/{segment}/"
            urls.append(url)
            made = requests.request("MKCALENDAR", url, auth=auth, data=_mkcalendar(display), timeout=10)
            if made.status_code != 201:
                continue  # it exists (405 or 409): keep what is there
            for index, (days, hour, hours, summary) in enumerate(events):
                start = datetime.combine(today + timedelta(days=days), time(hour), tzinfo=UTC)
                uid = f"demo-{segment}-{index}-{email}"
                answer = requests.put(
                    f"{url}demo-{segment}-{index}.ics",
                    auth=auth,
                    data=_event(uid, summary, start, timedelta(hours=hours)),
                    headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
                    timeout=10,
                )
                answer.raise_for_status()
        users.append(DemoUser(email, name, password, tuple(urls)))
    return users


def _mkcalendar(display: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
        f"<D:displayname>{display}</D:displayname><C:supported-calendar-component-set>"
        '<C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>'
    ).encode()


def _event(uid: str, summary: str, start: datetime, length: timedelta) -> bytes:
    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crmsync devstack//demo//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{stamp(datetime.now(UTC))}\r\nDTSTART:{stamp(start)}\r\n"
        f"DTEND:{stamp(start + length)}\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
