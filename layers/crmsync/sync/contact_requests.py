"""Asking for contacts syncs (F10): People has no push, so the user's contacts account is
synced every 15 minutes (the scheduler, spread over the period), when the CRM front end reports a login, on demand,
and when contacts sync is turned on: each is one :class:`ContactSyncRequest` on the queue, in
the user's FIFO group (syncs of one user never run in parallel)."""

from __future__ import annotations

import logging
from typing import Protocol

from crmsync.dal.contacts_sync import ContactsSyncStore
from crmsync.domain import Principal
from crmsync.messaging.messages import ContactSyncRequest

log = logging.getLogger(__name__)


class _Queue(Protocol):
    def send(self, message: ContactSyncRequest) -> None: ...


class ContactSyncRequests:
    def __init__(self, *, settings: ContactsSyncStore, queue: _Queue) -> None:
        self._settings = settings
        self._queue = queue

    def request(self, principal: Principal, *, reason: str, occasion: str) -> bool:
        """Enqueue a sync of the user's contacts account; False when contacts sync is off.
        Requests with the same ``occasion`` within SQS's 5-minute window are one."""
        connection_id = self._settings.get(principal).connection_id
        if connection_id is None:
            return False
        self._queue.send(
            ContactSyncRequest(
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                reason=reason,
                occasion=occasion,
            )
        )
        return True

    def enqueue_all(self, occasion: str, due: str | None = None) -> int:
        """A scheduled sync for every user with contacts sync on in the slot ``due``
        (:mod:`crmsync.domain.sweeps`; None: every user); returns how many were sent.
        A send that fails is logged and the sweep goes on (the next one retries it)."""
        sent = 0
        users = self._settings.enabled() if due is None else self._settings.due(due)
        for principal, connection_id in users:
            try:
                self._queue.send(
                    ContactSyncRequest(
                        tenant_id=principal.tenant_id,
                        user_id=principal.user_id,
                        connection_id=connection_id,
                        reason="scheduled",
                        occasion=occasion,
                    )
                )
            except Exception:
                log.exception("could not enqueue a scheduled contacts sync", extra={"connection_id": connection_id})
                continue
            sent += 1
        return sent
