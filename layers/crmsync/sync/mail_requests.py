"""Queues runs of the mail sync (F8) without importing its engine (the API's side)."""

from __future__ import annotations

from typing import Any, Protocol

from crmsync.domain import Principal
from crmsync.messaging.messages import MailSyncRequest

#: The coalescing mark of a mailbox (:class:`crmsync.dal.sync_requests.SyncRequestStore`
#: keys marks by connection and resource; a mailbox is one resource).
MAILBOX_RESOURCE = "mailbox"


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class MailSyncRequests:
    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def request(
        self, principal: Principal, connection_id: str, reason: str, occasion: str, emails: tuple[str, ...] = ()
    ) -> None:
        self._queue.send(
            MailSyncRequest(
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                reason=reason,
                occasion=occasion,
                emails=emails,
            )
        )
