"""The "sync requested" mark of each calendar (DESIGN.md "Coalescing notifications").

A push notification either opens a request (the mark goes from idle to pending: the caller
queues one sync) or joins the pending one (nothing is queued). The worker takes the mark
(pending → idle) right before it lists the calendar's changes, so a notification that
arrives from then on opens exactly one new request: the trailing sync. Conditional writes
make the transitions atomic however many webhooks run at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, UpdateError

from crmsync.dal import condition_failed
from crmsync.domain import Principal
from crmsync.models.keys import user_pk
from crmsync.models.sync import SyncRequestItem, sync_request_sk


@dataclass(frozen=True)
class SyncRequest:
    pending: bool
    requested_at: datetime | None
    notified_at: datetime | None


def _item(principal: Principal, connection_id: str, calendar_id: str) -> SyncRequestItem:
    return SyncRequestItem(user_pk(principal.tenant_id, principal.user_id), sync_request_sk(connection_id, calendar_id))


class SyncRequestStore:
    def note(
        self, principal: Principal, connection_id: str, calendar_id: str, now: datetime, stale_before: datetime
    ) -> bool:
        """Record a notification at ``now``. True when it opened a request (the caller queues
        a sync), False when a pending request covers it. A request pending since before
        ``stale_before`` counts as lost (its message was never sent or never ran)."""
        joined = (SyncRequestItem.pending == True) & (SyncRequestItem.requested_at >= stale_before)  # noqa: E712
        try:
            _item(principal, connection_id, calendar_id).update(
                actions=[SyncRequestItem.notified_at.set(now)], condition=joined
            )
            return False
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
        try:
            _item(principal, connection_id, calendar_id).update(
                actions=[
                    SyncRequestItem.pending.set(True),
                    SyncRequestItem.requested_at.set(now),
                    SyncRequestItem.notified_at.set(now),
                ],
                condition=~joined,
            )
            return True
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            return False  # another notification opened it in between

    def withdraw(self, principal: Principal, connection_id: str, calendar_id: str, requested_at: datetime) -> None:
        """Undo the request opened at ``requested_at`` whose sync could not be queued (only if
        it is still pending: a worker may have taken it meanwhile)."""
        try:
            _item(principal, connection_id, calendar_id).update(
                actions=[SyncRequestItem.pending.set(False)],
                condition=(SyncRequestItem.pending == True) & (SyncRequestItem.requested_at == requested_at),  # noqa: E712
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise

    def read(self, principal: Principal, connection_id: str, calendar_id: str) -> SyncRequest:
        try:
            item = SyncRequestItem.get(
                user_pk(principal.tenant_id, principal.user_id),
                sync_request_sk(connection_id, calendar_id),
                consistent_read=True,
            )
        except DoesNotExist:
            return SyncRequest(False, None, None)
        return SyncRequest(bool(item.pending), item.requested_at, item.notified_at)

    def take(self, principal: Principal, connection_id: str, calendar_id: str) -> bool:
        """A sync is about to list the calendar: every notification so far is covered by it.
        False if nothing was pending."""
        try:
            _item(principal, connection_id, calendar_id).update(
                actions=[SyncRequestItem.pending.set(False)],
                condition=SyncRequestItem.pending == True,  # noqa: E712
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            return False
        return True

    def forget(self, principal: Principal, connection_id: str, calendar_id: str) -> None:
        _item(principal, connection_id, calendar_id).delete()
