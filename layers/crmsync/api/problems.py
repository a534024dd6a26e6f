"""RFC 9457 problem documents, and the mapping from domain errors to them.

This is the only module that decides an HTTP status for a domain error.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from crmsync import errors

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

PROBLEM_JSON = "application/problem+json"

#: Domain error class → HTTP status. The most specific class wins (checked in MRO order).
STATUS_BY_ERROR: dict[type[errors.CrmSyncError], int] = {
    errors.NotFound: 404,
    errors.InvalidRequest: 400,
    errors.Forbidden: 403,
    errors.Unprocessable: 422,
    errors.Conflict: 409,
    errors.OAuthStateError: 400,
    errors.AuthorizationDenied: 400,
    errors.ReauthorizationRequired: 409,
    errors.ProviderError: 502,
}


def problem_type(slug: str) -> str:
    """Problem type URIs: a URN per documented problem (docs/API.md lists them)."""
    return f"urn:crmsync:problem:{slug}"


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    # Imported here: the OAuth callback answers its rare problem without powertools' resolver
    # (problem_result), and this module must not load it for that function's cold start.
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps(problem_document(status, detail, slug=slug, title=title, extra=extra)),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def problem_document(
    status: int, detail: str, *, slug: str | None = None, title: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The RFC 9457 document :func:`problem` answers."""
    body: dict[str, Any] = {
        "type": problem_type(slug) if slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    return body


def problem_result(status: int, detail: str, *, slug: str | None = None) -> dict[str, Any]:
    """:func:`problem` as API Gateway's payload format 2.0 result, for a function that answers
    without powertools' resolver (the OAuth callback)."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_JSON, "Cache-Control": "no-store"},
        "body": json.dumps(problem_document(status, detail, slug=slug)),
        "isBase64Encoded": False,
    }


class Answered(Exception):
    """Raised with a ready answer (a problem document with its own headers) from inside a
    route: returned from the route it would be validated against the route's success model."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def status_for(exc: errors.CrmSyncError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def from_error(exc: errors.CrmSyncError) -> Response:
    status = status_for(exc)
    return problem(status, exc.detail, slug=exc.slug, extra=exc.extra() or None)
