"""The base of every emulated API: Google's edge in front of each implemented method."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from werkzeug.wrappers import Request, Response

from devstack.google.apis.discovery import Api, ApiError, Method, load, validate
from devstack.google.responses import json_response
from devstack.google.server import Route
from devstack.google.state import Account

if TYPE_CHECKING:
    from devstack.google.server import EmulatorContext

_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "FAILED_PRECONDITION",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error_response(error: ApiError, rpc_status: str | None = None) -> Response:
    """Google's JSON error body; ``googleapiclient.errors.HttpError`` reads status and reason
    from it (``error.errors[0].reason`` or ``error.details[].reason``)."""
    body: dict[str, Any] = {"code": error.status, "message": error.message}
    if error.reason:
        body["errors"] = [{"message": error.message, "domain": error.domain, "reason": error.reason}]
    body["status"] = rpc_status or error.rpc_status or _RPC_STATUS.get(error.status, "UNKNOWN")
    if error.details:
        body["details"] = error.details
    headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'} if error.status == 401 else None
    return json_response({"error": body}, error.status, headers)


@dataclass
class ApiCall:
    """One authenticated, validated request to an implemented method."""

    request: Request
    account: Account
    method: Method
    params: dict[str, Any]
    body: Any
    scopes: tuple[str, ...]

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


Implementation = Callable[[ApiCall], Any]
F = TypeVar("F", bound=Callable[..., Any])


def implements(method_id: str) -> Callable[[F], F]:
    """Mark a service method as the implementation of a discovery method id."""

    def mark(fn: F) -> F:
        fn.__google_method__ = method_id  # type: ignore[attr-defined]
        return fn

    return mark


class ApiService:
    """Subclasses set ``api_name``/``api_version`` and mark methods with :func:`implements`.

    Every implemented method gets, in order: authentication (a live access
    token; 401 otherwise), scope check (one of the method's discovery scopes; 403
    ``insufficientPermissions`` otherwise), injected faults, the API's own rate limits
    (:meth:`admit`), parameter validation against the discovery
    document (400), JSON body parsing (400 ``parseError``). The implementation returns a
    JSON-able value (200), ``None`` (204, empty) or a ready :class:`Response`.
    """

    api_name = ""
    api_version = ""

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.api: Api = load(self.api_name, self.api_version)

    @property
    def state(self) -> Any:
        return self.ctx.state

    def implementations(self) -> dict[str, Implementation]:
        found: dict[str, Implementation] = {}
        for name in dir(type(self)):
            fn = getattr(self, name)
            method_id = getattr(fn, "__google_method__", None)
            if method_id:
                if method_id not in self.api.methods:
                    raise ValueError(f"{method_id} is not in {self.api_name}.{self.api_version}'s discovery document")
                found[method_id] = fn
        return found

    def routes(self) -> list[Route]:
        routes: list[Route] = []
        for method_id, fn in self.implementations().items():
            method = self.api.methods[method_id]
            handler = self._wrap(method, fn)
            routes.append(Route(self.api.rule(method), (method.http_method,), handler))
            if method.media_upload_path:
                upload_rule = "/" + method.media_upload_path.lstrip("/")
                routes.append(Route(_to_rule(upload_rule), (method.http_method,), handler))
        return routes

    def _wrap(self, method: Method, fn: Implementation) -> Callable[..., Response]:
        def handle(request: Request, **path_values: str) -> Response:
            try:
                account, scopes = self.authenticate(request, method)
                calls = getattr(self.ctx, "calls", None)
                if calls is not None:
                    calls.record(method.id, account.email, path_values)
                faults = getattr(self.ctx, "faults", None)
                if faults is not None:
                    faults.apply(method.id, account.email)
                self.admit(method, account)
                query = {k: request.args.getlist(k) for k in request.args}
                params = validate(method, path_values, query)
                body = self._body(request, method)
                result = fn(ApiCall(request, account, method, params, body, scopes))
            except ApiError as error:
                return error_response(error)
            if isinstance(result, Response):
                return result
            if result is None:
                return Response(status=204)
            return json_response(result)

        return handle

    def admit(self, method: Method, account: Account) -> None:
        """Raise an :class:`ApiError` to refuse an authenticated call before it is served
        (an API's own rate limits); every call is admitted unless a subclass says otherwise."""

    def authenticate(self, request: Request, method: Method) -> tuple[Account, tuple[str, ...]]:
        header = request.headers.get("Authorization", "")
        value = header[7:].strip() if header[:7].lower() == "bearer " else request.args.get("access_token", "")
        token = self.state.live_access_token(value) if value else None
        if token is None:
            raise ApiError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential.",
                "authError",
            )
        if method.scopes and not set(method.scopes) & set(token.scopes):
            raise ApiError(403, "Request had insufficient authentication scopes.", "insufficientPermissions")
        return self.state.account_by_sub(token.sub), tuple(token.scopes)

    @staticmethod
    def _body(request: Request, method: Method) -> Any:
        if not method.has_body:
            return None
        data = request.get_data()
        if not data:
            return {}
        if request.mimetype not in ("application/json", "") and not method.media_upload_path:
            raise ApiError(400, "Invalid content type.", "badContent")
        if request.mimetype == "message/rfc822":
            return {"raw_bytes": data}
        try:
            return json.loads(data)
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.", "parseError") from None


def _to_rule(path: str) -> str:
    import re

    return re.sub(r"\{\+?([A-Za-z0-9_]+)\}", r"<\1>", path)
