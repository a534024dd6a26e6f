"""The fault layer in front of Radicale (devstack/caldav/faults.py) reproduces iCloud's quirks
and server faults, one rule per test, through raw HTTP (not the adapter). Each test names
its source; docs/PITFALLS.md "CalDAV / iCloud" says which are verified, documented or guesses.
"""

from __future__ import annotations

import logging
import uuid
from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import unquote, urljoin, urlsplit

import defusedxml.ElementTree as SafeET
import pytest
import requests

from devstack.caldav import CalDavServer
from devstack.caldav.faults import Fault
from tests.support import clock

pytestmark = pytest.mark.integration

DAV = "{DAV:}"
Auth = tuple[str, str]


@pytest.fixture
def ada(caldav_server: CalDavServer) -> Iterator[Auth]:
    email = f"ada-{uuid.uuid4().hex[:8]}@icloud.test"
    yield email, caldav_server.add_user(email)
    caldav_server.layer.clear_faults(email)
    caldav_server.layer.set_quirks(email, ())


def calendar(server: CalDavServer, auth: Auth, name: str = "home") -> str:
    url = f"{server.base_url}/{auth[0]}/{name}/"
    assert requests.request("MKCALENDAR", url, auth=auth, timeout=10).status_code == 201
    return url


def ics(uid: str, summary: str = "Call") -> str:
    start = clock.days_ahead(3, 10)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crmsync tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{basic(clock.now())}\r\nDTSTART:{basic(start)}\r\n"
        f"DURATION:PT1H\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def basic(moment: datetime) -> str:
    """iCalendar's UTC form (RFC 5545 §3.3.5), e.g. 19980119T070000Z."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def put(url: str, auth: Auth, uid: str, **headers: str) -> requests.Response:
    return requests.put(
        f"{url}{uid}.ics",
        auth=auth,
        data=ics(uid),
        headers={"Content-Type": "text/calendar; charset=utf-8", **headers},
        timeout=10,
    )


def sync(url: str, auth: Auth, token: str = "") -> requests.Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
        f"<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    return requests.request(
        "REPORT", url, auth=auth, data=body, headers={"Content-Type": "application/xml"}, timeout=10
    )


def statuses(answer: requests.Response) -> dict[str, str]:
    """href → the status of its response (a propstat's when it has one)."""
    root = SafeET.fromstring(answer.content)
    out = {}
    for response in root.iter(f"{DAV}response"):
        status = response.findtext(f"{DAV}status") or response.findtext(f"{DAV}propstat/{DAV}status") or ""
        out[response.findtext(f"{DAV}href") or ""] = status.split(" ")[1]
    return out


def token_of(answer: requests.Response) -> str:
    return SafeET.fromstring(answer.content).findtext(f"{DAV}sync-token") or ""


def propfind(url: str, auth: Auth, body: str, depth: str = "0") -> requests.Response:
    return requests.request(
        "PROPFIND",
        url,
        auth=auth,
        data=body,
        headers={"Depth": depth, "Content-Type": "application/xml"},
        timeout=10,
        allow_redirects=False,
    )


HOME_SET = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:current-user-principal/><C:calendar-home-set/></D:prop></D:propfind>"
)
COMPONENTS = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:resourcetype/><C:supported-calendar-component-set/></D:prop></D:propfind>"
)


# ---------------------------------------------------------------------- quirks
def test_partition_host_discovery_moves_to_another_origin(caldav_server: CalDavServer, ada: Auth) -> None:
    """iCloud: discovery on caldav.icloud.com, calendars on pNN-caldav.icloud.com
    (emersion/go-webdav#61: calendar-home-set is an absolute URL on another host;
    memrynote/memry#1399). Documented by other projects."""
    caldav_server.layer.set_quirks(ada[0], {"partition_host"})
    moved = requests.request("PROPFIND", f"{caldav_server.base_url}/.well-known/caldav", auth=ada, timeout=10,
                             allow_redirects=False)  # fmt: skip
    assert moved.status_code == 301
    assert moved.headers["Location"].startswith(caldav_server.partition_url)
    # requests drops the credentials when a redirect changes host or port (should_strip_auth):
    # a client that lets it follow the redirect arrives unauthenticated.
    followed = requests.request("PROPFIND", f"{caldav_server.base_url}/.well-known/caldav", auth=ada, timeout=10)
    assert followed.status_code == 401
    answer = propfind(f"{caldav_server.base_url}/{ada[0]}/", ada, HOME_SET)
    root = SafeET.fromstring(answer.content)
    home = root.findtext(f".//{{urn:ietf:params:xml:ns:caldav}}calendar-home-set/{DAV}href") or ""
    assert home.startswith(caldav_server.partition_url + "/")
    # The user's calendars answer on the partition host only: keeping the first host fails.
    assert requests.request("MKCALENDAR", urljoin(home, "work/"), auth=ada, timeout=10).status_code == 201
    assert propfind(urljoin(home, "work/"), ada, COMPONENTS).status_code == 207
    assert propfind(f"{caldav_server.base_url}/{ada[0]}/work/", ada, COMPONENTS).status_code == 404


