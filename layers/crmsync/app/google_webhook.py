"""The google_webhook function's work: an API Gateway event in, a status code out.

One function takes Google's pushes, told apart by route: Calendar channel notifications
(``POST /webhooks/google/calendar``) and Gmail's Pub/Sub pushes (``POST /webhooks/google/gmail``).
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
from crmsync.providers.google.push import parse_notification
from crmsync.sync.notifications import on_notification

log = logging.getLogger(__name__)

GMAIL_PATH = "/webhooks/google/gmail"


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Every request gets an answer below 500: a malformed one is refused with a logged reason,
    and while the table or the queue fails, 503 (Google retries). Header values and bodies are
    never logged: they may be anything, a channel token or a bearer token among them."""
    if not isinstance(event, dict):
        log.warning("rejected webhook: not an API Gateway event")
        return {"statusCode": 400}
    route = event.get("routeKey") or ""
    path = route.partition(" ")[2] if route else event.get("rawPath")
    try:
        return handle_gmail(event) if path == GMAIL_PATH else handle_calendar(event)
    except Exception as exc:
        if not dependency_failed(exc):
            raise
        log.error("webhook unavailable: the table or the queue failed", extra={"error": type(exc).__name__})
        return dict(UNAVAILABLE)


def handle_calendar(event: dict[str, Any]) -> dict[str, Any]:
    headers = event.get("headers")
    if not isinstance(headers, dict):
        log.warning("rejected webhook: no headers")
        return {"statusCode": 400}
    parsed = parse_notification({str(k): str(v) for k, v in headers.items()})
    if isinstance(parsed, str):
        status, outcome = 400, parsed
    else:
        root = core()
        status, outcome = on_notification(parsed, root.channel_store, root.sync_requests, root.queue)
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(level, "calendar notification", extra={"outcome": outcome, "status": status})
    return {"statusCode": status}


def handle_gmail(event: dict[str, Any]) -> dict[str, Any]:
    """Authenticate the push's OIDC token, read the envelope, request a coalesced sync of each
    user's copy of the mailbox; 200 for a mailbox nobody syncs (Pub/Sub retries anything else).
    What only this route needs (google-auth's token check, PynamoDB's mailbox lookup, the
    pydantic message) is imported on the first Gmail push, not at cold start."""
    from crmsync.sync.mail_requests import on_mailbox_notification

    root = core()
    headers = event.get("headers")
    authorization = None
    if isinstance(headers, dict):
        authorization = next((str(v) for k, v in headers.items() if str(k).lower() == "authorization"), None)
    refusal = root.gmail_push.authenticate(authorization)
    message_id = None
    if refusal is not None:
        status, outcome = refusal.status, refusal.reason
    else:
        parsed = root.gmail_push.read(event.get("body"), bool(event.get("isBase64Encoded")))
        if isinstance(parsed, str):
            status, outcome = 400, parsed
        else:
            message_id = parsed.message_id
            status, outcome = on_mailbox_notification(parsed, root.mailbox_directory, root.sync_requests, root.queue)
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(level, "gmail push", extra={"outcome": outcome, "status": status, "message_id": message_id})
    return {"statusCode": status}
