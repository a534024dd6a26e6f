"""The local API Gateway HTTP API: routes, JWT authorizer, payload format 2.0.

`HttpApiServer` serves every HttpApi route of the template to its function with the event API
Gateway would send (payload format version 2.0) and maps the function's result back to an HTTP
response with the format 2.0 rules. The same server also serves the local identity provider
(`/.devstack/issuer/...`) and the control API (`/.devstack/...`), both through a hook.

Access logs carry method, path and status only: OAuth codes travel in query strings. What a
client sent is logged percent-encoded (:func:`loggable`): a decoded ``%0A`` or ``%00`` in a
path would otherwise forge log lines or write NUL bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from devstack.runtime.pool import InvocationResult
from devstack.template import HttpRoute, JwtAuthorizer

DEVSTACK_PREFIX = "/.devstack"
TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/graphql")

Invoker = Callable[[str, Any], InvocationResult]
ControlHandler = Callable[[Request], Response | None]
LogFunction = Callable[[str], None]


def loggable(text: str) -> str:
    """``text`` fit for one log line: percent-encoded except for the characters a URL path
    may show as they are, so no control character, line break or NUL (nor a ``%`` that
    could fake an escape) reaches the log raw."""
    return urllib.parse.quote(text, safe="/:@!$&'()*+,;=-._~")


# ---------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class RouteMatch:
    """A matched route and its path parameters."""

    route: HttpRoute
    path_parameters: dict[str, str]


def _segments(path: str) -> list[str]:
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


def _match_path(route_path: str, path: str) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """Match `path` against a route path; returns (specificity, parameters) or None."""
    pattern, actual = _segments(route_path), _segments(path)
    params: dict[str, str] = {}
    score: list[int] = []
    for index, segment in enumerate(pattern):
        if segment.startswith("{") and segment.endswith("+}"):
            if index != len(pattern) - 1 or index >= len(actual):
                return None
            params[segment[1:-2]] = "/".join(actual[index:])
            score.append(0)
            return tuple(score), params
        if index >= len(actual):
            return None
        if segment.startswith("{") and segment.endswith("}"):
            params[segment[1:-1]] = urllib.parse.unquote(actual[index])
            score.append(1)
        elif segment == actual[index]:
            score.append(2)
        else:
            return None
    if len(actual) != len(pattern):
        return None
    return tuple(score), params


def match_route(routes: Sequence[HttpRoute], method: str, path: str) -> RouteMatch | None:
    """Pick the route API Gateway would: most specific path, then exact method over ANY, then $default."""
    best: tuple[tuple[tuple[int, ...], int], RouteMatch] | None = None
    default: HttpRoute | None = None
    for route in routes:
        if route.path == "$default":
            default = route
            continue
        if route.method not in (method, "ANY"):
            continue
        matched = _match_path(route.path, path)
        if matched is None:
            continue
        score, params = matched
        key = (score, 1 if route.method == method else 0)
        if best is None or key > best[0]:
            best = (key, RouteMatch(route, params))
    if best is not None:
        return best[1]
    if default is not None:
        return RouteMatch(default, {})
    return None


# ---------------------------------------------------------------------------- JWT authorizer


class Unauthorized(Exception):
    """The JWT authorizer refuses the request (the reason is for logs only)."""


class JwtVerifier:
    """Validates bearer JWTs like API Gateway's JWT authorizer, for any OIDC issuer."""

    def __init__(self, cache_seconds: float = 300.0, leeway: float = 0.0) -> None:
        self.cache_seconds = cache_seconds
        self.leeway = leeway
        self._keys: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _fetch_keys(self, issuer: str) -> dict[str, Any]:
        discovery_url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        with urllib.request.urlopen(discovery_url, timeout=5) as response:  # noqa: S310 - http(s) issuer URL
            discovery = json.load(response)
        with urllib.request.urlopen(discovery["jwks_uri"], timeout=5) as response:  # noqa: S310
            jwks = json.load(response)
        return {key["kid"]: key for key in jwks.get("keys", []) if "kid" in key}

    def _key(self, issuer: str, kid: str) -> Any:
        with self._lock:
            fetched_at, keys = self._keys.get(issuer, (0.0, {}))
            stale = time.monotonic() - fetched_at > self.cache_seconds
            if stale or kid not in keys:
                try:
                    keys = self._fetch_keys(issuer)
                except (OSError, ValueError, KeyError) as exc:
                    raise Unauthorized(f"cannot fetch the issuer's keys: {exc}") from exc
                self._keys[issuer] = (time.monotonic(), keys)
        if kid not in keys:
            raise Unauthorized("unknown kid")
        return jwt.PyJWK(keys[kid]).key

    def verify(self, authorizer: JwtAuthorizer, header_value: str | None) -> dict[str, Any]:
        """Return the token's claims, or raise `Unauthorized`."""
        if not header_value:
            raise Unauthorized("no token")
        token = header_value.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from exc
        if header.get("alg") != "RS256" or not header.get("kid"):
            raise Unauthorized("token must be RS256 with a kid")
        key = self._key(authorizer.issuer, str(header["kid"]))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=authorizer.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(str(exc)) from exc
        audiences = claims.get("aud", claims.get("client_id"))
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        if not set(audiences) & set(authorizer.audience):
            raise Unauthorized("audience not allowed")
        return claims


