"""A small CalDAV client on ``requests``: discovery (RFC 6764 / RFC 4791), PROPFIND,
``sync-collection`` (RFC 6578), ``calendar-multiget``, PUT and DELETE with preconditions.

Every href is the server's: it is resolved against the URL of the response that carried it
and never rebuilt (iCloud answers from partition hosts such as ``pNN-caldav.icloud.com``).
Every status the server answers is translated into the neutral errors of
:mod:`crmsync.ports.errors` here, so the adapter above never sees HTTP.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

import requests
from defusedxml import ElementTree as SafeET

from crmsync.ports.errors import (
    AuthRevoked,
    CursorInvalid,
    PreconditionFailed,
    ProviderError,
    ProviderNotFound,
    RateLimited,
)

__all__ = ["DavCalendar", "DavClient", "DavResource", "Discovery", "SyncResult"]

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"

ET.register_namespace("d", DAV)
ET.register_namespace("c", CALDAV)
ET.register_namespace("cs", CS)
ET.register_namespace("a", APPLE)

#: Connect and read timeouts of every request, in seconds.
TIMEOUT = (5.0, 30.0)
log = logging.getLogger(__name__)

#: Redirects one request follows (well-known → principal, iCloud's partition hosts).
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: How many hrefs one ``calendar-multiget`` asks for.
MULTIGET_CHUNK = 100
#: How many 507 continuations one listing follows before it gives up (a server that never
#: finishes must not loop forever).
MAX_CONTINUATIONS = 1000


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass(frozen=True)
class Discovery:
    """Who the credentials are and where their calendars live (absolute URLs)."""

    username: str
    principal_url: str
    home_url: str


@dataclass(frozen=True)
class DavCalendar:
    """A calendar collection as the home's PROPFIND describes it."""

    url: str
    name: str
    access_role: str
    color: str | None
    time_zone: str | None
    ctag: str | None
    sync_token: str | None


@dataclass(frozen=True)
class DavResource:
    """A member of a calendar: its absolute URL, etag and (when asked for) its iCalendar."""

    url: str
    etag: str | None
    data: str | None = None


@dataclass
class SyncResult:
    """What a ``sync-collection`` listing found: changed members, removed member URLs and
    the token to continue from."""

    changed: list[DavResource] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    token: str = ""