def test_absolute_hrefs_name_the_host(caldav_server: CalDavServer, ada: Auth) -> None:
    """iCloud answers hrefs as absolute URLs (go-webdav#61; wvrzel/simpleCalDAV#12 glued
    host + absolute href). Documented by other projects; a client resolves every href
    against the request URL."""
    url = calendar(caldav_server, ada)
    put(url, ada, "abs-1")
    caldav_server.layer.set_quirks(ada[0], {"absolute_hrefs"})
    hrefs = list(statuses(sync(url, ada)))
    assert hrefs
    assert all(h.startswith(caldav_server.base_url + "/") for h in hrefs)


def test_the_collection_itself_appears_in_sync_results(caldav_server: CalDavServer, ada: Auth) -> None:
    """iCloud lists the collection among sync-collection results (lfos/calcurse#60
    "iCloud sends the base URL as resource"; PROVIDERS.md §2.7). Documented by other projects."""
    url = calendar(caldav_server, ada)
    put(url, ada, "coll-1")
    caldav_server.layer.set_quirks(ada[0], {"collection_in_sync"})
    hrefs = [unquote(h) for h in statuses(sync(url, ada))]
    assert unquote(urlsplit(url).path) in hrefs
    assert len(hrefs) == 2


def test_put_without_etag_the_client_reads_it_back(caldav_server: CalDavServer, ada: Auth) -> None:
    """A PUT may answer without ETag (RFC 4791 §5.3.4 when the server changed the data;
    sabre-io/dav#547, cyrusimap/cyrus-imapd#2456). A guess for iCloud; the etag a GET
    answers is the one an If-Match needs."""
    url = calendar(caldav_server, ada)
    caldav_server.layer.set_quirks(ada[0], {"no_etag_on_put"})
    created = put(url, ada, "noetag-1", **{"If-None-Match": "*"})
    assert created.status_code == 201
    assert "ETag" not in created.headers
    etag = requests.get(f"{url}noetag-1.ics", auth=ada, timeout=10).headers["ETag"]
    assert put(url, ada, "noetag-1", **{"If-Match": etag}).status_code in (201, 204)


def test_hrefs_spell_at_signs_differently_in_reports(caldav_server: CalDavServer, ada: Auth) -> None:
    """The same resource as '%40' in PROPFIND and '@' in REPORT (pimutils/vdirsyncer#49,
    #526 on other servers). A guess for iCloud; a client compares hrefs unquoted."""
    url = calendar(caldav_server, ada)
    put(url, ada, "at-1")
    caldav_server.layer.set_quirks(ada[0], {"href_escaping"})
    listed = statuses(propfind(url, ada, COMPONENTS, depth="1"))
    synced = statuses(sync(url, ada))
    raw = next(h for h in synced if h.endswith("at-1.ics"))
    escaped = next(h for h in listed if h.endswith("at-1.ics"))
    assert "@" in raw
    assert "%40" in escaped
    assert raw != escaped
    assert unquote(raw) == unquote(escaped)


def test_a_vtodo_only_calendar_is_listed_in_the_home(caldav_server: CalDavServer, ada: Auth) -> None:
    """iCloud lists Reminders lists (VTODO only) beside calendars (pimutils/vdirsyncer#95,
    home-assistant/core#138121). Documented; a client keeps only calendars that take VEVENT."""
    calendar(caldav_server, ada)
    caldav_server.layer.set_quirks(ada[0], {"vtodo_calendar"})
    root = SafeET.fromstring(propfind(f"{caldav_server.base_url}/{ada[0]}/", ada, COMPONENTS, depth="1").content)
    components = {
        unquote(r.findtext(f"{DAV}href") or "").rstrip("/").rsplit("/", 1)[-1]: {
            c.get("name") for c in r.iter("{urn:ietf:params:xml:ns:caldav}comp")
        }
        for r in root.iter(f"{DAV}response")
    }
    assert components["tasks"] == {"VTODO"}
    assert "VEVENT" in components["home"]


