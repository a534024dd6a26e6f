"""A thin WSGI layer in front of Radicale: iCloud's quirks and server faults, on demand and
per user, and a count of the requests each user made.

Radicale speaks the protocol; iCloud differs from it in ways that broke other sync products
(docs/PITFALLS.md, "CalDAV / iCloud"). This layer reproduces those differences by rewriting
Radicale's answers, never by changing what Radicale stores, so every quirk stays a property
of the wire and the data underneath is always a real CalDAV server's.

Control (a dev/test server on loopback, see docs/LOCAL.md): ``/_caldav/faults``,
``/_caldav/quirks``, ``/_caldav/users``, ``/_caldav/calls``. A control request that carries
an ``Authorization`` header is refused, so a CalDAV user's credentials (or a client that
follows a stray href) never reach it; nothing there needs a user's password.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import secrets
import socket
import threading
import xml.etree.ElementTree as ET  # builds and serialises only; parsing goes through defusedxml
from base64 import b64decode
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import defusedxml.ElementTree as SafeET

if TYPE_CHECKING:
    from devstack.caldav.server import CalDavServer

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
# Prefixes come from Radicale's own namespace registry (ElementTree's is global: registering
# ours would change how Radicale spells every answer).

CONTROL = "/_caldav"

#: Faults: what the next matching request gets instead of (or after) Radicale's answer.
FAULT_KINDS = (
    "precondition_412",  # the next write (PUT/DELETE) is refused: someone changed the item
    "unavailable_503",  # 503 with Retry-After, as iCloud throttles
    "server_error_500",
    "invalid_sync_token",  # the next sync-collection: 403 DAV:valid-sync-token (RFC 6578)
    "invalid_sync_token_412",  # the same as iCloud was seen to answer: 412, text/plain, XML body
    "truncate_507",  # the next sync-collection is cut after ``limit`` items (RFC 6578 §3.6)
    "lost_drop",  # Radicale does the work; the client's connection is dropped
    "lost_504",  # Radicale does the work; the client gets a gateway timeout
    # iCloud's eventual consistency (docs/PITFALLS.md J17): the next calendar-multiget answers
    # 404 for ``limit`` of its members (the first in its answer), though they exist (a GET
    # finds them)
    "multiget_lag",
    # a batch fails where smaller ones work: the next calendar-multiget asking for more than
    # ``limit`` members gets a 500
    "multiget_too_large",
)

#: Quirks: iCloud's differences from Radicale, on for a user until turned off.
QUIRKS = (
    "partition_host",  # well-known and calendar-home-set point at another host (pNN-caldav)
    "absolute_hrefs",  # every href in a multistatus is an absolute URL
    "collection_in_sync",  # the collection itself appears among sync-collection results
    "no_etag_on_put",  # PUT answers without an ETag: the client must re-read it
    "href_escaping",  # REPORT answers spell '@' raw where PROPFIND spells it %40
    "vtodo_calendar",  # a Reminders-like VTODO-only calendar in the home
    "cdata_calendar_data",  # calendar-data wrapped in CDATA instead of escaped text
)

_WRITES = frozenset({"PUT", "DELETE"})
_REWRITES = frozenset(
    {"partition_host", "absolute_hrefs", "collection_in_sync", "href_escaping", "cdata_calendar_data"}
)


def _element_text(name: str) -> re.Pattern[bytes]:
    """``<any-prefix:name …>text</any-prefix:name>`` as (open tag, text, close tag)."""
    tag = rb"(?:[A-Za-z0-9_-]+:)?" + name.encode()
    return re.compile(rb"(<" + tag + rb"(?:\s[^>]*)?>)(.*?)(</" + tag + rb">)", re.S)


_CALENDAR_DATA = _element_text("calendar-data")
_SYNC_TOKEN = _element_text("sync-token")
_EMPTY_SYNC_TOKEN = re.compile(rb"<((?:[A-Za-z0-9_-]+:)?sync-token)(?:\s[^>]*)?/>")
_CONTINUATION = "http://crmsync.invalid/ns/sync/continue-"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass
class Fault:
    """Fail the next ``count`` matching requests of ``email`` (any user when empty) whose HTTP
    method is ``method`` (any when empty; writes only for ``precondition_412``, sync-collection
    reports only for ``invalid_sync_token`` and ``truncate_507``)."""

    kind: str
    email: str = ""
    method: str = ""
    count: int = 1
    retry_after: int = 30
    limit: int = 1

    def matches(self, method: str, email: str, is_sync: bool, multiget: int = 0) -> bool:
        """``multiget``: how many members the request (a calendar-multiget) asks for."""
        if self.email and self.email != email:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.kind == "precondition_412":
            return method in _WRITES
        if self.kind in ("invalid_sync_token", "invalid_sync_token_412", "truncate_507"):
            return is_sync
        if self.kind == "multiget_lag":
            return multiget > 0
        if self.kind == "multiget_too_large":
            return multiget > self.limit
        return True


@dataclass
class _Continuation:
    """A truncated sync-collection in progress: the token Radicale knows, and what the client
    already has (href → the response it got), so the next page leaves those out."""

    real_token: str
    limit: int
    email: str
    path: str
    delivered: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def replace_body(self, body: bytes) -> None:
        self.body = body
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        self.headers.append(("Content-Length", str(len(body))))


class FaultLayer:
    """The WSGI app a :class:`CalDavServer` answers with: Radicale, disturbed on demand.

    Python interface (the same as the HTTP control routes)::

        server.layer.add_fault(Fault("unavailable_503", email="ada@icloud.test", retry_after=5))
        server.layer.set_quirks("ada@icloud.test", {"partition_host", "absolute_hrefs"})
        server.layer.count("ada@icloud.test", "REPORT")
    """

    def __init__(self, server: CalDavServer, app: WsgiApp) -> None:
        self.server = server
        self.app = app
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._quirks: dict[str, set[str]] = {}
        self._calls: Counter[tuple[str, str, str]] = Counter()
        self._continuations: dict[str, _Continuation] = {}

    # ------------------------------------------------------------------ control (Python)
    def add_fault(self, fault: Fault) -> None:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {list(FAULT_KINDS)}")
        if fault.count < 1 or fault.limit < 1 or fault.retry_after < 0:
            raise ValueError("count and limit must be at least 1, retry_after not negative")
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self, email: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if email is not None and f.email != email]
            if email is None:
                self._continuations.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def set_quirks(self, email: str, quirks: Iterable[str]) -> None:
        """Turn on exactly ``quirks`` for ``email`` (an empty set turns them all off)."""
        wanted = set(quirks)
        unknown = wanted - set(QUIRKS)
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; of {list(QUIRKS)}")
        if "vtodo_calendar" in wanted:
            self._make_reminders(email)
        with self._lock:
            self._quirks[email] = wanted

    def quirks(self, email: str) -> set[str]:
        with self._lock:
            return set(self._quirks.get(email, ()))

    def count(self, email: str | None = None, method: str | None = None, path: str | None = None) -> int:
        """Requests that reached the server: of ``email`` (any if None), with HTTP ``method``,
        whose path starts with ``path`` (decoded, e.g. ``/ada@icloud.test/home/``)."""
        with self._lock:
            return sum(
                n
                for (who, verb, where), n in self._calls.items()
                if (email is None or who == email)
                and (method is None or verb == method.upper())
                and (path is None or where.startswith(path))
            )

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path == CONTROL or path.startswith(CONTROL + "/"):
            return self._control(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        email = _basic_user(environ)
        body = _read_body(environ)
        is_sync = method == "REPORT" and b"sync-collection" in body
        multiget = _multiget_members(body) if method == "REPORT" and b"calendar-multiget" in body else 0
        with self._lock:
            if email:
                self._calls[(email, method, unquote(path))] += 1
            quirks = set(self._quirks.get(email, ()))
            fault = self._take_fault(method, email, is_sync, multiget)
        if fault is not None and fault.kind in ("precondition_412", "unavailable_503", "server_error_500"):
            return _refuse(fault, start_response)
        if fault is not None and fault.kind == "multiget_too_large":
            return _respond(start_response, _Answer("500 Internal Server Error", [("Content-Type", "text/plain")], b""))
        if fault is not None and fault.kind in ("invalid_sync_token", "invalid_sync_token_412"):
            return _respond(start_response, _invalid_sync_token(icloud=fault.kind.endswith("412")))
        if "partition_host" in quirks:
            moved = self._partition_redirect(environ, path, email)
            if moved is not None:
                return _respond(start_response, moved)
        continuation = self._continuation_for(body) if is_sync else None
        if continuation is not None:
            body = _with_sync_token(body, continuation.real_token.encode())
        answer = self._forward(environ, body)
        if fault is not None and fault.kind == "lost_drop":
            _drop(environ)
        if fault is not None and fault.kind == "lost_504":
            return _respond(start_response, _Answer("504 Gateway Timeout", [("Content-Type", "text/plain")], b""))
        if fault is not None and fault.kind == "multiget_lag" and answer.code == 207:
            _hide_members(answer, fault.limit)
        if is_sync and answer.code == 207:
            if continuation is not None:
                self._next_page(answer, continuation)
            elif fault is not None and fault.kind == "truncate_507":
                self._first_page(answer, body, fault, email, path)
        self._apply_quirks(answer, environ, method, path, quirks, is_sync)
        return _respond(start_response, answer)

    def _take_fault(self, method: str, email: str, is_sync: bool, multiget: int = 0) -> Fault | None:
        rule = next((f for f in self._faults if f.matches(method, email, is_sync, multiget)), None)
        if rule is not None:
            rule.count -= 1
            if rule.count <= 0:
                self._faults.remove(rule)
        return rule

    def _forward(self, environ: dict[str, Any], body: bytes) -> _Answer:
        inner = dict(environ)
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        # Plain answers, so the layer can rewrite them; compression is not what is tested.
        inner.pop("HTTP_ACCEPT_ENCODING", None)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, list(headers)
            return lambda _chunk: None

        chunks = self.app(inner, capture)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return _Answer(captured["status"], captured["headers"], data)

    # ------------------------------------------------------------------ quirks
    def _partition_redirect(self, environ: dict[str, Any], path: str, email: str) -> _Answer | None:
        """On the main host, discovery answers with the partition host (iCloud's
        ``caldav.icloud.com`` → ``pNN-caldav.icloud.com``); the user's calendars are only
        served there, so a client that keeps the first host (or drops the host of an
        absolute href) fails."""
        if self._on_partition(environ):
            return None
        if path.rstrip("/") == "/.well-known/caldav":
            return _Answer("301 Moved Permanently", [("Location", self.server.partition_url + "/")], b"")
        home = f"/{email}/"
        decoded = unquote(path)
        if email and decoded.startswith(home) and decoded != home:
            return _Answer("404 Not Found", [("Content-Type", "text/plain")], b"")
        return None

    def _on_partition(self, environ: dict[str, Any]) -> bool:
        return str(environ.get("SERVER_PORT", "")) == str(self.server.partition_port)

    def _apply_quirks(
        self, answer: _Answer, environ: dict[str, Any], method: str, path: str, quirks: set[str], is_sync: bool
    ) -> None:
        if method == "PUT" and "no_etag_on_put" in quirks:
            answer.headers = [(k, v) for k, v in answer.headers if k.lower() != "etag"]
        if answer.code != 207 or not quirks & _REWRITES:
            return
        root = SafeET.fromstring(answer.body)
        if is_sync and "collection_in_sync" in quirks:
            root.append(_collection_response(path))
        base = ""
        if "partition_host" in quirks:
            base = self.server.partition_url
        if "absolute_hrefs" in quirks and not base:
            base = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        for href in root.iter(f"{{{DAV}}}href"):
            text = href.text or ""
            if method == "REPORT" and "href_escaping" in quirks:
                text = text.replace("%40", "@")
            if text.startswith("/") and base and ("absolute_hrefs" in quirks or _is_home_set(root, href)):
                text = base + text
            href.text = text
        body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        if "cdata_calendar_data" in quirks:
            body = _CALENDAR_DATA.sub(_as_cdata, body)
        answer.replace_body(body)

    def _make_reminders(self, email: str) -> None:
        """A VTODO-only calendar, made in Radicale as iCloud lists Reminders lists in the
        calendar home (made once; Radicale keeps it)."""
        password = self.server.password_of(email)
        body = (
            b'<?xml version="1.0" encoding="utf-8"?>'
            b'<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            b"<D:displayname>Reminders</D:displayname><C:supported-calendar-component-set>"
            b'<C:comp name="VTODO"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>'
        )
        environ = {
            "REQUEST_METHOD": "MKCALENDAR",
            "PATH_INFO": f"/{email}/tasks/",  # where iCloud keeps Reminders (KashCal ICloudQuirks)
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": self.server.host,
            "SERVER_PORT": "0",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/xml",
            "HTTP_AUTHORIZATION": _basic(email, password),
            "wsgi.url_scheme": "http",
            "wsgi.errors": io.StringIO(),
        }
        answer = self._forward(environ, body)
        if answer.code not in (201, 405, 409):  # 405/409: it exists already
            raise RuntimeError(f"could not make the Reminders calendar: {answer.status}")

    # ------------------------------------------------------------------ 507 truncation
    def _continuation_for(self, body: bytes) -> _Continuation | None:
        token = _sync_token(body)
        if not token.startswith(_CONTINUATION):
            return None
        with self._lock:
            return self._continuations.pop(token, None)

    def _first_page(self, answer: _Answer, body: bytes, fault: Fault, email: str, path: str) -> None:
        state = _Continuation(real_token=_sync_token(body), limit=fault.limit, email=email, path=path)
        self._next_page(answer, state)

    def _next_page(self, answer: _Answer, state: _Continuation) -> None:
        """Cut Radicale's complete answer (from the token Radicale knows) to what the client
        does not have yet, at most ``limit`` items. While more remain, the answer carries a
        507 for the request-URI and a continuation token only this layer knows; the last
        page carries Radicale's own new token, so the client ends where a single answer
        would have left it. An item the client got on an earlier page and that is gone
        now comes back as 404: Radicale keeps the history of removed items and reports
        them against any token, the initial empty one included."""
        root = SafeET.fromstring(answer.body)
        responses = root.findall(f"{{{DAV}}}response")
        pending = [
            response
            for response in responses
            if state.delivered.get(unquote(response.findtext(f"{{{DAV}}}href") or "")) != ET.tostring(response)
        ]
        for response in responses:
            root.remove(response)
        page, rest = pending[: state.limit], pending[state.limit :]
        for response in page:
            root.append(response)
            href = unquote(response.findtext(f"{{{DAV}}}href") or "")
            state.delivered[href] = ET.tostring(response)
        if rest:
            token = _CONTINUATION + secrets.token_hex(12)
            root.append(_insufficient_storage(state.path))
            _set_token(root, token)
            with self._lock:
                self._continuations[token] = state
        answer.replace_body(ET.tostring(root, encoding="utf-8", xml_declaration=True))

    # ------------------------------------------------------------------ control (HTTP)
    def _control(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION"):
            return _respond(start_response, _json({"error": "the control API takes no credentials"}, 403))
        route = (environ.get("REQUEST_METHOD", "GET").upper(), environ.get("PATH_INFO", ""))
        body = _read_body(environ)
        query = dict(
            (unquote(k), unquote(v))
            for k, _, v in (p.partition("=") for p in environ.get("QUERY_STRING", "").split("&") if p)
        )
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("a JSON object is needed")
            return _respond(start_response, self._route(route, payload, query))
        except (TypeError, ValueError, KeyError) as exc:
            return _respond(start_response, _json({"error": str(exc)}, 400))

    def _route(self, route: tuple[str, str], body: dict[str, Any], query: dict[str, str]) -> _Answer:
        verb, path = route
        if path == f"{CONTROL}/faults" and verb == "GET":
            return _json(self.faults())
        if path == f"{CONTROL}/faults" and verb == "POST":
            self.add_fault(
                Fault(
                    kind=str(body["kind"]),
                    email=str(body.get("email", "")),
                    method=str(body.get("method", "")),
                    count=int(body.get("count", 1)),
                    retry_after=int(body.get("retry_after", 30)),
                    limit=int(body.get("limit", 1)),
                )
            )
            return _json({"faults": self.faults()}, 201)
        if path == f"{CONTROL}/faults" and verb == "DELETE":
            self.clear_faults(query.get("email"))
            return _json({})
        if path == f"{CONTROL}/quirks" and verb == "GET":
            return _json({"email": query["email"], "quirks": sorted(self.quirks(query["email"]))})
        if path == f"{CONTROL}/quirks" and verb == "POST":
            quirks = body.get("quirks", [])
            if not isinstance(quirks, list):
                raise ValueError("quirks must be a list")
            self.set_quirks(str(body["email"]), (str(q) for q in quirks))
            return _json({"email": body["email"], "quirks": sorted(self.quirks(str(body["email"])))}, 201)
        if path == f"{CONTROL}/users" and verb == "POST":
            email = str(body["email"])
            password = self.server.add_user(email, str(body["password"]) if body.get("password") else None)
            return _json({"email": email, "password": password}, 201)
        if path == f"{CONTROL}/calls" and verb == "GET":
            count = self.count(query.get("email"), query.get("method"), query.get("path"))
            return _json({"count": count})
        if path == f"{CONTROL}/calls" and verb == "DELETE":
            self.clear_calls()
            return _json({})
        return _json({"error": "no such control route"}, 404)


# ---------------------------------------------------------------------- helpers
def _basic_user(environ: dict[str, Any]) -> str:
    """The user name of a Basic Authorization header (never the password: it is not kept)."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return b64decode(value.strip()).decode("utf-8").partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return ""


