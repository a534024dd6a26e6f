"""The graph_webhook function's work: an API Gateway event in, a status code out.

Microsoft Graph calls two routes, both public: ``POST /webhooks/microsoft/calendar`` (change
notifications) and ``POST /webhooks/microsoft/lifecycle`` (lifecycle notifications). On both,
a subscription's creation first sends a validation request (``?validationToken=…``): the token
is echoed as plain text with 200 within Graph's 10 seconds. Otherwise each notification in
``value`` is authenticated by its subscription's ``clientState`` (stored hashed, compared in
constant time) and only a coalesced sync of its calendar is requested; unknown subscriptions
are acknowledged (Graph keeps sending briefly after a delete). A ``missed`` lifecycle event
requests the same coalesced sync (it catches up what was lost); ``reauthorizationRequired``
and ``subscriptionRemoved`` queue a sync of their own, after which the worker renews or
recreates the subscription (this function calls no provider).
"""

from __future__ import annotations

import logging
from typing import Any

# Every notification reads its channel and writes its calendar's mark: the low-level
# DynamoDB access (botocore) is loaded at cold start, as a module-level import would be, not
# on the first request; only the client (and its service model) is made then.
import crmsync.dal.notifications  # noqa: F401
from crmsync.app.outage import UNAVAILABLE, dependency_failed
from crmsync.app.wiring import core
from crmsync.providers.graph.notifications import GraphNotification, parse_notifications, validation_token
from crmsync.sync.notifications import on_notification

log = logging.getLogger(__name__)


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Every request gets an answer below 500: a malformed one is refused with a logged
    reason, and while the table or the queue fails, 503 (Graph retries the delivery; what it
    redelivers is coalesced). Bodies, tokens and client states are never logged."""
    if not isinstance(event, dict):
        log.warning("rejected graph webhook: not an API Gateway event")
        return {"statusCode": 400}
    token = validation_token(event.get("queryStringParameters"))
    if token is not None:
        if not token:
            log.warning("rejected graph validation request: malformed token")
            return {"statusCode": 400}
        log.info("graph subscription validation answered")
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
            "body": token,
        }
    parsed = parse_notifications(event.get("body"), bool(event.get("isBase64Encoded")))
    if isinstance(parsed, str):
        log.warning("rejected graph notification", extra={"outcome": parsed, "status": 400})
        return {"statusCode": 400}
    try:
        return _take(parsed)
    except Exception as exc:
        if not dependency_failed(exc):
            raise
        log.error("graph webhook unavailable: the table or the queue failed", extra={"error": type(exc).__name__})
        return dict(UNAVAILABLE)


def _take(parsed: list[GraphNotification]) -> dict[str, Any]:
    root = core()
    refused = 0
    for notification in parsed:
        status, outcome = on_notification(
            notification.channel,
            root.channel_store,
            root.sync_requests,
            root.queue,
            lifecycle=notification.lifecycle_event,
        )
        refused += status == 403
        level = logging.INFO if status < 400 else logging.WARNING
        log.log(
            level,
            "graph notification",
            extra={"outcome": outcome, "status": status, "lifecycle_event": notification.lifecycle_event},
        )
    # Graph wants 202 for what it delivered; a forged client state (not Graph) is refused,
    # after the authentic notifications of the same request were taken.
    return {"statusCode": 403 if refused else 202}
