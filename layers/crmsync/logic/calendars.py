"""F2: the calendars of every connected account."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from crmsync.dal.calendars import CalendarStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.guard import PendingDeletionsStore
from crmsync.dal.mirror import MirrorStore, calendar_resource
from crmsync.dal.settings import SettingsStore
from crmsync.domain import ConnectedCalendar, ConnectionStatus, Principal
from crmsync.errors import Conflict, NotFound
from crmsync.guard import Decision, PendingDeletions
from crmsync.messaging.messages import MANUAL_SYNC, CalendarSyncRequest
from crmsync.ports.calendar import CalendarAccess

log = logging.getLogger(__name__)


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class Planner(Protocol):
    def enqueue(self, principal: Principal, connection_id: str | None, *, reason: str, occasion: str) -> int: ...


#: The reason of the syncs the user asked for ("Sync now").


@dataclass(frozen=True)
class CalendarStatus:
    """A connected calendar with its account's status and how far its sync is."""

    calendar: ConnectedCalendar
    connection_status: ConnectionStatus
    #: ``synced`` (mirrored, kept current), ``pending`` (chosen, first sync not done yet),
    #: ``failing`` (its last sync failed: ``last_error``), ``off`` (neither a conflict nor
    #: the linked calendar: not synced).
    sync_state: str
    last_synced_at: datetime | None
    push_channel: bool
    #: Deletions a sync held back for the user's confirmation (the mass-deletion guard).
    pending_deletions: PendingDeletions | None = None
    #: Why its last sync failed, and when (``None`` once a sync succeeds again).
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: Events mirrored so far by its full (first) sync under way; ``None`` when none runs.
    events_so_far: int | None = None


