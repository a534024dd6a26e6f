"""F7 (inbound): bring the mirror of a provider calendar up to date.

Full sync once, then incremental from the provider's cursor (Calendar ``syncToken``). The
cursor is stored only after every page was applied; an invalidated cursor (410) falls back
to a full sync that replaces the mirror — no duplicates (events are keyed by id), no loss
(whatever the provider no longer lists is removed). Interrupted at any step, a re-run
reaches the same result.

Deletions pass the mass-deletion guard (:mod:`crmsync.guard`) first: a sync that would
delete most of what is mirrored (or all of it) applies everything else and holds the
deletions until the user answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crmsync.dal.connections import ConnectionStore
from crmsync.dal.guard import PendingDeletionsStore
from crmsync.dal.mirror import MirrorStore, SyncCursor, SyncInputs, calendar_resource
from crmsync.dal.settings import SettingsStore
from crmsync.domain import ConnectionStatus, Counter, ExternalEvent, Principal, StoredConnection
from crmsync.guard import DeletionThreshold, PendingDeletions
from crmsync.messaging.events import EventPublisher, ExternalBusyChanged
from crmsync.ports.calendar import CalendarAccess, CalendarPort, ChangeNotification, EventPage, resource_of
from crmsync.ports.errors import AuthRevoked, CursorInvalid, ProviderError
from crmsync.security.secrets import sha256_hex
from crmsync.sync import held
from crmsync.sync.channels import Channels

log = logging.getLogger(__name__)

#: A no-op incremental sync leaves the stored cursor alone, but refreshes it this often
#: (its ``last_success_at`` tells the scheduled sweep the calendar is being synced).
CURSOR_REFRESH = timedelta(hours=1)


#: Unlisted created events a sync checks at most (one provider request each); the rest wait
#: for the next sync.
MAX_UNLISTED_CHECKS = 20

_END = object()

#: What a sync does with its deletions (see :meth:`CalendarSync._verdict`).
_APPLY, _HOLD, _KEEP = held.APPLY, held.HOLD, held.KEEP


def _final(events: list[ExternalEvent]) -> dict[str, ExternalEvent]:
    """Each event's last state in the sync (a later page may undo an earlier one)."""
    return {e.event_id: e for e in events}


def _alive(events: list[ExternalEvent]) -> set[str]:
    return {i for i, e in _final(events).items() if not e.cancelled}


