"""Shared pieces of the HTTP handlers: the principal from the JWT, error handlers."""

from __future__ import annotations

import logging

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from crmsync.api.problems import from_error, problem
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.errors import CrmSyncError

log = logging.getLogger(__name__)


class Unauthenticated(CrmSyncError):
    slug = "unauthenticated"


def json_response(status: int, body: str) -> Response[str]:
    """A JSON answer that no cache keeps (every /v1 answer is per user)."""
    return Response(
        status_code=status, content_type="application/json", body=body, headers={"Cache-Control": "no-store"}
    )


def principal_of(event: APIGatewayProxyEventV2, settings: Settings) -> Principal:
    """The tenant and user named by the authorizer's verified JWT claims."""
    claims = event.request_context.authorizer.jwt_claim or {}
    tenant = claims.get(settings.jwt_tenant_claim)
    user = claims.get(settings.jwt_user_claim)
    try:
        return Principal(str(tenant), str(user)) if tenant and user else _missing()
    except ValueError:
        raise Unauthenticated("The token's tenant or user claim is not a valid id.") from None


def _missing() -> Principal:
    raise Unauthenticated("The token names no tenant or no user.")


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Domain errors → problem documents; validation errors → 422; the rest → 500 without
    internals."""

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
