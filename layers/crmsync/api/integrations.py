"""Routes of /v1/integrations (F1)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from crmsync.api.http import json_response, principal_of
from crmsync.api.schemas import AuthorizeRequest, AuthorizeResponse, IntegrationList, IntegrationOut
from crmsync.config import Settings, get_settings
from crmsync.logic.integrations import Counter, Integrations
from crmsync.logic.wiring import build_integrations

BINDING_COOKIE = "crmsync_oauth"

router = APIGatewayHttpRouter()
_counter: list[Counter] = []


def use_counter(counter: Counter) -> None:
    """The function hands its metrics adapter to the routes."""
    _counter[:] = [counter]


@lru_cache(maxsize=1)
def integrations() -> Integrations:
    return build_integrations(get_settings(), counter=_counter[0] if _counter else None)


def cookie_value(cookies: list[str] | None, name: str) -> str | None:
    for cookie in cookies or ():
        key, _, value = cookie.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def binding_cookie(settings: Settings, value: str, max_age: int) -> Cookie:
    return Cookie(
        name=BINDING_COOKIE,
        value=value,
        path="/",
        secure=settings.cookie_secure,
        http_only=True,
        same_site=SameSite.LAX_MODE,
        max_age=max_age,
    )


@router.get("/v1/integrations")
def list_integrations() -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    items = [IntegrationOut.of(c) for c in integrations().list_connections(principal)]
    return json_response(200, IntegrationList(items=items).model_dump_json())


@router.post("/v1/integrations/google/authorize")
def authorize_google(body: Annotated[AuthorizeRequest | None, Body()] = None) -> Response[str]:
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    request = body or AuthorizeRequest()
    start = integrations().start_google_connect(
        principal,
        features=request.features,
        binding=cookie_value(router.current_event.cookies, BINDING_COOKIE),
        login_hint=request.login_hint,
    )
    payload = AuthorizeResponse(authorization_url=start.authorization_url, expires_at=start.expires_at)
    response = json_response(200, payload.model_dump_json())
    response.cookies.append(binding_cookie(settings, start.binding, settings.oauth_state_ttl_seconds))
    return response


@router.delete("/v1/integrations/<connection_id>")
def delete_integration(connection_id: str) -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    integrations().disconnect(principal, connection_id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
