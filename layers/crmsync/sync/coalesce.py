"""Coalescing push notifications (DESIGN.md "Coalescing notifications").

The webhook opens a sync request per calendar or joins the pending one
(:class:`crmsync.dal.sync_requests.SyncRequestStore`), so a burst queues one sync. Before that
sync lists the calendar, :func:`settle` waits while the burst goes on (notifications keep
arriving after the request), until it has been quiet for :data:`QUIET` — at most
:data:`MAX_WAIT` after the request — and then takes the mark: a notification from then on
opens one new request, the trailing sync. A lone notification is synced without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

# One definition, with the notifications that open requests (the webhooks import only those).
from crmsync.sync.notifications import REQUEST_LOST_AFTER as REQUEST_LOST_AFTER

if TYPE_CHECKING:
    from crmsync.dal.sync_requests import SyncRequestStore
    from crmsync.domain import Principal

#: A burst has ended when no notification arrived for this long.
QUIET = timedelta(seconds=3)
#: The longest a queued sync waits for a burst to end (then it runs, and the rest of the burst
#: makes one trailing sync). Every record of a batch waits until at most this long after its
#: request, all of which precede the batch: a batch waits at most this long in all, well
#: within the worker's 60 s timeout.
MAX_WAIT = timedelta(seconds=20)


def settle(
    marks: SyncRequestStore,
    principal: Principal,
    connection_id: str,
    calendar_id: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    pause: Callable[[float], None] = time.sleep,
) -> float:
    """Wait for the calendar's burst of notifications to end, then take its mark (call right
    before listing the calendar's changes). Returns the seconds waited."""
    waited = 0.0
    while True:
        mark = marks.read(principal, connection_id, calendar_id)
        if not (mark.pending and mark.requested_at and mark.notified_at and mark.notified_at > mark.requested_at):
            break  # a lone notification, or nothing pending: sync now
        until = min(mark.notified_at + QUIET, mark.requested_at + MAX_WAIT)
        left = (until - clock()).total_seconds()
        if left <= 0:
            break
        pause(left)
        waited += left
    marks.take(principal, connection_id, calendar_id)
    return waited
