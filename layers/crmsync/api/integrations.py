"""Routes of /v1/integrations (F1)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.binding import BINDING_COOKIE, binding_cookie, cookie_value
from crmsync.api.http import principal_of
from crmsync.api.openapi import ConnectionId, answer, no_content, responses
from crmsync.api.schemas import (
    AuthorizeRequest,
    AuthorizeResponse,
    IntegrationList,
    IntegrationOut,
    PasswordConnectRequest,
)
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.logic.integrations import Integrations

router = APIGatewayHttpRouter()


def integrations() -> Integrations:
    return graph().integrations


@router.get("/v1/integrations", responses=responses(200, IntegrationList))
def list_integrations() -> Response[IntegrationList]:
    principal = principal_of(router.current_event, get_settings())
    items = [IntegrationOut.of(c) for c in integrations().list_connections(principal)]
    return answer(200, IntegrationList(items=items, providers=list(integrations().providers)))


@router.post("/v1/integrations/google/authorize", responses=responses(200, AuthorizeResponse, body=True))
def authorize_google(body: Annotated[AuthorizeRequest | None, Body()] = None) -> Response[AuthorizeResponse]:
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    request = body or AuthorizeRequest()
    # Reconnecting the contacts account (its email as the hint) keeps asking for contacts.
    # Reconnecting the mail account keeps asking for Gmail's scopes.
    also = (
        (
            *graph().contacts_sync_settings.sign_in_features(principal, request.login_hint),
            *graph().mail_sync_settings.sign_in_features(principal, request.login_hint),
        )
        if not request.features
        else ()
    )
    start = integrations().start_connect(
        "google",
        principal,
        features=request.features,
        binding=cookie_value(router.current_event.cookies, BINDING_COOKIE),
        login_hint=request.login_hint,
        also=also,
    )
    payload = AuthorizeResponse(authorization_url=start.authorization_url, expires_at=start.expires_at)
    response = answer(200, payload)
    response.cookies.append(binding_cookie(settings, start.binding, settings.oauth_state_ttl_seconds))
    return response


@router.post("/v1/integrations/microsoft/authorize", responses=responses(200, AuthorizeResponse, body=True))
def authorize_microsoft(body: Annotated[AuthorizeRequest | None, Body()] = None) -> Response[AuthorizeResponse]:
    """Start "Sign in with Microsoft" (Outlook / Microsoft 365 calendars): the consent URL to
    open, and the browser-binding cookie. 400 where Microsoft is not offered."""
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    request = body or AuthorizeRequest()
    start = integrations().start_connect(
        "microsoft",
        principal,
        features=request.features,
        binding=cookie_value(router.current_event.cookies, BINDING_COOKIE),
        login_hint=request.login_hint,
    )
    payload = AuthorizeResponse(authorization_url=start.authorization_url, expires_at=start.expires_at)
    response = answer(200, payload)
    response.cookies.append(binding_cookie(settings, start.binding, settings.oauth_state_ttl_seconds))
    return response


@router.post("/v1/integrations/icloud", responses=responses(201, IntegrationOut, 502, body=True))
def connect_icloud(body: Annotated[PasswordConnectRequest, Body()]) -> Response[IntegrationOut]:
    """Connect iCloud calendars (or another CalDAV server's, with ``server_url``) with the Apple
    ID and an app-specific password. The server checks them first: a refusal is a 422
    ``credentials-refused`` problem that says why. Connecting the same account again updates
    it (201 again: the same ``id``)."""
    principal = principal_of(router.current_event, get_settings())
    connection = integrations().connect_with_password(
        "icloud",
        principal,
        username=body.username,
        password=body.password.get_secret_value(),
        server_url=body.server_url,
    )
    return answer(201, IntegrationOut.of(connection))


@router.delete("/v1/integrations/<connection_id>", responses=responses(204, None, 404, 502))
def delete_integration(connection_id: ConnectionId) -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    integrations().disconnect(principal, connection_id)
    return no_content()