def _basic(user: str, password: str) -> str:
    from base64 import b64encode

    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    data = stream.read(length) if stream is not None and length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return bytes(data)


def _multiget_members(body: bytes) -> int:
    try:
        return len(SafeET.fromstring(body).findall(f"{{{DAV}}}href"))
    except (ET.ParseError, ValueError):
        return 0


def _hide_members(answer: _Answer, limit: int) -> None:
    """The first ``limit`` members of a multiget answer as not found (their data dropped)."""
    root = SafeET.fromstring(answer.body)
    for response in root.findall(f"{{{DAV}}}response")[:limit]:
        for child in list(response):
            if child.tag != f"{{{DAV}}}href":
                response.remove(child)
        ET.SubElement(response, f"{{{DAV}}}status").text = "HTTP/1.1 404 Not Found"
    answer.replace_body(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _respond(start_response: StartResponse, answer: _Answer) -> Iterable[bytes]:
    headers = [(k, v) for k, v in answer.headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(answer.body))))
    start_response(answer.status, headers)
    return [answer.body]


def _json(value: Any, code: int = 200) -> _Answer:
    reasons = {200: "OK", 201: "Created", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
    return _Answer(f"{code} {reasons[code]}", [("Content-Type", "application/json")], json.dumps(value).encode())


def _refuse(fault: Fault, start_response: StartResponse) -> Iterable[bytes]:
    if fault.kind == "precondition_412":
        return _respond(start_response, _Answer("412 Precondition Failed", [("Content-Type", "text/plain")], b""))
    if fault.kind == "unavailable_503":
        headers = [("Content-Type", "text/plain"), ("Retry-After", str(fault.retry_after))]
        return _respond(start_response, _Answer("503 Service Unavailable", headers, b""))
    return _respond(start_response, _Answer("500 Internal Server Error", [("Content-Type", "text/plain")], b""))


def _invalid_sync_token(icloud: bool) -> _Answer:
    """RFC 6578 §3.2 says 403 with the DAV:valid-sync-token precondition; iCloud was seen
    answering 412 with the same XML labelled text/plain (DAVx5 forum, bitfire.at topic 1858)."""
    if icloud:
        body = b"<?xml version='1.0' encoding='UTF-8'?>\n<error xmlns='DAV:'><valid-sync-token/></error>"
        return _Answer("412 Precondition Failed", [("Content-Type", "text/plain; charset=UTF-8")], body)
    body = b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>'
    return _Answer("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8")], body)