class DavClient:
    """One account's CalDAV session: HTTP Basic with the account name and its (app-specific)
    password; the password lives in the session and is never logged or put in an error."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        session: requests.Session | None = None,
        guard: Callable[[str], None] | None = None,
    ) -> None:
        """``guard``: called with every redirect target before it is followed; raises to
        refuse it (a server must not send the backend to its own network)."""
        self._guard = guard
        self.base_url = base_url.rstrip("/") + "/"
        self.username = username
        self._session = session or requests.Session()
        # UTF-8 (RFC 7617 §2.1): requests would encode str credentials as Latin-1 and raise
        # for any other character; bytes are sent as they are.
        self._session.auth = requests.auth.HTTPBasicAuth(username.encode("utf-8"), password.encode("utf-8"))
        self._session.headers["User-Agent"] = "crmsync-caldav/1"

    # ------------------------------------------------------------------ transport
    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        expect: Iterable[int] = (200, 201, 204, 207),
        what: str = "",
    ) -> requests.Response:
        """One request with a timeout; statuses outside ``expect`` become neutral errors.

        Redirects are followed here, not by ``requests``: it would turn a redirected
        PROPFIND into a GET (302) and drop the credentials on the way to another host, and
        iCloud redirects to partition hosts. The method, body and credentials go along,
        but never from https to plain http."""
        what = what or method
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._session.request(
                    method, url, data=body, headers=headers or {}, timeout=TIMEOUT, allow_redirects=False
                )
            except requests.RequestException as exc:
                raise ProviderError(f"CalDAV {what}: {type(exc).__name__}", retryable=True) from exc
            location = response.headers.get("Location")
            if response.status_code in _REDIRECTS and location:
                target = urljoin(response.url, location)
                if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                    raise ProviderError(f"CalDAV {what}: redirected from https to plain http.", retryable=False)
                if self._guard is not None:
                    self._guard(target)
                url = target
                continue
            if response.status_code in set(expect):
                return response
            raise error_for(response, what)
        raise ProviderError(f"CalDAV {what}: too many redirects.", retryable=False)

    def _xml(
        self, method: str, url: str, root: ET.Element, *, depth: str, what: str, expect: Iterable[int] = (207,)
    ) -> tuple[ET.Element, str]:
        body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        response = self.request(
            method,
            url,
            body=body,
            headers={"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
            expect=expect,
            what=what,
        )
        return _parse(response.content, what), response.url

    def propfind(
        self, url: str, props: Iterable[str], *, depth: str = "0"
    ) -> list[tuple[str, dict[str, ET.Element], int]]:
        """``(absolute href, {prop tag: element}, status)`` per response; only props found
        (200 propstat) are in the map."""
        root = ET.Element(_q(DAV, "propfind"))
        prop = ET.SubElement(root, _q(DAV, "prop"))
        for tag in props:
            ET.SubElement(prop, tag)
        tree, answered = self._xml("PROPFIND", url, root, depth=depth, what="PROPFIND")
        return [(href, found, status) for href, found, status in _responses(tree, answered)]

    # ------------------------------------------------------------------ discovery
    def discover(self) -> Discovery:
        """Well-known → current-user-principal → calendar-home-set; a wrong password raises
        :class:`AuthRevoked`. Servers without the well-known URL are asked at the base URL."""
        principal: str | None = None
        for start in (urljoin(self.base_url, "/.well-known/caldav"), self.base_url):
            try:
                [(_, found, _)] = self.propfind(start, [_q(DAV, "current-user-principal")])[:1]
            except ProviderNotFound:
                continue
            element = found.get(_q(DAV, "current-user-principal"))
            href = _href_in(element)
            if href:
                principal = href
                break
        if principal is None:
            raise ProviderError("CalDAV discovery: the server names no current-user-principal.", retryable=False)
        [(_, found, _)] = self.propfind(principal, [_q(CALDAV, "calendar-home-set")])[:1]
        home = _href_in(found.get(_q(CALDAV, "calendar-home-set")))
        if not home:
            raise ProviderError("CalDAV discovery: the principal names no calendar-home-set.", retryable=False)
        return Discovery(self.username, principal, home)

    def calendars(self, home_url: str) -> list[DavCalendar]:
        """The home's VEVENT calendar collections (tasks-only and other collections left out)."""
        props = [
            _q(DAV, "resourcetype"),
            _q(DAV, "displayname"),
            _q(CALDAV, "supported-calendar-component-set"),
            _q(CS, "getctag"),
            _q(DAV, "sync-token"),
            _q(APPLE, "calendar-color"),
            _q(CALDAV, "calendar-timezone"),
            _q(DAV, "current-user-privilege-set"),
        ]
        calendars: list[DavCalendar] = []
        for href, found, _ in self.propfind(home_url, props, depth="1"):
            kind = found.get(_q(DAV, "resourcetype"))
            if kind is None or kind.find(_q(CALDAV, "calendar")) is None:
                continue
            components = found.get(_q(CALDAV, "supported-calendar-component-set"))
            if components is not None and not any(c.get("name") == "VEVENT" for c in components):
                continue
            calendars.append(
                DavCalendar(
                    url=href,
                    name=_text(found.get(_q(DAV, "displayname"))) or unquote(href.rstrip("/").rsplit("/", 1)[-1]),
                    access_role=_access_role(found.get(_q(DAV, "current-user-privilege-set"))),
                    color=_text(found.get(_q(APPLE, "calendar-color"))),
                    time_zone=_text(found.get(_q(CALDAV, "calendar-timezone"))),
                    ctag=_text(found.get(_q(CS, "getctag"))),
                    sync_token=_text(found.get(_q(DAV, "sync-token"))),
                )
            )
        return calendars

    def collection_state(self, url: str) -> tuple[str | None, str | None]:
        """``(ctag, sync token)`` of one collection (Depth 0): one request."""
        for href, found, _ in self.propfind(url, [_q(CS, "getctag"), _q(DAV, "sync-token")]):
            if same_resource(href, url):
                return _text(found.get(_q(CS, "getctag"))), _text(found.get(_q(DAV, "sync-token")))
        return None, None

    def calendar_timezone(self, url: str) -> str | None:
        """The collection's ``calendar-timezone`` (a VTIMEZONE), if it has one."""
        for href, found, _ in self.propfind(url, [_q(CALDAV, "calendar-timezone")]):
            if same_resource(href, url):
                return _text(found.get(_q(CALDAV, "calendar-timezone")))
        return None

    # ------------------------------------------------------------------ sync
    def sync_collection(self, url: str, token: str) -> SyncResult:
        """RFC 6578 ``sync-collection`` at ``sync-level`` 1 from ``token`` (empty: initial),
        following 507 truncations from the token each partial answer returns. The collection
        itself (which iCloud lists) is left out; members answered 404 are removed."""
        result = SyncResult(token=token)
        for _ in range(MAX_CONTINUATIONS):
            root = ET.Element(_q(DAV, "sync-collection"))
            ET.SubElement(root, _q(DAV, "sync-token")).text = result.token
            ET.SubElement(root, _q(DAV, "sync-level")).text = "1"
            prop = ET.SubElement(root, _q(DAV, "prop"))
            ET.SubElement(prop, _q(DAV, "getetag"))
            tree, answered = self._xml("REPORT", url, root, depth="0", what="sync-collection", expect=(207, 507))
            truncated = False
            for element in tree.findall(_q(DAV, "response")):
                href = _response_href(element, answered)
                status = _status_of(element)
                if same_resource(href, url):
                    truncated = truncated or status == 507
                    continue
                if status == 404:
                    result.removed.append(href)
                    continue
                found, _ = _props(element, answered)
                result.changed.append(DavResource(href, _text(found.get(_q(DAV, "getetag")))))
            new_token = _text(tree.find(_q(DAV, "sync-token")))
            if not new_token:
                raise ProviderError("sync-collection: the answer carried no sync-token.", retryable=True)
            if truncated and new_token == result.token:
                raise ProviderError("sync-collection: truncated without progress.", retryable=True)
            result.token = new_token
            if not truncated:
                return result
        raise ProviderError("sync-collection: too many truncated answers.", retryable=True)

    def etags(self, url: str) -> dict[str, str | None]:
        """Every member's etag (Depth 1 PROPFIND): the fallback where sync-collection is missing."""
        return {
            href: _text(found.get(_q(DAV, "getetag")))
            for href, found, status in self.propfind(url, [_q(DAV, "getetag"), _q(DAV, "resourcetype")], depth="1")
            if not same_resource(href, url) and status != 404
        }

    def multiget(self, url: str, hrefs: list[str], *, first: int = MULTIGET_CHUNK) -> Iterator[DavResource]:
        """``calendar-multiget`` in chunks: the iCalendar of each member. The first chunk holds
        ``first`` members (a small one lets the caller start storing sooner), the others
        :data:`MULTIGET_CHUNK`.

        iCloud (docs/PITFALLS.md J17): a batch may fail where smaller ones work, and a member
        just written may be missing from a multiget. A chunk that fails with a server error
        is asked again in halves; a member the answer lacks (or reports 404) is fetched alone.
        One that cannot be read even so (not visible yet, or deleted meanwhile) makes the
        listing fail as retryable, so the caller keeps its sync token and asks again later
        (then a deletion is reported as one) instead of skipping a change for good."""
        start = 0
        while start < len(hrefs):
            size = min(first, MULTIGET_CHUNK) if start == 0 else MULTIGET_CHUNK
            chunk, start = hrefs[start : start + size], start + size
            yield from self._multiget_chunk(url, chunk)

    def _multiget_chunk(self, url: str, hrefs: list[str]) -> Iterator[DavResource]:
        try:
            found = self._multiget(url, hrefs)
        except RateLimited:
            raise  # asked to slow down: not by asking more
        except ProviderError as exc:
            if not exc.retryable or (exc.status or 0) < 500 or len(hrefs) == 1:
                raise
            log.info("CalDAV multiget failed; asking again in halves", extra={"members": len(hrefs)})
            half = len(hrefs) // 2
            yield from self._multiget_chunk(url, hrefs[:half])
            yield from self._multiget_chunk(url, hrefs[half:])
            return
        yield from found
        read = {_path_key(resource.url) for resource in found}
        unread = 0
        for href in hrefs:
            if _path_key(href) in read:
                continue
            try:
                yield self.get(href)
            except ProviderNotFound:
                unread += 1
        if unread:
            raise ProviderError(
                f"CalDAV calendar-multiget: {unread} changed event(s) could not be read yet.", retryable=True
            )

    def _multiget(self, url: str, hrefs: list[str]) -> list[DavResource]:
        root = ET.Element(_q(CALDAV, "calendar-multiget"))
        prop = ET.SubElement(root, _q(DAV, "prop"))
        ET.SubElement(prop, _q(DAV, "getetag"))
        ET.SubElement(prop, _q(CALDAV, "calendar-data"))
        for href in hrefs:
            ET.SubElement(root, _q(DAV, "href")).text = urlsplit(href).path
        tree, answered = self._xml("REPORT", url, root, depth="1", what="calendar-multiget")
        return [
            DavResource(href, _text(found.get(_q(DAV, "getetag"))), data)
            for href, found, status in _responses(tree, answered)
            if status != 404 and (data := _text(found.get(_q(CALDAV, "calendar-data")))) is not None
        ]

    # ------------------------------------------------------------------ writes
    def put(self, url: str, data: bytes, *, if_match: str | None = None, create: bool = False) -> str | None:
        """PUT a calendar object; ``create``: only if absent (``If-None-Match: *``). Returns
        the new etag, asked for with a PROPFIND when the PUT answer carries none (iCloud)."""
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if create:
            headers["If-None-Match"] = "*"
        elif if_match:
            headers["If-Match"] = if_match
        response = self.request("PUT", url, body=data, headers=headers, expect=(200, 201, 204), what="PUT")
        etag = response.headers.get("ETag")
        if etag and not etag.startswith("W/"):
            return etag
        return self.etag(url)

    def etag(self, url: str) -> str | None:
        for href, found, status in self.propfind(url, [_q(DAV, "getetag")]):
            if status != 404 and same_resource(href, url):
                return _text(found.get(_q(DAV, "getetag")))
        return None

    def get(self, url: str) -> DavResource:
        response = self.request("GET", url, expect=(200,), what="GET")
        return DavResource(response.url, response.headers.get("ETag"), response.text)

    def delete(self, url: str, *, if_match: str | None = None) -> None:
        headers = {"If-Match": if_match} if if_match else {}
        self.request("DELETE", url, headers=headers, expect=(200, 204), what="DELETE")


