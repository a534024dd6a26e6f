"""Shared pieces of the HTTP handlers: the principal from the JWT, error handlers."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from crmsync.api.problems import PROBLEM_JSON, Answered, from_error, problem
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.errors import CrmSyncError, Forbidden

log = logging.getLogger(__name__)


class Unauthenticated(CrmSyncError):
    slug = "unauthenticated"


def principal_of(event: APIGatewayProxyEventV2, settings: Settings) -> Principal:
    """The tenant and user named by the authorizer's verified JWT claims."""
    claims = event.request_context.authorizer.jwt_claim or {}
    tenant = claims.get(settings.jwt_tenant_claim)
    user = claims.get(settings.jwt_user_claim)
    try:
        return Principal(str(tenant), str(user)) if tenant and user else _missing()
    except ValueError:
        raise Unauthenticated("The token's tenant or user claim is not a valid id.") from None


def admin_of(event: APIGatewayProxyEventV2, settings: Settings) -> None:
    """Refuse (403) unless the verified JWT makes the user an admin of their tenant."""
    claims = event.request_context.authorizer.jwt_claim or {}
    if str(claims.get(settings.jwt_admin_claim, "")).lower() != "true":
        raise Forbidden(f"Only an admin of the tenant may change this (the token's {settings.jwt_admin_claim} claim).")


def _missing() -> Principal:
    raise Unauthenticated("The token names no tenant or no user.")


#: Bodies the API reads are small JSON documents; API Gateway itself would take 10 MB.
MAX_BODY_BYTES = 128 * 1024
#: The deepest JSON any request schema has is 3; this leaves room and stops recursion bombs.
MAX_JSON_DEPTH = 32
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def screen_request(event: dict[str, Any]) -> Response | None:
    refused = _screen(event)
    if refused is not None:
        log.info(
            "refused a request body",
            extra={"status": refused.status_code, "reason": json.loads(str(refused.body)).get("type")},
        )
    return refused


def _screen(event: dict[str, Any]) -> Response | None:
    """Refuse, before routing and validation, a body the API could not read safely: not JSON
    (415), too large (413), not UTF-8, not JSON, nested too deep or holding a lone surrogate
    (400). A base64-encoded body that passes is handed on decoded. ``None``: go on."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method") or "").upper()
    body = event.get("body")
    if method not in _BODY_METHODS or not body:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media, _, parameters = headers.get("content-type", "").partition(";")
    media = media.strip().lower()
    charset = next(
        (
            v.strip().strip('"').lower()
            for k, _, v in (p.partition("=") for p in parameters.split(";"))
            if k.strip() == "charset"
        ),
        "utf-8",
    )
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))) or (
        charset not in ("utf-8", "utf8")
    ):
        return problem(
            415,
            "Send the body as JSON, with Content-Type: application/json (UTF-8).",
            slug="unsupported-media-type",
        )
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(str(body), validate=True)
        except (binascii.Error, ValueError):
            return problem(400, "The body is not valid base64.", slug="malformed-body")
    else:
        raw = str(body).encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        return problem(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.", slug="body-too-large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return problem(400, "The body is not valid UTF-8.", slug="malformed-body")
    try:
        document = json.loads(text)
    except RecursionError:
        return _too_deep()
    except ValueError as exc:
        return problem(400, f"The body is not valid JSON: {exc}.", slug="malformed-body")
    if not isinstance(document, dict):
        # Every request body of this API is an object (powertools would read a list's first item).
        return problem(422, "The body must be a JSON object.", slug="validation")
    refusal = _check_json(document)
    if refusal is not None:
        return refusal
    if event.get("isBase64Encoded"):
        event["body"], event["isBase64Encoded"] = text, False
    return None


def _too_deep() -> Response:
    return problem(400, f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.", slug="malformed-body")


def _check_json(document: Any) -> Response | None:
    """Depth bound, and every string (keys too) encodable as UTF-8: JSON's ``\\ud800``
    escapes can smuggle a lone surrogate that no store or provider accepts."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return _too_deep()
            children = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
            for key, child in children:
                if key is not None:
                    pending.append((key, depth))
                pending.append((child, depth + 1))
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return problem(400, "The body holds a lone UTF-16 surrogate (\\uD800–\\uDFFF).", slug="malformed-body")
    return None


def gateway_response(response: Response) -> dict[str, Any]:
    """A Response as API Gateway's payload format 2.0 result (for answers given before the
    resolver runs)."""
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": response.content_type or PROBLEM_JSON, **response.headers},
        "body": response.body,
        "isBase64Encoded": False,
    }


def refuse_unknown_query_parameters(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """A query parameter a /v1 route does not take is refused (422), not ignored: ``?limt=5``
    silently answering 50 items would hide the client's mistake. (The settings pages' queries,
    e.g. ``?connected=…`` after the OAuth redirect, are read by their scripts.)"""
    route = app.context.get("_route")
    given = set((app.current_event.query_string_parameters or {}).keys())
    if route is not None and given and app.current_event.path.startswith("/v1/"):  # pages read theirs in JS
        known = {p.alias for p in route.dependant.query_params}
        unknown = sorted(given - known)
        if unknown:
            names = ", ".join(repr(n) for n in unknown)
            return problem(
                422,
                f"Unknown query parameter {names}."
                + (f" This operation takes {', '.join(sorted(known))}." if known else ""),
                slug="validation",
                extra={"errors": [{"location": f"query.{n}", "message": "unknown parameter"} for n in unknown]},
            )
    return next_middleware(app)


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Domain errors → problem documents; validation errors → 422; the rest → 500 without
    internals."""

    @app.exception_handler(Answered)
    def _answered(exc: Answered) -> Response:
        return exc.response

    @app.exception_handler(Unauthenticated)
    def _unauthenticated(exc: Unauthenticated) -> Response:
        return problem(401, exc.detail, slug=exc.slug, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(CrmSyncError)
    def _domain(exc: CrmSyncError) -> Response:
        return from_error(exc)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        return problem(
            422,
            "The request is not valid: " + "; ".join(f"{e['location']}: {e['message']}" for e in errors),
            slug="validation",
            extra={"errors": errors},
        )

    @app.not_found
    def _not_found(_: Exception) -> Response:
        return problem(404, "No such resource.")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "The request failed on our side. Try again; if it keeps failing, contact support.")