def _drop(environ: dict[str, Any]) -> None:
    """Close the client's connection after Radicale did the work: the answer is lost."""
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionResetError("lost_drop: the answer is dropped on purpose")


def _sync_token(body: bytes) -> str:
    match = _SYNC_TOKEN.search(body)
    return match.group(2).decode("utf-8").strip() if match else ""


def _with_sync_token(body: bytes, token: bytes) -> bytes:
    if _SYNC_TOKEN.search(body):
        return _SYNC_TOKEN.sub(lambda m: m.group(1) + token + m.group(3), body, count=1)
    return _EMPTY_SYNC_TOKEN.sub(lambda m: b"<" + m.group(1) + b">" + token + b"</" + m.group(1) + b">", body, count=1)


def _set_token(root: ET.Element, token: str) -> None:
    element = root.find(f"{{{DAV}}}sync-token")
    if element is None:
        element = ET.SubElement(root, f"{{{DAV}}}sync-token")
    element.text = token


def _insufficient_storage(path: str) -> ET.Element:
    response = ET.Element(f"{{{DAV}}}response")
    ET.SubElement(response, f"{{{DAV}}}href").text = quote(unquote(path))
    ET.SubElement(response, f"{{{DAV}}}status").text = "HTTP/1.1 507 Insufficient Storage"
    error = ET.SubElement(response, f"{{{DAV}}}error")
    ET.SubElement(error, f"{{{DAV}}}number-of-matches-within-limits")
    return response


