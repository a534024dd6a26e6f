"""The emulator's WSGI application: routes of the mounted services, JSON errors, a quiet log.

Services (identity here; Graph from ``devstack.microsoft.graph*``) contribute :class:`Route`
objects and :class:`MicrosoftApp` mounts them all on one https port.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("devstack.microsoft")

Handler = Callable[..., Response]

#: Token answers must not be cached (RFC 6749 §5.1); Microsoft sends these on its token endpoint.
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


@dataclass(frozen=True)
class Route:
    """One URL rule: werkzeug rule string, allowed methods, handler(request, **url_values)."""

    rule: str
    methods: tuple[str, ...]
    handler: Handler


class Service(Protocol):
    """Something that serves part of the emulated Microsoft surface."""

    def routes(self) -> list[Route]:
        """The routes this service answers."""
        ...


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(
        json.dumps(body, indent=2) + "\n",
        status=status,
        headers=dict(headers or {}),
        content_type="application/json; charset=utf-8",
    )


def html_response(body: str, status: int = 200) -> Response:
    """An HTML page."""
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def redirect_with_params(base: str, params: Mapping[str, str | None]) -> Response:
    """A 302 to ``base`` with ``params`` added to its query (``None`` values dropped)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    response = Response(status=302)
    # Set directly: the target is the client's registered URI, never rewritten.
    response.headers["Location"] = f"{base}{'&' if '?' in base else '?'}{query}"
    return response


class MicrosoftApp:
    """WSGI application dispatching to the routes of the mounted services."""

    def __init__(self, services: Iterable[Service] = ()) -> None:
        self._handlers: dict[str, Handler] = {}
        # strict_slashes off: a trailing-slash redirect would silently turn a POST into a GET.
        self._map = Map([], strict_slashes=False)
        for service in services:
            self.mount(service)

    def mount(self, service: Service) -> None:
        """Add a service's routes (before the server starts answering)."""
        for route in service.routes():
            endpoint = f"{len(self._handlers)}:{route.rule}"
            self._handlers[endpoint] = route.handler
            self._map.add(Rule(route.rule, methods=list(route.methods), endpoint=endpoint))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.dispatch(Request(environ))(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route ``request``; werkzeug's HTTP exceptions become small JSON errors."""
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            return self._handlers[str(endpoint)](request, **values)
        except NotFound:
            return json_response({"error": {"code": "NotFound", "message": "Not found"}}, 404)
        except MethodNotAllowed:
            return json_response({"error": {"code": "MethodNotAllowed", "message": "Method not allowed"}}, 405)
        except HTTPException as exc:
            # E.g. a malformed form body; the description never includes request data.
            return json_response({"error": {"code": "BadRequest", "message": exc.name}}, exc.code or 400)


class QuietRequestHandler(WSGIRequestHandler):
    """Logs method, path and status only: codes travel in query strings, and werkzeug's
    default access log prints the full request target, which would leak them."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(getattr(self, "path", "")).path
        log.debug("%s %s %s", getattr(self, "command", "-"), path, code)

    def log_error(self, format: str, *args: Any) -> None:
        # werkzeug's error messages can quote the raw request line; keep only the fact.
        log.debug("HTTP protocol error on a request to the Microsoft emulator")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("HTTP server message suppressed (may contain request data)")


#: A client has this long to finish the TLS handshake once connected.
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class TLSRequestHandler(QuietRequestHandler):
    """Runs the TLS handshake in the connection's own thread.

    werkzeug's own TLS wraps the listening socket, so each handshake runs in the accept loop:
    one client that connects and stays silent (a port probe, a browser's idle preconnect)
    stalls every other client. Here the server listens in plain TCP, with its ``ssl_context``
    set only so that werkzeug reports ``https``, and each connection is wrapped on arrival.
    """

    _tls_ok = False

    def setup(self) -> None:
        context = self.server.ssl_context
        if context is None:
            raise RuntimeError("TLSRequestHandler needs the server's ssl_context")
        raw = self.request
        raw.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            self.request = context.wrap_socket(raw, server_side=True)
        except OSError:  # ssl.SSLError and timeouts are OSErrors; the socket is closed already
            log.debug("TLS handshake with a client of the Microsoft emulator failed")
            return
        self.request.settimeout(None)
        self._tls_ok = True
        super().setup()

    def handle(self) -> None:
        if self._tls_ok:
            super().handle()

    def finish(self) -> None:
        if not self._tls_ok:
            return
        try:
            super().finish()
        finally:
            # socketserver shuts down the raw socket, which the TLS wrapper detached.
            self.request.close()