def test_calendar_data_comes_in_cdata(caldav_server: CalDavServer, ada: Auth) -> None:
    """iCloud wraps calendar-data in CDATA (KashCal/KashCal ICloudQuirks, mkdocs/caldav). Documented;
    an XML parser gives the same text either way, a regex over the raw body does not."""
    url = calendar(caldav_server, ada)
    put(url, ada, "cdata-1")
    caldav_server.layer.set_quirks(ada[0], {"cdata_calendar_data"})
    body = (
        '<?xml version="1.0"?><C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop><D:href>{urlsplit(url).path}cdata-1.ics</D:href>"
        "</C:calendar-multiget>"
    )
    answer = requests.request("REPORT", url, auth=ada, data=body, headers={"Depth": "1"}, timeout=10)
    assert answer.status_code == 207
    assert b"<![CDATA[BEGIN:VCALENDAR" in answer.content
    data = SafeET.fromstring(answer.content).findtext(".//{urn:ietf:params:xml:ns:caldav}calendar-data") or ""
    assert "UID:cdata-1" in data


# ---------------------------------------------------------------------- faults
def test_412_on_the_next_write_only(caldav_server: CalDavServer, ada: Auth) -> None:
    """RFC 7232 §4.2: a failed If-Match is 412; the client refetches (issue 15, F6 rules)."""
    url = calendar(caldav_server, ada)
    caldav_server.layer.add_fault(Fault("precondition_412", email=ada[0]))
    assert requests.get(url, auth=ada, timeout=10).status_code == 200  # reads are untouched
    assert put(url, ada, "w-1").status_code == 412
    assert requests.get(f"{url}w-1.ics", auth=ada, timeout=10).status_code == 404
    assert put(url, ada, "w-1").status_code == 201


def test_503_says_when_to_retry(caldav_server: CalDavServer, ada: Auth) -> None:
    """iCloud throttles with 503 (lfos/calcurse#408; ridafkih/keeper.sh#890 "honour their
    503s"). Retry-After is a guess; a client honours it when present."""
    url = calendar(caldav_server, ada)
    caldav_server.layer.add_fault(Fault("unavailable_503", email=ada[0], retry_after=7, count=2))
    for _ in range(2):
        answer = sync(url, ada)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "7"
    assert sync(url, ada).status_code == 207


def test_500_for_one_user_not_another(caldav_server: CalDavServer, ada: Auth) -> None:
    url = calendar(caldav_server, ada)
    other = f"bob-{uuid.uuid4().hex[:8]}@icloud.test"
    bob = (other, caldav_server.add_user(other))
    bob_url = calendar(caldav_server, bob)
    caldav_server.layer.add_fault(Fault("server_error_500", email=ada[0], method="REPORT"))
    assert sync(bob_url, bob).status_code == 207
    assert sync(url, ada).status_code == 500


def test_an_invalidated_sync_token_is_403_valid_sync_token(caldav_server: CalDavServer, ada: Auth) -> None:
    """RFC 6578 §3.2: 403 with DAV:valid-sync-token; iCloud drops tokens (python-caldav/caldav#122).
    The client starts over with an empty token."""
    url = calendar(caldav_server, ada)
    token = token_of(sync(url, ada))
    caldav_server.layer.add_fault(Fault("invalid_sync_token", email=ada[0]))
    refused = sync(url, ada, token)
    assert refused.status_code == 403
    assert SafeET.fromstring(refused.content).find(f"{DAV}valid-sync-token") is not None
    assert sync(url, ada).status_code == 207


def test_icloud_answers_an_invalid_sync_token_with_412_as_text(caldav_server: CalDavServer, ada: Auth) -> None:
    """iCloud answered an invalid sync token with 412, the valid-sync-token XML labelled
    text/plain (https://forums.bitfire.at/topic/1858, CardDAV, 2018). Documented for CardDAV;
    for CalDAV a guess. A client reads the body whatever its Content-Type."""
    url = calendar(caldav_server, ada)
    token = token_of(sync(url, ada))
    caldav_server.layer.add_fault(Fault("invalid_sync_token_412", email=ada[0]))
    refused = sync(url, ada, token)
    assert refused.status_code == 412
    assert refused.headers["Content-Type"].startswith("text/plain")
    assert SafeET.fromstring(refused.content).find(f"{DAV}valid-sync-token") is not None
    assert sync(url, ada, token).status_code == 207


