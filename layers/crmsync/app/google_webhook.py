"""The google_webhook function's work: an API Gateway event in, a status code out."""

from __future__ import annotations

import logging
from typing import Any

from crmsync.app.wiring import core
from crmsync.providers.google.push import parse_notification
from crmsync.sync.channels import on_notification

log = logging.getLogger(__name__)


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Every header value gets an answer below 500: a malformed one is refused with a logged
    reason (header values are never logged: they may be anything, the token among them)."""
    headers = event.get("headers") if isinstance(event, dict) else None
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