# ---------------------------------------------------------------------- errors


def error_for(response: requests.Response, what: str) -> ProviderError:
    """The neutral error for a status (the body is read for RFC 6578's precondition only and
    never copied into the message: it may echo what we sent)."""
    status = response.status_code
    if status == 401:
        return AuthRevoked(f"CalDAV {what}: the server refused the credentials (401).")
    if status in (403, 409) and b"valid-sync-token" in response.content:
        return CursorInvalid()
    if status in (404, 410):
        return ProviderNotFound(f"CalDAV {what}: not found ({status}).")
    if status == 412:
        return PreconditionFailed(f"CalDAV {what}: the resource changed (412).")
    if status == 429 or (status == 503 and response.headers.get("Retry-After")):
        return RateLimited(f"CalDAV {what}: slow down ({status}).", retry_after=_retry_after(response), status=status)
    if status >= 500:
        return ProviderError(f"CalDAV {what}: server error {status}.", retryable=True, status=status)
    return ProviderError(f"CalDAV {what}: refused ({status}).", retryable=False, status=status)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# ---------------------------------------------------------------------- XML


def _parse(content: bytes, what: str) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(content)
    except (ET.ParseError, ValueError) as exc:
        raise ProviderError(f"CalDAV {what}: the answer is not XML.", retryable=True) from exc
    return root


