"""What the OpenAPI document says about every operation: success models, the problem
documents each can answer, and the path parameters' alphabets.

docs/openapi.json is generated from the routes (``make openapi``); a test fails when it is stale.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict

from crmsync.api.problems import PROBLEM_JSON


class Problem(BaseModel):
    """An RFC 9457 problem document. ``type`` is a ``urn:crmsync:problem:*`` URN (docs/API.md
    lists them) or ``about:blank``; some problems add members (``errors``, ``conflicts``…)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class GatewayMessage(BaseModel):
    """What API Gateway answers itself (no token, a bad token): ``{"message": "Unauthorized"}``."""

    message: str


#: Why each status can happen (the OpenAPI description of the response).
WHY = {
    400: "The body is not valid UTF-8 JSON, or is nested too deep (problem document).",
    401: "No valid bearer token (answered by API Gateway's JWT authorizer).",
    404: "No such resource for this user (problem document).",
    403: "The user may not do this, e.g. a tenant setting without the admin claim (problem document).",
    409: "Conflicts with the current state, e.g. a busy time or an Idempotency-Key still in use (problem document).",
    413: "The body is larger than 128 KiB (problem document).",
    415: "The body is not sent as application/json (problem document).",
    422: "The request is well-formed but not valid; `errors` lists each field (problem document).",
    502: "Google answered with an error (problem document).",
    503: "A store the request needs is unreachable; retry after `Retry-After` seconds (problem document).",
}


def responses(status: int, model: type[BaseModel] | None, *errors: int, body: bool = False) -> dict[int, Any]:
    """The responses of one operation: ``status`` with ``model`` (``None``: no content), 401
    and 422 always, the body errors (400, 413, 415) when it takes a body, and ``errors``."""
    documented: dict[int, Any] = {
        status: {"description": "Success."}
        if model is None
        else {"description": "Success.", "content": {"application/json": {"model": model}}}
    }
    codes = {401, 422, *errors, *((400, 413, 415) if body else ())}
    for code in sorted(codes):
        content = GatewayMessage if code == 401 else Problem
        media = "application/json" if code == 401 else PROBLEM_JSON
        documented[code] = {"description": WHY[code], "content": {media: {"model": content}}}
    return documented


def answer(status: int, model: BaseModel) -> Response[Any]:
    """A JSON answer that no cache keeps (every /v1 answer is per user); the model is
    validated against the route's declared return type and serialised by the resolver."""
    return Response(
        status_code=status, content_type="application/json", body=model, headers={"Cache-Control": "no-store"}
    )


def no_content() -> Response[None]:
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


#: Ids the API mints: letters, digits, ``_`` and ``-``. Anything else cannot name a resource,
#: so it is refused (422) before it reaches a key.
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
AppointmentId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
ConnectionId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
ContactId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
MessageKey = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
#: An email address in a path, percent-encoded as needed (at most 254 characters decoded).
EmailInPath = Annotated[str, Path(min_length=3, max_length=762, pattern=r"^[^\s/]+$")]
#: A never-log entry (an address or a domain) in a path, percent-encoded as needed.
NeverLogEntryInPath = Annotated[str, Path(min_length=1, max_length=960, pattern=r"^[^\s/]+$")]