def test_truncated_sync_continues_from_the_returned_token(caldav_server: CalDavServer, ada: Auth) -> None:
    """RFC 6578 §3.6: a truncated answer has a 507 response for the request-URI and a token
    to continue from. Paging covers every item once, an item removed between pages comes
    back as 404, and the last page's token is the server's own."""
    url = calendar(caldav_server, ada)
    for i in range(5):
        put(url, ada, f"t-{i}")
    caldav_server.layer.add_fault(Fault("truncate_507", email=ada[0], limit=2))
    seen: dict[str, str] = {}
    token, pages, removed = "", 0, ""
    while True:
        answer = sync(url, ada, token)
        assert answer.status_code == 207
        pages += 1
        page = {unquote(h): s for h, s in statuses(answer).items()}
        token = token_of(answer)
        items = {h: s for h, s in page.items() if s != "507"}
        assert len(items) <= 2
        seen.update(items)
        if pages == 1:
            removed = next(iter(items))
            assert requests.delete(f"{caldav_server.base_url}{removed}", auth=ada, timeout=10).status_code == 200
        if "507" not in page.values():
            break
        assert page[unquote(urlsplit(url).path)] == "507"
    assert pages == 3
    assert seen.pop(removed) == "404"
    assert sorted(seen.values()) == ["200"] * 4
    # The last token is Radicale's: nothing changed since, so it answers with nothing.
    assert statuses(sync(url, ada, token)) == {}


def test_lost_answers_after_the_write_landed(caldav_server: CalDavServer, ada: Auth) -> None:
    """The request reaches the server, the answer does not (issue 15: a booking appears once
    even when the first PUT's answer is lost). A retried create with If-None-Match is 412."""
    url = calendar(caldav_server, ada)
    caldav_server.layer.add_fault(Fault("lost_drop", email=ada[0], method="PUT"))
    with pytest.raises(requests.ConnectionError):
        put(url, ada, "lost-1", **{"If-None-Match": "*"})
    assert requests.get(f"{url}lost-1.ics", auth=ada, timeout=10).status_code == 200
    caldav_server.layer.add_fault(Fault("lost_504", email=ada[0], method="PUT"))
    assert put(url, ada, "lost-2", **{"If-None-Match": "*"}).status_code == 504
    assert put(url, ada, "lost-2", **{"If-None-Match": "*"}).status_code == 412


def multiget(url: str, auth: Auth, uids: list[str]) -> requests.Response:
    hrefs = "".join(f"<D:href>{urlsplit(url).path}{uid}.ics</D:href>" for uid in uids)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"
    )
    return requests.request(
        "REPORT", url, auth=auth, data=body, headers={"Depth": "1", "Content-Type": "application/xml"}, timeout=10
    )


def test_a_lagging_multiget_reports_existing_members_not_found(caldav_server: CalDavServer, ada: Auth) -> None:
    """J17 (iCloud's eventual consistency, a guess made strict): ``limit`` of the members
    come back 404 though a GET finds them; the rest as usual; the next multiget is whole."""
    url = calendar(caldav_server, ada)
    for uid in ("lag-1", "lag-2", "lag-3"):
        put(url, ada, uid)
    caldav_server.layer.add_fault(Fault("multiget_lag", email=ada[0], limit=2))

    answer = statuses(multiget(url, ada, ["lag-1", "lag-2", "lag-3"]))

    assert sorted(answer.values()) == ["200", "404", "404"]
    for href, status in answer.items():
        assert requests.get(urljoin(url, href), auth=ada, timeout=10).status_code == 200, status
    again = statuses(multiget(url, ada, ["lag-1", "lag-2", "lag-3"]))
    assert sorted(again.values()) == ["200", "200", "200"]


