"""Which calendars to sync: every conflict calendar and the linked calendar (their events
matter), and every calendar still mirrored that no longer matters (its sync retires it:
channel stopped, mirror forgotten). Used after a health check and after settings change."""

from __future__ import annotations

from typing import Any, Protocol

from crmsync.dal.calendars import CalendarStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import Principal
from crmsync.messaging.messages import CalendarSyncRequest


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class SyncPlanner:
    def __init__(self, *, settings: SettingsStore, calendars: CalendarStore, mirror: MirrorStore, queue: Queue) -> None:
        self._settings = settings
        self._calendars = calendars
        self._mirror = mirror
        self._queue = queue

    def enqueue(self, principal: Principal, connection_id: str | None, *, reason: str, occasion: str) -> int:
        """Queue a sync of each such calendar (of one connection, or all); how many."""
        pairs = {
            (c.connection_id, c.calendar_id) for c in self._calendars.of_user(principal, connection_id) if c.conflict
        }
        linked = self._settings.get(principal).linked
        if linked is not None and connection_id in (None, linked.connection_id):
            pairs.add((linked.connection_id, linked.calendar_id))
        pairs |= {(conn, cal) for conn, cal, _ in self._mirror.synced(principal, connection_id)}
        for conn, cal in sorted(pairs):
            self._queue.send(
                CalendarSyncRequest(
                    tenant_id=principal.tenant_id,
                    user_id=principal.user_id,
                    connection_id=conn,
                    calendar_id=cal,
                    reason=reason,
                    occasion=occasion,
                )
            )
        return len(pairs)
