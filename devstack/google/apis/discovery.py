"""The discovery documents that ship inside google-api-python-client: the emulator's
definition of what a valid request is."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"

#: Parameters every Google API method accepts (the discovery document's top-level ``parameters``
#: plus what the client library sends on its own).
STANDARD_PARAMETERS = frozenset(
    {
        "alt",
        "fields",
        "key",
        "oauth_token",
        "access_token",
        "prettyPrint",
        "quotaUser",
        "userIp",
        "upload_protocol",
        "uploadType",
        "callback",
        "$.xgafv",
    }
)


class ApiError(Exception):
    """An error answer in Google's shape: ``{"error": {"code", "message", "errors", "status"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str | None = None,
        *,
        details: list[Any] | None = None,
        rpc_status: str | None = None,
        domain: str = "global",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        #: ``errors[].domain``: "global" for most, "usageLimits" for rate limits and quotas.
        self.domain = domain
        self.details = details or []
        #: google.rpc.Code name when it is not the usual one for the HTTP status
        #: (e.g. FAILED_PRECONDITION on a 400).
        self.rpc_status = rpc_status


@dataclass(frozen=True)
class Method:
    """One method of a discovery document."""

    id: str
    http_method: str
    path: str  # relative to the service path, with {var} placeholders (flatPath when given)
    parameters: dict[str, dict[str, Any]]
    scopes: tuple[str, ...]
    has_body: bool
    media_upload_path: str | None = None
    parameter_order: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Api:
    name: str
    version: str
    service_path: str  # e.g. "calendar/v3/" or ""
    batch_path: str | None
    methods: dict[str, Method]

    def rule(self, method: Method) -> str:
        """The werkzeug rule for a method: ``/calendar/v3/calendars/<calendarId>/events``."""
        path = "/" + self.service_path + method.path
        return re.sub(r"\{\+?([A-Za-z0-9_]+)\}", lambda m: f"<{_converter(method, m.group(1))}{m.group(1)}>", path)


def _converter(method: Method, name: str) -> str:
    pattern = method.parameters.get(name, {}).get("pattern", "")
    # A path parameter whose pattern allows slashes (e.g. People's resourceName) needs <path:>.
    return "path:" if "/" in pattern or name == "resourceName" else ""


@lru_cache(maxsize=8)
def load(name: str, version: str) -> Api:
    doc = json.loads((DOCUMENTS / f"{name}.{version}.json").read_text())
    methods: dict[str, Method] = {}

    def walk(resource: dict[str, Any]) -> None:
        for spec in resource.get("methods", {}).values():
            upload = spec.get("mediaUpload", {}).get("protocols", {}).get("simple", {}).get("path")
            methods[spec["id"]] = Method(
                id=spec["id"],
                http_method=spec["httpMethod"],
                path=spec.get("flatPath", spec["path"]),
                parameters=spec.get("parameters", {}),
                scopes=tuple(spec.get("scopes", ())),
                has_body="request" in spec,
                media_upload_path=upload,
                parameter_order=tuple(spec.get("parameterOrder", ())),
            )
        for child in resource.get("resources", {}).values():
            walk(child)

    walk(doc)
    return Api(name, version, doc.get("servicePath", ""), doc.get("batchPath"), methods)


def _bad(message: str, reason: str = "invalid") -> ApiError:
    return ApiError(400, message, reason)


def _coerce(name: str, spec: dict[str, Any], raw: str) -> Any:
    kind = spec.get("type", "string")
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise _bad(f"Invalid value for {name}: {raw!r} (expected true or false).", "invalidParameter")
        return raw == "true"
    if kind == "integer":
        try:
            value = int(raw)
        except ValueError:
            raise _bad(f"Invalid value for {name}: {raw!r} (expected an integer).", "invalidParameter") from None
        low, high = spec.get("minimum"), spec.get("maximum")
        if low is not None and value < int(low):
            raise _bad(f"Invalid value for {name}: {value} (must be at least {low}).", "invalidParameter")
        if high is not None and value > int(high):
            raise _bad(f"Invalid value for {name}: {value} (must be at most {high}).", "invalidParameter")
        return value
    enum = spec.get("enum")
    if enum and raw not in enum:
        raise _bad(f"Invalid value for {name}: {raw!r}.", "invalidParameter")
    return raw


def validate(method: Method, path_values: dict[str, str], query: dict[str, list[str]]) -> dict[str, Any]:
    """Check a request against the method's parameters the way Google's front end does.

    Returns the typed parameters (path + query); repeated parameters are lists.
    Raises :class:`ApiError` 400 for unknown, duplicated, mistyped or missing parameters.
    """
    params: dict[str, Any] = {}
    for name, value in path_values.items():
        params[name] = value
    for name, values in query.items():
        if name in STANDARD_PARAMETERS:
            continue
        spec = method.parameters.get(name)
        if spec is None or spec.get("location") == "path":
            raise _bad(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter.', "badRequest"
            )
        if len(values) > 1 and not spec.get("repeated"):
            raise _bad(f"Parameter {name} given more than once.", "invalidParameter")
        coerced = [_coerce(name, spec, v) for v in values]
        params[name] = coerced if spec.get("repeated") else coerced[0]
    for name, spec in method.parameters.items():
        if spec.get("required") and name not in params:
            raise ApiError(400, f"Required parameter: {name}", "required")
    return params