def claim_text(value: Any) -> str:
    """Claims as API Gateway passes them: strings, arrays as `[a b]`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(claim_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def token_scopes(claims: dict[str, Any]) -> list[str] | None:
    """Scopes from the `scope` (space-separated) or `scp` claim."""
    raw = claims.get("scope", claims.get("scp"))
    if raw is None:
        return None
    return raw.split() if isinstance(raw, str) else [str(item) for item in raw]


# ---------------------------------------------------------------------------- events


def is_text(content_type: str | None) -> bool:
    """Bodies of these types travel as text; everything else is base64-encoded."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in TEXT_TYPES or media.endswith(("+json", "+xml"))


def _request_id() -> str:
    return base64.b64encode(os.urandom(10)).decode()


def build_event(
    request: Request,
    match: RouteMatch,
    api_id: str,
    account_id: str,
    jwt_claims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload format 2.0 event for `request`."""
    environ = request.environ
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
    raw_path, _, raw_query = str(raw_uri).partition("?")
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    cookie_header = headers.pop("cookie", None)
    now = datetime.now(UTC)
    source_ip = str(request.remote_addr or "127.0.0.1")
    host = headers.get("host", "localhost")
    headers.setdefault("x-forwarded-for", source_ip)
    headers.setdefault("x-forwarded-proto", request.scheme)
    headers.setdefault("x-forwarded-port", str(environ.get("SERVER_PORT", "")))
    headers["x-amzn-trace-id"] = f"Root=1-{int(now.timestamp()):08x}-{os.urandom(12).hex()}"
    domain = host.split(":", 1)[0]
    request_context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": urllib.parse.unquote(raw_path),
            "protocol": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": _request_id(),
        "routeKey": match.route.route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if jwt_claims is not None:
        request_context["authorizer"] = {
            "jwt": {
                "claims": {name: claim_text(value) for name, value in jwt_claims.items()},
                "scopes": token_scopes(jwt_claims),
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookie_header:
        event["cookies"] = [part.strip() for part in cookie_header.split(";") if part.strip()]
    event["headers"] = headers
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = request_context
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    body = request.get_data(cache=True)
    encoded = False
    if body:
        if is_text(request.headers.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                encoded = True
        else:
            encoded = True
        if encoded:
            event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = encoded
    return event


class BadIntegrationResponse(Exception):
    """The function's result is not a valid format 2.0 response."""


def to_response(result: Any) -> Response:
    """Map a function result to HTTP with the payload format 2.0 rules."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return Response(json.dumps(result), status=200, content_type="application/json")
    status = result["statusCode"]
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise BadIntegrationResponse(f"invalid statusCode {status!r}")
    body = result.get("body", "")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise BadIntegrationResponse("body must be a string")
    data: bytes
    if result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise BadIntegrationResponse(f"body is not valid base64: {exc}") from exc
    else:
        data = body.encode("utf-8")
    headers = Headers()
    for name, value in (result.get("headers") or {}).items():
        headers.add(str(name), claim_text(value))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            headers.add(str(name), claim_text(value))
    for cookie in result.get("cookies") or []:
        headers.add("Set-Cookie", str(cookie))
    if "content-type" not in headers:
        headers["Content-Type"] = "application/json"
    return Response(data, status=status, headers=headers)


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


# ---------------------------------------------------------------------------- server


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without its access log (which would print query strings)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: Any) -> None:  # werkzeug's signature
        return None


class HttpApiServer:
    """A threaded werkzeug server on loopback for the template's HttpApi routes."""

    def __init__(
        self,
        invoke: Invoker,
        log: LogFunction,
        host: str = "127.0.0.1",
        port: int = 0,
        api_id: str = "devstack",
        account_id: str = "123456789012",
        control: ControlHandler | None = None,
        verifier: JwtVerifier | None = None,
    ) -> None:
        self.invoke = invoke
        self.log = log
        self.api_id = api_id
        self.account_id = account_id
        self.control = control
        self.verifier = verifier or JwtVerifier()
        self.routes: tuple[HttpRoute, ...] = ()
        self._server: BaseWSGIServer = make_server(
            host, port, self.wsgi_app, threaded=True, request_handler=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:3000."""
        host = self._server.server_address[0]
        return f"http://{host!s}:{self.port}"

    def set_routes(self, routes: Iterable[HttpRoute]) -> None:
        """Install the routes (known once the template is resolved against this URL)."""
        self.routes = tuple(routes)

    def start(self) -> HttpApiServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="devstack-httpapi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The WSGI entry point."""
        request = Request(environ)
        started = time.perf_counter()
        response = self.dispatch(request)
        elapsed = (time.perf_counter() - started) * 1000
        self.log(f"{loggable(request.method)} {loggable(request.path)} {response.status_code} {elapsed:.0f}ms")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request."""
        if request.path == DEVSTACK_PREFIX or request.path.startswith(DEVSTACK_PREFIX + "/"):
            handled = self.control(request) if self.control else None
            return handled if handled is not None else _json(404, {"message": "Not Found"})
        match = match_route(self.routes, request.method, request.path)
        if match is None:
            return _json(404, {"message": "Not Found"})
        route = match.route
        claims: dict[str, Any] | None = None
        if route.authorizer is not None:
            header = route.authorizer.identity_source.removeprefix("$request.header.")
            try:
                claims = self.verifier.verify(route.authorizer, request.headers.get(header))
            except Unauthorized as exc:
                self.log(f"authorizer refused {loggable(request.method)} {loggable(request.path)}: {exc}")
                return Response(
                    json.dumps({"message": "Unauthorized"}),
                    status=401,
                    content_type="application/json",
                    headers={"www-authenticate": "Bearer"},
                )
            if route.authorization_scopes and not set(token_scopes(claims) or []) & set(route.authorization_scopes):
                return _json(403, {"message": "Forbidden"})
        event = build_event(request, match, self.api_id, self.account_id, claims)
        result = self.invoke(route.function, event)
        if not result.ok:
            error = result.error or {}
            self.log(
                f"{route.function} failed on {route.route_key}: {error.get('errorType')}: {error.get('errorMessage')}"
            )
            return _json(500, {"message": "Internal Server Error"})
        try:
            response = to_response(result.payload)
        except BadIntegrationResponse as exc:
            self.log(f"{route.function} returned an invalid response on {route.route_key}: {exc}")
            return _json(500, {"message": "Internal Server Error"})
        response.headers["apigw-requestid"] = event["requestContext"]["requestId"]
        return response
