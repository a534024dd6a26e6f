"""Polling the calendars of providers that send no change notifications (CalDAV, iCloud;
Outlook has Graph subscriptions).

A polled calendar is synced like any other (one :class:`CalendarSyncRequest` per calendar, in
the calendar's own FIFO group, so a poll never runs beside a "Sync now" or a settings-change
sync of the same calendar); what differs is who asks. The scheduler asks every
:data:`TICK`: the linked calendar at each tick, conflict calendars at every third tick (every
15 minutes), the tick chosen by a hash of the connection so that the accounts' conflict
polls are spread over the three ticks instead of all landing together. The worker receives
the requests in batches (the event source's ``BatchSize``): one invocation polls many
calendars, and a no-op poll costs one provider request (an empty sync report, or a ctag).

The Calendar Settings page asks too (:meth:`CalendarPoller.poll_user`): the user's polled
calendars are polled at once, at most once a minute per user (a per-container memory, and
the minute in the messages' deduplication id across containers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crmsync.domain import CalendarSettings, ConnectedCalendar, Connection, ConnectionStatus, Principal

# The scheduler's period (template.yaml ``CalendarPoll``) is the linked calendar's poll interval.
from crmsync.domain.sweeps import TICK, tick_of
from crmsync.messaging.messages import CalendarSyncRequest
from crmsync.security.secrets import sha256_hex

log = logging.getLogger(__name__)

#: Conflict calendars are polled at one tick in this many (every 15 minutes).
CONFLICT_TICKS = 3
#: The settings page polls a user's calendars at most this often.
PAGE_POLL_EVERY = timedelta(minutes=1)

#: ``reason`` of the requests: the schedule's, and the settings page's.
POLL = "poll"
PAGE_POLL = "page"


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class Connections(Protocol):
    def of_providers(self, providers: frozenset[str]) -> Iterator[tuple[Principal, str, ConnectionStatus]]: ...

    def list(self, principal: Principal) -> list[Connection]: ...


class Calendars(Protocol):
    def of_user(self, principal: Principal, connection_id: str | None = None) -> list[ConnectedCalendar]: ...


class Settings(Protocol):
    def get(self, principal: Principal) -> CalendarSettings: ...


@dataclass(frozen=True)
class PollSweep:
    """One scheduled tick: polled accounts, calendar polls queued, accounts that failed."""

    accounts: int
    calendars: int
    failed: int


def conflict_slot(principal: Principal, connection_id: str) -> int:
    """Which of the :data:`CONFLICT_TICKS` ticks polls the connection's conflict calendars:
    a hash of the connection spreads the accounts evenly and keeps each one's rhythm."""
    digest = sha256_hex(f"{principal.tenant_id}#{principal.user_id}#{connection_id}")
    return int(digest[:8], 16) % CONFLICT_TICKS


class CalendarPoller:
    def __init__(
        self,
        *,
        connections: Connections,
        calendars: Calendars,
        settings: Settings,
        queue: Queue,
        polled: frozenset[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``polled``: the providers whose calendars are polled (``Connectors.polled_providers``)."""
        self._connections = connections
        self._calendars = calendars
        self._settings = settings
        self._queue = queue
        self._polled = polled
        self._clock = clock
        #: When each user's calendars were last polled for the settings page (this container).
        self._page_polled: dict[Principal, datetime] = {}

    def poll_due(self, at: datetime | None = None) -> PollSweep:
        """The scheduled tick (``at``: the time it was scheduled for; default the clock): queue
        a poll of every connected polled account's due calendars. A failure to queue one
        account is logged and the sweep goes on (the next tick asks again); a repeated firing
        within the tick is a no-op at the queue (same occasion)."""
        moment = at or self._clock()
        tick = tick_of(moment)
        occasion = f"{POLL}@{datetime.fromtimestamp(tick * TICK.total_seconds(), UTC):%Y-%m-%dT%H:%M}"
        accounts = calendars = failed = 0
        for principal, connection_id, status in self._connections.of_providers(self._polled):
            if status is not ConnectionStatus.CONNECTED:
                continue  # needs_reauth: nothing works until the user reconnects
            conflicts = (tick + conflict_slot(principal, connection_id)) % CONFLICT_TICKS == 0
            try:
                calendars += self._enqueue(principal, connection_id, conflicts, POLL, occasion)
            except Exception:
                log.exception("could not queue a calendar poll", extra={"connection_id": connection_id})
                failed += 1
                continue
            accounts += 1
        return PollSweep(accounts=accounts, calendars=calendars, failed=failed)

    def poll_user(self, principal: Principal) -> int:
        """The settings page opened: poll the user's polled calendars now, unless that was
        done less than :data:`PAGE_POLL_EVERY` ago. Returns the calendar polls queued."""
        moment = self._clock()
        last = self._page_polled.get(principal)
        if last is not None and timedelta(0) <= moment - last < PAGE_POLL_EVERY:
            return 0
        if len(self._page_polled) > 1000:
            self._page_polled.clear()
        self._page_polled[principal] = moment
        occasion = f"{PAGE_POLL}@{moment:%Y-%m-%dT%H:%M}"
        sent = 0
        for connection in self._connections.list(principal):
            if connection.provider in self._polled and connection.status is ConnectionStatus.CONNECTED:
                sent += self._enqueue(principal, connection.connection_id, True, PAGE_POLL, occasion)
        return sent

    def _enqueue(self, principal: Principal, connection_id: str, conflicts: bool, reason: str, occasion: str) -> int:
        """Queue a sync of the connection's linked calendar, and of its conflict calendars when
        ``conflicts``; how many. A calendar both linked and conflict is polled once."""
        due: set[str] = set()
        linked = self._settings.get(principal).linked
        if linked is not None and linked.connection_id == connection_id:
            due.add(linked.calendar_id)
        if conflicts:
            due |= {c.calendar_id for c in self._calendars.of_user(principal, connection_id) if c.conflict}
        for calendar_id in sorted(due):
            self._queue.send(
                CalendarSyncRequest(
                    tenant_id=principal.tenant_id,
                    user_id=principal.user_id,
                    connection_id=connection_id,
                    calendar_id=calendar_id,
                    reason=reason,
                    occasion=occasion,
                )
            )
        return len(due)
