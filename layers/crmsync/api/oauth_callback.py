"""GET /oauth/{provider}/callback: the end of the consent, always back to the settings page.

Every outcome (Google's and Microsoft's alike) is a redirect (303) to the integrations page
(or, for a sign-in the Email page started, that page) with either ``connected=<id>`` or
``error=<reason>``; the page turns the reason into words. Nothing secret or user-controlled is reflected.

The function serves this one route, which API Gateway routes to it alone: the event is read
as it comes (payload format 2.0) and the answer given as a result dict, without powertools'
HTTP resolver, whose import was about a third of this function's cold start
(docs/PERFORMANCE.md). What the resolver added here: an unexpected error is the same 500
problem document (never internals), logged.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from crmsync.api.binding import BINDING_COOKIE, cookie_value
from crmsync.api.problems import problem_result
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.errors import AuthorizationDenied, CrmSyncError, OAuthStateError, ProviderError, ScopeNotGranted
from crmsync.logic.integrations import Integrations

log = logging.getLogger(__name__)


def integrations() -> Integrations:
    """The connect use case, which every callback runs (its module is imported with this one,
    at cold start; the integrations routes' schemas are not: crmsync.api.binding)."""
    return graph().integrations


#: Sign-ins started from another settings page return there (the rest: Integrations).
RETURN_PAGES = {"mail_sync": "email"}


def _redirect(intent: str | None = None, **params: str) -> dict[str, Any]:
    page = get_settings().settings_page_url
    if intent in RETURN_PAGES:
        page = page.rsplit("/", 1)[0] + "/" + RETURN_PAGES[intent]
    location = f"{page}?{urlencode(params)}"
    return {
        "statusCode": 303,
        "body": None,
        "isBase64Encoded": False,
        "headers": {
            "Location": location,
            "Cache-Control": "no-store",
            # The callback URL carries the code: never leak it as a referrer.
            "Referrer-Policy": "no-referrer",
        },
        "cookies": [],
    }


def outcome_reason(exc: CrmSyncError) -> str:
    if isinstance(exc, OAuthStateError):
        return exc.reason
    if isinstance(exc, AuthorizationDenied):
        if exc.error == "consent_required":
            return "admin_consent_required"
        return "access_denied" if exc.error == "access_denied" else "provider_error"
    if isinstance(exc, ProviderError):
        return "exchange_failed"
    if isinstance(exc, ScopeNotGranted):
        return f"{exc.feature}_scope_missing"
    return "connect_failed"


#: Microsoft's AADSTS numbers that mean "an administrator must approve this app first":
#: 65001 (not consented) and 90094 (the grant requires admin permission), reference-error-codes.
ADMIN_CONSENT_CODES = ("AADSTS65001", "AADSTS90094")


def provider_error(params: dict[str, str]) -> str | None:
    """The ``error`` of the provider's answer; Microsoft's refusals that need an administrator
    (``consent_required``, or any error whose description starts with AADSTS65001/90094) are
    all ``consent_required``, so the page can say who must act."""
    error = params.get("error")
    if not error:
        return None
    description = params.get("error_description") or ""
    if error == "consent_required" or description.startswith(ADMIN_CONSENT_CODES):
        return "consent_required"
    return error


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """``GET /oauth/{provider}/callback``: always a redirect, but for an unexpected failure
    (a 500 problem document, as every function of the API answers one)."""
    try:
        return callback(event)
    except Exception:
        log.exception("unhandled error")
        return problem_result(500, "The request failed on our side. Try again; if it keeps failing, contact support.")


def _strings(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def callback(event: dict[str, Any]) -> dict[str, Any]:
    provider = _strings(event.get("pathParameters")).get("provider", "")
    if provider not in integrations().providers:
        return _redirect(error="unsupported_provider")
    params = _strings(event.get("queryStringParameters"))
    cookies = event.get("cookies")
    try:
        outcome = integrations().finish_connect(
            provider,
            state=params.get("state"),
            code=params.get("code"),
            error=provider_error(params),
            binding=cookie_value([str(c) for c in cookies] if isinstance(cookies, list) else None, BINDING_COOKIE),
        )
    except CrmSyncError as exc:
        reason = outcome_reason(exc)
        log.warning("oauth callback refused", extra={"reason": reason, "detail": exc.detail})
        return _redirect(exc.intent, error=reason)
    connection = outcome.connection
    log.info("account connected", extra={"connection_id": connection.connection_id})
    return _redirect(outcome.intent, connected=connection.connection_id)
