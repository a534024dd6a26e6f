"""`make dev`'s CalDAV server: the stack starts Radicale behind the fault layer on loopback,
the banner names it and the demo Apple IDs with their app-specific passwords, the demo users
have a Home and a Work calendar with events in the coming days, and a kept folder keeps them."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import defusedxml.ElementTree as SafeET
import pytest
import requests
from icalendar import Calendar

from devstack.__main__ import caldav_banner
from devstack.caldav import CalDavServer
from devstack.caldav.demo import DEMO_USERS, seed_demo
from devstack.stack import ROOT, Stack
from tests.support import clock

pytestmark = pytest.mark.integration

EVENTS = (
    '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
    '<C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>'
)


def starts(url: str, auth: tuple[str, str]) -> list[str]:
    """The DTSTARTs (ISO, UTC) of the calendar's events."""
    answer = requests.request(
        "REPORT", url, auth=auth, data=EVENTS, headers={"Depth": "1", "Content-Type": "application/xml"}, timeout=10
    )
    assert answer.status_code == 207
    found = []
    for data in SafeET.fromstring(answer.content).iter("{urn:ietf:params:xml:ns:caldav}calendar-data"):
        for event in Calendar.from_ical(data.text or "").walk("VEVENT"):
            found.append(event.decoded("DTSTART").isoformat())
    return sorted(found)


def test_the_stack_runs_caldav_on_loopback_and_the_banner_names_the_demo_users(runtime_stack: Stack) -> None:
    server = runtime_stack.caldav
    assert isinstance(server, CalDavServer)
    for url in (server.base_url, server.partition_url):
        assert ipaddress.ip_address(urlsplit(url).hostname or "").is_loopback
    banner = "\n".join(caldav_banner(runtime_stack))
    assert server.base_url in banner
    for email, _name, password in DEMO_USERS:
        assert email in banner
        assert password in banner
    email, _name, password = DEMO_USERS[0]
    today = clock.now().date()
    for calendar in ("home", "work"):
        events = starts(f"{server.base_url}/{email}/{calendar}/", (email, password))
        assert events
        week = clock.days_ahead(7).date().isoformat()
        assert all(today.isoformat() < day[:10] <= week for day in events)


def test_caldav_can_be_left_out() -> None:
    stack = Stack(ROOT, caldav=False, google=False)
    assert stack.caldav is None
    assert caldav_banner(stack) == ["  CalDAV          off"]


def test_a_kept_folder_keeps_users_calendars_and_events(tmp_path: Path) -> None:
    """`make dev --persist`: the CalDAV state lives in .devstack/data/caldav."""
    email, _name, password = DEMO_USERS[1]
    with CalDavServer(folder=tmp_path) as first:
        seed_demo(first)
        before = starts(f"{first.base_url}/{email}/work/", (email, password))
    with CalDavServer(folder=tmp_path) as second:
        second.add_user("new@icloud.test")  # adding a user keeps the kept ones
        login = requests.request("PROPFIND", f"{second.base_url}/", auth=(email, password), timeout=10)
        assert login.status_code == 207
        seed_demo(second)  # again: nothing is added twice
        assert starts(f"{second.base_url}/{email}/work/", (email, password)) == before
    assert len(before) == 3