def prefetched(pages: Iterator[EventPage]) -> Iterator[EventPage]:
    """The pages, each next one fetched in a thread while the caller stores this one (the
    provider's latency and our writes overlap). Errors of a fetch surface where it is used."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-pages") as pool:
        pending = pool.submit(next, pages, _END)
        while True:
            page = pending.result()
            if page is _END:
                return
            pending = pool.submit(next, pages, _END)
            yield page  # type: ignore[misc]


@dataclass(frozen=True)
class SyncOutcome:
    full: bool
    changes: int
    #: The calendar is no longer synced: its channel was stopped and its mirror forgotten.
    retired: bool = False


class CalendarSync:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        settings: SettingsStore,
        mirror: MirrorStore,
        calendars: CalendarAccess,
        channels: Channels | None = None,
        inbound: Callable[[Principal, str, str, list[ExternalEvent], datetime | None], object] | None = None,
        events: EventPublisher | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        threshold: DeletionThreshold | None = None,
        pending: PendingDeletionsStore | None = None,
        linked: Callable[[Principal, str, str, datetime | None], set[str]] | None = None,
        keep: Callable[[Principal, str, str, set[str]], object] | None = None,
        counter: Counter | None = None,
    ) -> None:
        """``calendars``: opens the calendar port of a connection, whatever its provider.
        ``channels``: keeps a push channel open on every synced calendar (optional so a
        deployment without a public webhook can rely on the scheduled sweep alone).
        ``inbound``: receives the changed events after they are mirrored (the linked
        calendar's changes flow into appointments there). ``events``: where
        ExternalBusyChanged and DeletionsHeld go.

        The mass-deletion guard (:mod:`crmsync.guard`): ``threshold`` decides which
        deletions are held for the user (``pending`` records them); ``linked(principal,
        connection, calendar, since)``: the event ids CRM appointments are linked to (they
        count as mirrored: a first sync after a reconnect has an empty mirror but not an
        empty CRM); ``keep(principal, connection, calendar, event_ids)``: the user's Ignore,
        the CRM side of those events stays; ``counter``: where ``MassDeletionHeld`` is counted."""
        self._connections = connections
        self._settings = settings
        self._mirror = mirror
        self._calendars = calendars
        self._channels = channels
        self._inbound = inbound
        self._events = events
        self._clock = clock
        self._threshold = threshold or DeletionThreshold()
        self._pending = pending or PendingDeletionsStore()
        self._linked = linked
        self._keep = keep
        self._counter = counter

    def run(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        *,
        touch: bool = False,
        lifecycle: str = "",
        notified: str = "",
    ) -> SyncOutcome | None:
        """``None``: the connection is gone or not usable (its health check reports why).

        A calendar that is no longer a conflict or linked calendar is retired instead: its
        push channel is stopped and its mirror forgotten (it is synced again once chosen).
        A no-op incremental sync costs one provider request and one DynamoDB request;
        ``touch`` (the user's "Sync now") records its time even then. A provider failure is
        recorded on the calendar's cursor (shown as "failing" with the error) and raised;
        the next successful sync clears it. ``lifecycle``/``notified``: a Graph lifecycle
        event and its subscription, for the channel upkeep after the sync
        (:meth:`Channels.ensure`). A revoked grant or password (``AuthRevoked``)
        cannot be mended by retrying: the connection is marked ``needs_reauth`` (as its
        health check would) and ``None`` returned; reconnecting resumes from the cursor.
        """
        try:
            return self._run(principal, connection_id, calendar_id, touch=touch, lifecycle=lifecycle, notified=notified)
        except AuthRevoked:
            stored = self._connections.get_stored(principal, connection_id)
            if stored is not None:
                self._connections.set_status(
                    principal, connection_id, ConnectionStatus.NEEDS_REAUTH, "invalid_grant", version=stored.version
                )
            if self._counter is not None:
                self._counter.count("ConnectionNeedsReauth")
            log.warning(
                "calendar grant revoked; connection needs re-authorization", extra={"connection_id": connection_id}
            )
            return None
        except ProviderError as exc:
            try:
                self._mirror.record_failure(principal, connection_id, calendar_id, str(exc))
            except Exception:  # the failure itself is what matters: it is raised below
                log.exception("could not record a calendar's sync failure", extra={"connection_id": connection_id})
            raise

    def _run(
        self, principal: Principal, connection_id: str, calendar_id: str, *, touch: bool, lifecycle: str, notified: str
    ) -> SyncOutcome | None:
        inputs = self._mirror.sync_inputs(principal, connection_id, calendar_id)
        stored, cursor = inputs.stored, inputs.cursor
        if stored is None or stored.connection.status is not ConnectionStatus.CONNECTED:
            return None
        if not inputs.wanted and cursor.version is None:
            return SyncOutcome(full=False, changes=0, retired=True)  # never synced: nothing to retire
        lister = self._calendars.calendar(stored)
        if not inputs.wanted:
            self._retire(principal, connection_id, calendar_id, cursor, lister)
            return SyncOutcome(full=False, changes=0, retired=True)
        pending = inputs.pending
        # The user answered held deletions: the next sync re-reads the complete list and
        # carries the answer out (nothing the provider lists again is deleted).
        full = cursor.sync_token is None or (pending is not None and pending.decision is not None)
        window_start = cursor.window_start
        whole: frozenset[str] = frozenset()
        unlisted_done: set[str] = set()
        unlisted_seen: set[str] = set()
        if not full:
            try:
                pages = lister.event_pages(calendar_id, cursor=cursor.sync_token, since=None)
                events, changes, next_token, whole = self._mirror_pages(principal, connection_id, calendar_id, pages)
                if inputs.unlisted and not lister.reports_unseen_deletions:
                    vanished, unlisted_done, unlisted_seen = self._check_unlisted(lister, calendar_id, inputs, events)
                    events = events + [ExternalEvent.gone(i) for i in sorted(vanished)]
            except CursorInvalid:
                log.info("sync token invalidated; full sync", extra={"connection_id": connection_id})
                full = True
        if full:
            days_back = inputs.settings.preferences.window_days_back
            window_start = self._clock().replace(microsecond=0) - timedelta(days=days_back)
            known = self._mirror.event_ends(principal, connection_id, calendar_id)
            pages = lister.event_pages(calendar_id, cursor=None, since=window_start)
            events, changes, next_token, _ = self._mirror_pages(
                principal, connection_id, calendar_id, pages, progress=True
            )
            alive = _alive(events)
            # Whatever the complete list lacks is gone: no duplicates, no ghosts. Events that
            # ended before the window are out of scope, not deleted: never held.
            gone = set(known) - alive
            in_window = {i for i, end in known.items() if end is None or end > window_start}
            population = in_window | self._linked_ids(principal, connection_id, calendar_id, window_start)
            doomed = population - alive
            # Listed now: later rounds report their deletion. The others are checked by the
            # next incremental sync (one may have been created after this listing began).
            unlisted_done = set(inputs.unlisted) & {e.event_id for e in events}
        else:
            gone = {i for i, e in _final(events).items() if e.cancelled}
            population = doomed = set()
            known = None
            if whole:
                # The provider reported whole resources (CalDAV): a mirrored instance of one
                # that is no longer listed is gone (a shortened RRULE, an EXDATE, a deleted
                # series), though no deletion of it was reported.
                known = self._mirror.event_ends(principal, connection_id, calendar_id)
                alive = _alive(events)
                vanished = {i for i in known if resource_of(i) in whole and i not in alive and i not in gone}
                events = events + [ExternalEvent.gone(i) for i in sorted(vanished)]
                gone |= vanished
            if gone:  # only a sync that deletes pays for reading what is mirrored
                if known is None:
                    known = self._mirror.event_ends(principal, connection_id, calendar_id)
                population = set(known) | self._linked_ids(principal, connection_id, calendar_id, None)
                doomed = gone & population
        verdict = self._verdict(pending, len(doomed), len(population), complete=full)
        complete_since = window_start if full else None
        if verdict == _HOLD:
            gone -= doomed
            events = [e for e in events if not (e.cancelled and e.event_id in doomed)]
            complete_since = None
        elif verdict == _KEEP:
            # The user ignored the deletions: the CRM side stays. Its appointments are
            # unlinked from the vanished events and pushed again (so no later sync finds them
            # missing), and the deletions never reach the CRM side.
            if self._keep is not None:
                self._keep(principal, connection_id, calendar_id, doomed)
            events = [e for e in events if not (e.cancelled and e.event_id in doomed)]
            complete_since = None
        changes += self._mirror.remove(principal, connection_id, calendar_id, gone)
        if self._inbound is not None and (events or full):
            # Before the cursor moves: interrupted here, the re-run sees the same events
            # again, and absorbing them twice changes nothing. A full sync's list is complete
            # from the window's start: what it lacks from then on was deleted meanwhile.
            self._inbound(principal, connection_id, calendar_id, events, complete_since)
        if verdict == _HOLD:
            self._hold(principal, connection_id, calendar_id, pending, len(doomed), len(population), full, next_token)
        elif pending is not None and full:
            # A complete list was judged (and any answer carried out): the record is done.
            self._pending.clear(principal, pending)
        # A count left by a full sync that never finished (its worker died) goes with the save too.
        stale_progress = cursor.events_so_far is not None
        if full or events or touch or cursor.last_error is not None or stale_progress or self._stale(cursor):
            self._mirror.advance(principal, connection_id, calendar_id, cursor, next_token, window_start, full)
        # else: nothing changed, and the stored token still leads to the same changes. (A
        # recorded failure is cleared by advancing: the saved cursor has no error.)
        # After the cursor moved (interrupted before, the re-run checks the same events again).
        seen = (set(inputs.unlisted_seen) - unlisted_done) | unlisted_seen
        if unlisted_done or seen != inputs.unlisted_seen:
            self._mirror.settle_unlisted(principal, connection_id, calendar_id, done=unlisted_done, seen=seen)
        if changes and inputs.calendar is not None and inputs.calendar.conflict and self._events is not None:
            self._events.publish(
                [
                    ExternalBusyChanged(
                        event_id=f"busy:{connection_id}:{sha256_hex(calendar_id)[:16]}:{sha256_hex(next_token)[:32]}",
                        tenant_id=principal.tenant_id,
                        user_id=principal.user_id,
                        connection_id=connection_id,
                        calendar_id=calendar_id,
                        changed_events=changes,
                    )
                ]
            )
        if self._channels is not None:
            self._keep_channel(principal, connection_id, calendar_id, lister, cursor, lifecycle, notified)
        return SyncOutcome(full=full, changes=changes)

    def _mirror_pages(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        pages: Iterator[EventPage],
        *,
        progress: bool = False,
    ) -> tuple[list[ExternalEvent], int, str, frozenset[str]]:
        """Mirror page after page, fetching the next page while this one is written; the
        events, how many mirrored items changed, the last page's sync token and the resources
        listed whole (:attr:`EventPage.whole_resources`). With
        ``progress`` (a full sync, which can be long), the count of events mirrored so far is
        recorded after each page but the last (the cursor's save right after removes it)."""
        events: list[ExternalEvent] = []
        whole: set[str] = set()
        changes, token, mirrored = 0, "", 0
        if progress:
            self._mirror.record_progress(principal, connection_id, calendar_id, 0)
        for fetched in prefetched(pages):
            page, next_token = fetched.events, fetched.cursor
            alive = [e for e in page if not e.cancelled]
            # Deletions wait until every page was seen: the guard judges them all at once.
            changes += self._mirror.apply(principal, connection_id, calendar_id, alive)
            events.extend(page)
            whole |= fetched.whole_resources
            token = next_token or token
            mirrored += len(alive)
            if progress and next_token is None:
                self._mirror.record_progress(principal, connection_id, calendar_id, mirrored)
        return events, changes, token, frozenset(whole)

    @staticmethod
    def _check_unlisted(
        lister: CalendarPort, calendar_id: str, inputs: SyncInputs, events: list[ExternalEvent]
    ) -> tuple[set[str], set[str], set[str]]:
        """The events our pushes created that no listing had shown, after a round of a
        provider that never reports the deletion of such an event (Graph): those this round
        lists are done; each other one is asked for (one request): gone → the user deleted
        it, reported like a listed deletion (the F6 rules apply: a pending CRM change wins);
        live → created after the round's request (the next round lists it), or outside the
        listing's window: found live unlisted twice, it is dropped. Returns (vanished,
        done, seen once)."""
        listed = {e.event_id for e in events}
        done = set(inputs.unlisted) & listed
        vanished: set[str] = set()
        seen: set[str] = set()
        for event_id in sorted(inputs.unlisted - listed)[:MAX_UNLISTED_CHECKS]:
            if not lister.event_exists(calendar_id, event_id):
                vanished.add(event_id)
            elif event_id in inputs.unlisted_seen:
                done.add(event_id)
            else:
                seen.add(event_id)
        return vanished, done | vanished, seen

    def _linked_ids(
        self, principal: Principal, connection_id: str, calendar_id: str, since: datetime | None
    ) -> set[str]:
        if self._linked is None:
            return set()
        return self._linked(principal, connection_id, calendar_id, since)

    def _verdict(self, pending: PendingDeletions | None, deletions: int, mirrored: int, *, complete: bool) -> str:
        """Apply, hold or keep (the user's Ignore) this sync's deletions: a full sync carries
        out the user's answer (:func:`crmsync.sync.held.verdict`)."""
        return held.verdict(self._threshold, pending, deletions, mirrored, complete=complete)

    def _hold(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        pending: PendingDeletions | None,
        deletions: int,
        mirrored: int,
        complete: bool,
        token: str,
    ) -> None:
        held.hold(
            self._pending,
            principal,
            calendar_resource(connection_id, calendar_id),
            pending,
            (deletions, mirrored),
            complete=complete,
            now=self._clock(),
            event_id=f"held:{connection_id}:{sha256_hex(calendar_id)[:16]}:{sha256_hex(token)[:32]}",
            events=self._events,
            counter=self._counter,
        )

    def _stale(self, cursor: SyncCursor) -> bool:
        return cursor.last_success_at is None or self._clock() - cursor.last_success_at > CURSOR_REFRESH

    def _retire(
        self, principal: Principal, connection_id: str, calendar_id: str, cursor: SyncCursor, api: CalendarPort
    ) -> None:
        if cursor.channel_id and self._channels is not None:
            try:
                self._channels.stop(api, cursor.channel_id, cursor.channel_resource_id or "")
            except ProviderError as exc:
                if exc.retryable:
                    raise
                log.warning("channel stop failed", extra={"connection_id": connection_id, "detail": exc.detail})
        self._mirror.forget(principal, connection_id, calendar_id)
        log.info("calendar retired", extra={"connection_id": connection_id})

    def _keep_channel(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        api: CalendarPort,
        cursor: SyncCursor,
        lifecycle: str,
        notified: str,
    ) -> None:
        assert self._channels is not None
        if api.notification is ChangeNotification.POLLING:
            return  # nothing to open: the scheduled syncs poll it
        try:
            self._channels.ensure(
                principal, connection_id, calendar_id, api, cursor, lifecycle=lifecycle, notified=notified
            )
        except ProviderError as exc:
            if exc.retryable:
                raise
            # E.g. the calendar cannot be watched: the scheduled sweep still syncs it.
            log.warning("push channel refused", extra={"connection_id": connection_id, "detail": exc.detail})

    def stop_channels(self, principal: Principal, stored: StoredConnection) -> None:
        """Before a disconnect revokes the grant: stop the connection's push channels at the
        provider (best effort: it may be unreachable; stopped channels go quiet anyway)."""
        if self._channels is None:
            return
        connection_id = stored.connection.connection_id
        cursors = [cursor for _, cursor in self._mirror.synced_calendars(principal, connection_id) if cursor.channel_id]
        if not cursors:
            return
        lister = self._calendars.calendar(stored)
        for cursor in cursors:
            if cursor.channel_id:
                try:
                    self._channels.stop(lister, cursor.channel_id, cursor.channel_resource_id or "")
                except ProviderError as exc:
                    log.warning("channel stop failed", extra={"connection_id": connection_id, "detail": exc.detail})

    def forget_connection(self, principal: Principal, connection_id: str) -> None:
        """After a disconnect: delete every mirrored event and cursor of the connection."""
        for calendar_id, _ in self._mirror.synced_calendars(principal, connection_id):
            self._mirror.forget(principal, connection_id, calendar_id)
        self._mirror.forget_unlisted(principal, connection_id)