def _responses(tree: ET.Element, answered: str) -> Iterator[tuple[str, dict[str, ET.Element], int]]:
    for element in tree.findall(_q(DAV, "response")):
        found, status = _props(element, answered)
        yield _response_href(element, answered), found, status


def _response_href(element: ET.Element, answered: str) -> str:
    return urljoin(answered, (element.findtext(_q(DAV, "href")) or "").strip())


def _props(element: ET.Element, answered: str) -> tuple[dict[str, ET.Element], int]:
    """The 2xx propstat's properties, and the response's status. Every ``DAV:href`` inside a
    property is made absolute against ``answered``, the URL that returned it."""
    found: dict[str, ET.Element] = {}
    for propstat in element.findall(_q(DAV, "propstat")):
        if _code(propstat.findtext(_q(DAV, "status"))) // 100 == 2:
            for prop in propstat.findall(_q(DAV, "prop")):
                for child in prop:
                    for href in child.iter(_q(DAV, "href")):
                        href.text = urljoin(answered, (href.text or "").strip())
                    found[child.tag] = child
    return found, _status_of(element)


def _status_of(element: ET.Element) -> int:
    own = element.findtext(_q(DAV, "status"))
    if own:
        return _code(own)
    return 200


def _code(status_line: str | None) -> int:
    parts = (status_line or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    text = (element.text or "").strip()
    return text or None


def _href_in(element: ET.Element | None) -> str | None:
    """The (already absolute) URL of the ``DAV:href`` inside a property."""
    if element is None:
        return None
    return _text(element.find(_q(DAV, "href")))


def _access_role(privileges: ET.Element | None) -> str:
    if privileges is None:
        return "owner"
    names = {child.tag for privilege in privileges.findall(_q(DAV, "privilege")) for child in privilege}
    if _q(DAV, "all") in names or _q(DAV, "write-acl") in names:
        return "owner"
    if names & {_q(DAV, "write"), _q(DAV, "write-content"), _q(DAV, "bind")}:
        return "writer"
    return "reader"


def _path_key(url: str) -> str:
    """A resource's path, escaping and trailing slash aside (hrefs come back absolute or not,
    with "@" raw or escaped: docs/PITFALLS.md J1, J10)."""
    return unquote(urlsplit(url).path).rstrip("/")


def same_resource(a: str, b: str) -> bool:
    """Whether two absolute URLs name one resource (trailing slash and escaping aside)."""
    return urlsplit(a).netloc == urlsplit(b).netloc and _path_key(a) == _path_key(b)