def test_a_multiget_too_large_fails_and_a_smaller_one_works(caldav_server: CalDavServer, ada: Auth) -> None:
    """J17: a batch fails where smaller ones work (500 above ``limit`` members)."""
    url = calendar(caldav_server, ada)
    for uid in ("big-1", "big-2", "big-3"):
        put(url, ada, uid)
    caldav_server.layer.add_fault(Fault("multiget_too_large", email=ada[0], limit=2, count=5))

    assert multiget(url, ada, ["big-1", "big-2", "big-3"]).status_code == 500
    assert multiget(url, ada, ["big-1", "big-2"]).status_code == 207
    assert sync(url, ada).status_code == 207  # other reports are not touched


def test_requests_are_counted_per_user_and_method(caldav_server: CalDavServer, ada: Auth) -> None:
    """For the no-op-poll benchmark (issue 15: one request per calendar)."""
    url = calendar(caldav_server, ada)
    sync(url, ada)
    sync(url, ada)
    path = unquote(urlsplit(url).path)
    assert caldav_server.layer.count(ada[0], "REPORT", path) == 2
    assert caldav_server.layer.count(ada[0], "MKCALENDAR") == 1
    assert caldav_server.layer.count(ada[0]) == 3


# ---------------------------------------------------------------------- control over HTTP
def test_control_over_http(caldav_server: CalDavServer) -> None:
    base = f"{caldav_server.base_url}/_caldav"
    email = f"cy-{uuid.uuid4().hex[:8]}@icloud.test"
    made = requests.post(f"{base}/users", json={"email": email}, timeout=10)
    assert made.status_code == 201
    cy = (email, made.json()["password"])
    url = calendar(caldav_server, cy)
    assert requests.post(f"{base}/faults", json={"kind": "unavailable_503", "email": email}, timeout=10).ok
    assert sync(url, cy).status_code == 503
    assert requests.post(f"{base}/quirks", json={"email": email, "quirks": ["absolute_hrefs"]}, timeout=10).ok
    assert requests.get(f"{base}/quirks", params={"email": email}, timeout=10).json()["quirks"] == ["absolute_hrefs"]
    calls = requests.get(f"{base}/calls", params={"email": email, "method": "REPORT"}, timeout=10).json()
    assert calls == {"count": 1}
    assert requests.post(f"{base}/faults", json={"kind": "nonsense"}, timeout=10).status_code == 400
    requests.post(f"{base}/faults", json={"kind": "server_error_500", "email": email}, timeout=10)
    assert requests.delete(f"{base}/faults", params={"email": email}, timeout=10).ok
    assert sync(url, cy).status_code == 207


def test_control_refuses_user_credentials(caldav_server: CalDavServer, ada: Auth) -> None:
    """A CalDAV user's Basic auth never reaches the control API (a dev/test server on loopback)."""
    answer = requests.post(
        f"{caldav_server.base_url}/_caldav/users", json={"email": "eve@icloud.test"}, auth=ada, timeout=10
    )
    assert answer.status_code == 403
    with pytest.raises(KeyError):
        caldav_server.password_of("eve@icloud.test")


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        CalDavServer(host="0.0.0.0")  # noqa: S104 - the point of the test


# ---------------------------------------------------------------------- logs
def test_no_password_in_any_log_line(caldav_server: CalDavServer, ada: Auth, caplog: pytest.LogCaptureFixture) -> None:
    """Radicale logs failed logins with the user name; the password is never logged, not even
    at debug level, and neither by the fault layer."""
    caplog.set_level(logging.DEBUG)
    url = calendar(caldav_server, ada)
    caldav_server.layer.set_quirks(ada[0], {"vtodo_calendar"})
    caldav_server.layer.add_fault(Fault("truncate_507", email=ada[0]))
    sync(url, ada)
    wrong = ada[1] + "-wrong"
    assert requests.request("PROPFIND", url, auth=(ada[0], wrong), timeout=10).status_code == 401
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert ada[0] in text  # the failed login is logged, by user name
    for password in (ada[1], wrong):
        assert password not in text
        assert b64encode(f"{ada[0]}:{password}".encode()).decode() not in text  # nor the Basic header


def test_expected_radicale_warnings_stay_quiet(
    caldav_server: CalDavServer, ada: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    """An expired sync token is routine (the client resyncs); it is not a warning in the logs."""
    caplog.set_level(logging.WARNING)
    url = calendar(caldav_server, ada)
    assert sync(url, ada, "http://radicale.org/ns/sync/expired").status_code == 403
    assert [r.getMessage() for r in caplog.records if r.name.startswith("radicale")] == []