class Calendars:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        calendars: CalendarStore,
        access: CalendarAccess,
        mirror: MirrorStore | None = None,
        settings: SettingsStore | None = None,
        pending: PendingDeletionsStore | None = None,
        queue: Queue | None = None,
        planner: Planner | None = None,
        poll: Callable[[Principal], int] | None = None,
    ) -> None:
        """``queue``: where the sync that carries out the user's answer to held deletions
        is requested (without one, the calendar's next sync carries it out). ``planner``:
        queues an account's syncs when the user asks for them (:meth:`sync_now`). ``poll``:
        polls the user's calendars that send no change notifications (:meth:`viewed`)."""
        self._connections = connections
        self._calendars = calendars
        self._access = access
        self._mirror = mirror or MirrorStore()
        self._settings = settings or SettingsStore()
        self._pending = pending or PendingDeletionsStore()
        self._queue = queue
        self._planner = planner
        self._poll = poll

    def connected(self, principal: Principal) -> list[ConnectedCalendar]:
        """Every connected account's calendars: accounts in connection order, primary first."""
        order = {c.connection_id: i for i, c in enumerate(self._connections.list(principal))}
        calendars = [c for c in self._calendars.of_user(principal) if c.connection_id in order]
        return sorted(calendars, key=lambda c: (order[c.connection_id], not c.primary, c.name.lower()))

    def viewed(self, principal: Principal) -> list[CalendarStatus]:
        """The Calendar Settings page opened: its calendars with their status, and the user's
        polled calendars (CalDAV) are polled now, so what the page shows next is current. The
        poll is best effort: the page answers even when the queue refuses it (the schedule
        polls within 5 minutes anyway)."""
        if self._poll is not None:
            try:
                self._poll(principal)
            except Exception:
                log.exception("could not queue the settings page's calendar poll")
        return self.with_status(principal)

    def with_status(self, principal: Principal) -> list[CalendarStatus]:
        """``connected``, each with its account's status and its sync state (F2, F12)."""
        connections = {c.connection_id: c for c in self._connections.list(principal)}
        order = list(connections)
        calendars = [c for c in self._calendars.of_user(principal) if c.connection_id in connections]
        cursors = {(conn, cal): cursor for conn, cal, cursor in self._mirror.synced(principal)}
        linked = self._settings.get(principal).linked
        held = {
            (p.resource.connection_id, p.resource.resource_id): p for p in self._pending.of_user(principal, "calendar")
        }
        out: list[CalendarStatus] = []
        for c in sorted(calendars, key=lambda c: (order.index(c.connection_id), not c.primary, c.name.lower())):
            cursor = cursors.get((c.connection_id, c.calendar_id))
            wanted = c.conflict or (
                linked is not None
                and (linked.connection_id, linked.calendar_id)
                == (
                    c.connection_id,
                    c.calendar_id,
                )
            )
            failed = bool(wanted and cursor and cursor.last_error)
            if not wanted:
                state = "off"
            elif failed:
                state = "failing"
            else:
                state = "synced" if cursor and cursor.sync_token else "pending"
            out.append(
                CalendarStatus(
                    calendar=c,
                    connection_status=connections[c.connection_id].status,
                    sync_state=state,
                    last_synced_at=cursor.last_success_at if cursor and wanted else None,
                    push_channel=bool(wanted and cursor and cursor.channel_id),
                    pending_deletions=held.get((c.connection_id, c.calendar_id)) if wanted else None,
                    last_error=cursor.last_error if cursor and failed else None,
                    last_error_at=cursor.last_error_at if cursor and failed else None,
                    events_so_far=cursor.events_so_far if cursor and wanted else None,
                )
            )
        return out

    def decide_deletions(
        self, principal: Principal, connection_id: str, calendar_id: str, decision: Decision
    ) -> CalendarStatus:
        """The user's answer to deletions held back on a calendar: :attr:`Decision.APPLY`
        (delete as usual) or :attr:`Decision.IGNORE` (keep the CRM side). Recorded here and
        carried out by the calendar's next sync, requested at once; answering again before
        it ran replaces the answer. NotFound if nothing is held on that calendar."""
        status = next(
            (
                s
                for s in self.with_status(principal)
                if (s.calendar.connection_id, s.calendar.calendar_id) == (connection_id, calendar_id)
            ),
            None,
        )
        # Only a calendar of the user's is looked up (an id of any length could not be a key).
        decided = (
            self._pending.decide(principal, calendar_resource(connection_id, calendar_id), decision)
            if status is not None
            else None
        )
        if decided is None or status is None:
            raise NotFound("No deletions are waiting for confirmation on that calendar.")
        if self._queue is not None:
            request = CalendarSyncRequest(
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                calendar_id=calendar_id,
                reason="deletions",
                occasion=f"{decision.value}@{decided.version}",
            )
            try:
                self._queue.send(request)
            except Exception:  # recorded; the calendar's next (scheduled) sync carries it out
                log.exception("could not enqueue the sync that carries out held deletions")
        return replace(status, pending_deletions=decided)

    def sync_now(self, principal: Principal, connection_id: str) -> int:
        """Queue a sync of each of the account's synced calendars (the user's "Sync now");
        how many. NotFound for an unknown connection, Conflict for one that must be
        connected again first (its syncs could not run)."""
        connection = self._connections.get(principal, connection_id)
        if connection is None:
            raise NotFound(f"No connection {connection_id!r}.")
        if connection.status is not ConnectionStatus.CONNECTED:
            raise Conflict(f"The account {connection.email} must be connected again before it can sync.")
        if self._planner is None:
            raise RuntimeError("Calendars was built without a sync planner")
        occasion = f"{MANUAL_SYNC}@{datetime.now(UTC).isoformat()}"
        queued = self._planner.enqueue(principal, connection_id, reason=MANUAL_SYNC, occasion=occasion)
        log.info("sync requested", extra={"connection_id": connection_id, "calendars": queued})
        return queued

    def refresh(self, principal: Principal, connection_id: str) -> list[ConnectedCalendar] | None:
        """Re-read the account's calendar list from the provider. ``None``: the connection is
        gone or its grant does not reach its calendars (e.g. the user unticked the
        scope). Provider errors propagate (the queue retries)."""
        stored = self._connections.get_stored(principal, connection_id)
        if stored is None or not self._access.reaches_calendars(stored.connection):
            return None
        listed = self._access.calendar(stored).list_calendars()
        return self._calendars.replace_for_connection(principal, connection_id, stored.connection.email, listed)

    def forget_connection(self, principal: Principal, connection_id: str) -> None:
        self._calendars.delete_for_connection(principal, connection_id)