def _collection_response(path: str) -> ET.Element:
    response = ET.Element(f"{{{DAV}}}response")
    ET.SubElement(response, f"{{{DAV}}}href").text = quote(unquote(path))
    propstat = ET.SubElement(response, f"{{{DAV}}}propstat")
    prop = ET.SubElement(propstat, f"{{{DAV}}}prop")
    resourcetype = ET.SubElement(prop, f"{{{DAV}}}resourcetype")
    ET.SubElement(resourcetype, f"{{{DAV}}}collection")
    ET.SubElement(resourcetype, f"{{{CALDAV}}}calendar")
    ET.SubElement(propstat, f"{{{DAV}}}status").text = "HTTP/1.1 200 OK"
    return response


def _as_cdata(match: re.Match[bytes]) -> bytes:
    """The same text as a CDATA section (ElementTree only writes escaped text)."""
    text = html.unescape(match.group(2).decode("utf-8"))
    return match.group(1) + b"<![CDATA[" + text.encode("utf-8") + b"]]>" + match.group(3)


def _is_home_set(root: ET.Element, href: ET.Element) -> bool:
    return any(href in list(home) for home in root.iter(f"{{{CALDAV}}}calendar-home-set"))


def host_of(url: str) -> str:
    """``host:port`` of an absolute URL (tests compare the hosts hrefs point at)."""
    return urlsplit(url).netloc
