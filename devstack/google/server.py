"""The emulator's WSGI application: routing, Google-shaped errors and a quiet request log.

Each emulated service (OAuth today; Calendar, Gmail and People later) is a
:class:`Service` that contributes :class:`Route` objects; :class:`EmulatorApp`
mounts them all on one port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from devstack.google.keys import SigningKeys
from devstack.google.responses import api_error
from devstack.google.state import State

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("devstack.google")

Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    """One URL rule: werkzeug rule string, allowed methods, handler(request, **url_values)."""

    rule: str
    methods: tuple[str, ...]
    handler: Handler


class Service(Protocol):
    """Something that serves part of the emulated Google surface."""

    def routes(self) -> list[Route]:
        """The routes this service answers."""
        ...


@dataclass
class EmulatorContext:
    """What every service needs: the shared state, the signing keys and the public base URL.

    ``base_url`` is filled in once the server has bound its port.
    """

    state: State
    keys: SigningKeys
    base_url: str = ""
    #: Injected API faults (``devstack.google.apis.faults.Faults``), shared by every API.
    faults: Any = None
    #: Outgoing push notifications (``devstack.google.apis.push.PushDispatcher``).
    push: Any = None
    #: Authenticated API requests per method (``devstack.google.apis.calls.CallCounter``).
    calls: Any = None
    #: Per-API data stores, by API name ("calendar", "gmail", "people").
    stores: dict[str, Any] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget everything: accounts, clients, tokens, every API's data, injected faults."""
        self.state.reset()
        if self.faults is not None:
            self.faults.clear()
        if self.calls is not None:
            self.calls.clear()
        for store in self.stores.values():
            reset = getattr(store, "reset", None)
            if reset is not None:
                reset()

    @property
    def issuer(self) -> str:
        """The ``iss`` of id_tokens: the emulator's base URL."""
        return self.base_url


class EmulatorApp:
    """WSGI application dispatching to the routes of the mounted services."""

    def __init__(self, services: Iterable[Service]) -> None:
        self._handlers: dict[str, Handler] = {}
        rules: list[Rule] = []
        for service in services:
            for route in service.routes():
                endpoint = f"{len(self._handlers)}:{route.rule}"
                self._handlers[endpoint] = route.handler
                rules.append(Rule(route.rule, methods=list(route.methods), endpoint=endpoint))
        # strict_slashes off: a trailing-slash redirect would silently turn a POST into a GET.
        self._map = Map(rules, strict_slashes=False)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route ``request`` and turn werkzeug's HTTP exceptions into Google-shaped JSON."""
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            return self._handlers[str(endpoint)](request, **values)
        except NotFound:
            return api_error(404, "Not Found", "notFound")
        except MethodNotAllowed:
            return api_error(405, "Method Not Allowed", "httpMethodNotAllowed")
        except HTTPException as exc:
            # E.g. a malformed form body; the description never includes request data.
            status = exc.code or 400
            return api_error(status, exc.name, "badRequest" if status == 400 else None)


class QuietRequestHandler(WSGIRequestHandler):
    """Request handler that logs method, path and status only.

    Codes travel in query strings and werkzeug's default access log prints the
    full request target, so the default log would leak secrets.
    """

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(getattr(self, "path", "")).path
        log.debug("%s %s %s", getattr(self, "command", "-"), path, code)

    def log_error(self, format: str, *args: Any) -> None:
        # werkzeug's error messages can quote the raw request line; keep only the fact.
        log.debug("HTTP protocol error on a request to the Google emulator")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("HTTP server message suppressed (may contain request data)")
