"""The google_webhook function's work: an API Gateway event in, a status code out."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from crmsync.config import get_settings
from crmsync.dal.channels import ChannelStore
from crmsync.dal.sync_requests import SyncRequestStore
from crmsync.messaging.queue import SyncQueue
from crmsync.models import bind_tables
from crmsync.sync.channels import on_notification

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _wiring() -> tuple[ChannelStore, SyncRequestStore, SyncQueue]:
    settings = get_settings()
    bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)
    return ChannelStore(), SyncRequestStore(), SyncQueue(settings.sync_queue_url)


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Every header value gets an answer below 500: a malformed one is refused with a logged
    reason (header values are never logged: they may be anything, the token among them)."""
    headers = event.get("headers") if isinstance(event, dict) else None
    if not isinstance(headers, dict):
        log.warning("rejected webhook: no headers")
        return {"statusCode": 400}
    store, marks, queue = _wiring()
    status, outcome = on_notification({str(k): str(v) for k, v in headers.items()}, store, marks, queue)
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(level, "calendar notification", extra={"outcome": outcome, "status": status})
    return {"statusCode": status}
