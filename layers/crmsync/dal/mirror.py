"""The mirror of provider calendars: sync cursors and event instances, per user partition."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError
from pynamodb.expressions.update import Action

from crmsync.dal import condition_failed, get_many
from crmsync.dal.calendars import calendar_from_item
from crmsync.dal.connections import StoredConnection, stored_from_item
from crmsync.dal.guard import pending_from_item, pending_key
from crmsync.dal.settings import settings_from_item
from crmsync.dal.versioned import update_unread
from crmsync.domain import CalendarSettings, ConnectedCalendar, ExternalEvent, Principal, event_end
from crmsync.errors import Conflict
from crmsync.guard import GuardedResource, PendingDeletions
from crmsync.models.calendar import CalendarItem, calendar_sk
from crmsync.models.connection import CONNECTION_SK_PREFIX, ConnectionItem
from crmsync.models.guard import PendingDeletionsItem
from crmsync.models.keys import check_id, user_pk
from crmsync.models.settings import CALENDAR_SETTINGS_SK, CalendarSettingsItem
from crmsync.models.sync import (
    SYNC_SK_PREFIX,
    ExternalEventItem,
    SyncRequestItem,
    SyncStateItem,
    UnlistedEventsItem,
    external_prefix,
    sync_request_sk,
    sync_sk,
    unlisted_sk,
)

#: The longest sync error kept (a provider's message; longer ones are cut).
MAX_ERROR = 500

#: Items in one BatchWriteItem (DynamoDB's limit).
BATCH = 25
#: BatchWriteItem calls a page's mirror write keeps in flight: a full sync of a large calendar
#: waits on DynamoDB's round trips, not on our CPU (docs/PERFORMANCE.md).
WRITERS = 2


@dataclass(frozen=True)
class SyncCursor:
    sync_token: str | None
    window_start: datetime | None
    version: int | None
    full_syncs: int
    channel_id: str | None = None
    channel_resource_id: str | None = None
    channel_expires_at: datetime | None = None
    last_success_at: datetime | None = None
    #: Why the last sync failed, and when (cleared by the next successful one).
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: Events mirrored so far by a full sync under way (``None`` when none runs).
    events_so_far: int | None = None


@dataclass(frozen=True)
class SyncInputs:
    stored: StoredConnection | None
    cursor: SyncCursor
    settings: CalendarSettings
    calendar: ConnectedCalendar | None
    #: Deletions an earlier sync held back (the mass-deletion guard), with the user's answer.
    pending: PendingDeletions | None = None
    #: Events our pushes created that no listing has shown yet (:class:`UnlistedEventsItem`),
    #: and those of them a check already found live once.
    unlisted: frozenset[str] = frozenset()
    unlisted_seen: frozenset[str] = frozenset()

    @property
    def wanted(self) -> bool:
        """Whether the calendar's events matter: a conflict calendar, or the linked one."""
        if self.calendar is None:
            return False
        linked = self.settings.linked
        is_linked = linked is not None and (linked.connection_id, linked.calendar_id) == (
            self.calendar.connection_id,
            self.calendar.calendar_id,
        )
        return self.calendar.conflict or is_linked


def calendar_resource(connection_id: str, calendar_id: str) -> GuardedResource:
    """A calendar, as the mass-deletion guard names it."""
    return GuardedResource("calendar", connection_id, calendar_id)


def cursor_from_item(item: SyncStateItem | None) -> SyncCursor:
    if item is None:
        return SyncCursor(None, None, None, 0)
    return SyncCursor(
        item.sync_token,
        item.window_start,
        item.version,
        int(item.full_syncs or 0),
        item.channel_id,
        item.channel_resource_id,
        item.channel_expires_at,
        item.last_success_at,
        item.last_error,
        item.last_error_at,
        None if item.events_so_far is None else int(item.events_so_far),
    )


def _event(item: ExternalEventItem) -> ExternalEvent:
    return ExternalEvent(
        event_id=item.event_id,
        cancelled=False,
        start=item.start,
        end=item.end,
        start_date=item.start_date,
        end_date=item.end_date,
        transparent=bool(item.transparent),
        declined=bool(item.declined),
        summary=item.summary,
        etag=item.etag,
        crm_appointment_id=item.crm_appointment_id,
    )


def _end_of(item: ExternalEventItem) -> datetime | None:
    return event_end(item.end, item.end_date)


class MirrorStore:
    def cursor(self, principal: Principal, connection_id: str, calendar_id: str) -> SyncCursor:
        try:
            item = SyncStateItem.get(
                user_pk(principal.tenant_id, principal.user_id),
                sync_sk(connection_id, calendar_id),
                consistent_read=True,
            )
        except DoesNotExist:
            return cursor_from_item(None)
        return cursor_from_item(item)

    def sync_inputs(self, principal: Principal, connection_id: str, calendar_id: str) -> SyncInputs:
        """What a sync run needs, in one request: the connection, the cursor, the settings,
        the calendar and any deletions held back by the mass-deletion guard."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        try:
            check_id("connection", connection_id)
        except ValueError:
            return SyncInputs(None, cursor_from_item(None), settings_from_item(None), None)
        connection, state, settings, calendar, pending, unlisted = get_many(
            [
                (ConnectionItem, pk, CONNECTION_SK_PREFIX + connection_id),
                (SyncStateItem, pk, sync_sk(connection_id, calendar_id)),
                (CalendarSettingsItem, pk, CALENDAR_SETTINGS_SK),
                (CalendarItem, pk, calendar_sk(connection_id, calendar_id)),
                pending_key(principal, calendar_resource(connection_id, calendar_id)),
                (UnlistedEventsItem, pk, unlisted_sk(connection_id, calendar_id)),
            ]
        )
        created = unlisted if isinstance(unlisted, UnlistedEventsItem) else None
        return SyncInputs(
            stored_from_item(connection) if isinstance(connection, ConnectionItem) else None,
            cursor_from_item(state if isinstance(state, SyncStateItem) else None),
            settings_from_item(settings if isinstance(settings, CalendarSettingsItem) else None),
            calendar_from_item(calendar) if isinstance(calendar, CalendarItem) else None,
            pending_from_item(pending if isinstance(pending, PendingDeletionsItem) else None),
            frozenset(created.event_ids or ()) if created else frozenset(),
            frozenset(created.seen or ()) if created else frozenset(),
        )

    def record_unlisted(self, principal: Principal, connection_id: str, calendar_id: str, event_id: str) -> None:
        """Our push created ``event_id`` in a calendar whose provider does not report the
        deletion of events no listing has shown (Graph): the next syncs check it until a
        listing shows it (:meth:`settle_unlisted`). An atomic ADD: a sync settling the set
        meanwhile loses nothing."""
        UnlistedEventsItem._get_connection().update_item(
            user_pk(principal.tenant_id, principal.user_id),
            unlisted_sk(connection_id, calendar_id),
            actions=[UnlistedEventsItem.event_ids.add({event_id})],
        )

    def settle_unlisted(
        self, principal: Principal, connection_id: str, calendar_id: str, *, done: set[str], seen: set[str]
    ) -> None:
        """After a sync: ``done`` (listed, found deleted, or found live twice unlisted) leave
        the set (an atomic DELETE: a push's concurrent ADD stays); ``seen`` replaces the ids
        found live once though unlisted (only syncs write it, after their conditional cursor
        save). One request (DynamoDB refuses two actions on one attribute, so ``seen`` is SET
        whole rather than changed by DELETE and ADD)."""
        actions: list[Action] = []
        if done:
            actions.append(UnlistedEventsItem.event_ids.delete(done))
        actions.append(UnlistedEventsItem.seen.set(seen) if seen else UnlistedEventsItem.seen.remove())
        UnlistedEventsItem._get_connection().update_item(
            user_pk(principal.tenant_id, principal.user_id), unlisted_sk(connection_id, calendar_id), actions=actions
        )

    def advance(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        read: SyncCursor,
        sync_token: str,
        window_start: datetime | None,
        full: bool,
    ) -> None:
        """Store the new cursor — only if nobody advanced it since ``read`` (else Conflict:
        the message is retried and the other worker's result stands)."""
        item = SyncStateItem(
            user_pk(principal.tenant_id, principal.user_id),
            sync_sk(connection_id, calendar_id),
            connection_id=connection_id,
            calendar_id=calendar_id,
            sync_token=sync_token,
            window_start=window_start,
            last_success_at=datetime.now(UTC),
            full_syncs=read.full_syncs + (1 if full else 0),
            channel_id=read.channel_id,
            channel_resource_id=read.channel_resource_id,
            channel_expires_at=read.channel_expires_at,
        )
        if read.version is not None:
            item.version = read.version  # the save is conditioned on it, and increments it
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("Another sync advanced this calendar's cursor.") from exc
            raise

    def record_failure(self, principal: Principal, connection_id: str, calendar_id: str, error: str) -> None:
        """A sync of the calendar failed: keep why, and when, for the settings page (the
        cursor stays as it was; the next successful :meth:`advance` clears them)."""
        update_unread(
            SyncStateItem,
            user_pk(principal.tenant_id, principal.user_id),
            sync_sk(connection_id, calendar_id),
            [
                SyncStateItem.connection_id.set(connection_id),
                SyncStateItem.calendar_id.set(calendar_id),
                SyncStateItem.last_error.set(error[:MAX_ERROR]),
                SyncStateItem.last_error_at.set(datetime.now(UTC)),
                SyncStateItem.events_so_far.remove(),
            ],
        )

    def record_progress(self, principal: Principal, connection_id: str, calendar_id: str, events_so_far: int) -> None:
        """A full sync under way has mirrored ``events_so_far`` events (for the settings page).
        Leaves the version alone, so the sync's own conditional :meth:`advance` still holds;
        that save, a whole new item, removes the counter."""
        SyncStateItem._get_connection().update_item(
            user_pk(principal.tenant_id, principal.user_id),
            sync_sk(connection_id, calendar_id),
            actions=[
                SyncStateItem.connection_id.set(connection_id),
                SyncStateItem.calendar_id.set(calendar_id),
                SyncStateItem.events_so_far.set(events_so_far),
            ],
        )

    def set_channel(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        channel_id: str,
        resource_id: str,
        expires_at: datetime,
    ) -> None:
        update_unread(
            SyncStateItem,
            user_pk(principal.tenant_id, principal.user_id),
            sync_sk(connection_id, calendar_id),
            [
                SyncStateItem.channel_id.set(channel_id),
                SyncStateItem.channel_resource_id.set(resource_id),
                SyncStateItem.channel_expires_at.set(expires_at),
            ],
            condition=SyncStateItem.sk.exists(),
        )

    def events(self, principal: Principal, connection_id: str, calendar_id: str) -> list[ExternalEvent]:
        items = ExternalEventItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            ExternalEventItem.sk.startswith(external_prefix(connection_id, calendar_id)),
            consistent_read=True,
        )
        return [_event(i) for i in items]

    def apply(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        changes: Iterable[ExternalEvent],
    ) -> int:
        """Upsert the changed events, delete the cancelled ones (a full sync then removes what
        the provider no longer lists: :meth:`remove`). Idempotent: applying the same
        changes twice leaves the same mirror."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        prefix = external_prefix(connection_id, calendar_id)
        # One write per event (a batch may not name a key twice): the last change wins.
        final: dict[str, ExternalEvent | None] = {}
        for change in changes:
            final[change.event_id] = None if change.cancelled else change
        if not final:
            return 0
        items = [
            (event_id, None if event is None else _event_item(pk, prefix, connection_id, calendar_id, event))
            for event_id, event in final.items()
        ]
        # Keys are unique here, so the chunks may land in any order; a failed one is raised
        # once the others are done (a retry applies the same changes again). The first is
        # written in this thread: it makes the table's botocore client if none exists yet
        # (clients are thread-safe once made; making them from one session is not).
        chunks = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        if len(chunks) == 1 or WRITERS == 1:
            _write_chunk(pk, prefix, items)
        else:
            _write_chunk(pk, prefix, chunks[0])
            with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="mirror-write") as pool:
                for written in [pool.submit(_write_chunk, pk, prefix, chunk) for chunk in chunks[1:]]:
                    written.result()
        return len(final)

    def event_ids(self, principal: Principal, connection_id: str, calendar_id: str) -> set[str]:
        """The ids of the calendar's mirrored events (keys only are read)."""
        prefix = external_prefix(connection_id, calendar_id)
        items = ExternalEventItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            ExternalEventItem.sk.startswith(prefix),
            consistent_read=True,
            attributes_to_get=["sk"],
        )
        return {item.sk[len(prefix) :] for item in items}

    def event_ends(self, principal: Principal, connection_id: str, calendar_id: str) -> dict[str, datetime | None]:
        """The calendar's mirrored events, each with the moment it ends (an all-day event:
        the start of its end date in UTC; ``None`` if unknown). Keys and ends only are read."""
        prefix = external_prefix(connection_id, calendar_id)
        items = ExternalEventItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            ExternalEventItem.sk.startswith(prefix),
            consistent_read=True,
            attributes_to_get=["sk", "end", "end_date"],
        )
        return {item.sk[len(prefix) :]: _end_of(item) for item in items}

    def remove(self, principal: Principal, connection_id: str, calendar_id: str, event_ids: set[str]) -> int:
        """Delete these mirrored events (e.g. those a full sync no longer lists)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        prefix = external_prefix(connection_id, calendar_id)
        if event_ids:
            with ExternalEventItem.batch_write() as batch:
                for event_id in event_ids:
                    batch.delete(ExternalEventItem(pk, prefix + event_id))
        return len(event_ids)

    def forget_unlisted(self, principal: Principal, connection_id: str) -> None:
        """Delete the connection's records of created events no listing has shown, also of
        calendars that never got a cursor (a push made before the first sync): a disconnect
        leaves nothing of the connection behind."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        for item in UnlistedEventsItem.query(pk, UnlistedEventsItem.sk.startswith(unlisted_sk(connection_id, ""))):
            item.delete()

    def synced_calendars(self, principal: Principal, connection_id: str) -> list[tuple[str, SyncCursor]]:
        """Every calendar of the connection that has a cursor, with it."""
        return [(c, cursor) for _, c, cursor in self.synced(principal, connection_id)]

    def synced(self, principal: Principal, connection_id: str | None = None) -> list[tuple[str, str, SyncCursor]]:
        """``(connection, calendar, cursor)`` of every synced calendar (of one connection)."""
        items = SyncStateItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            SyncStateItem.sk.startswith(sync_sk(connection_id, "") if connection_id else SYNC_SK_PREFIX),
            consistent_read=True,
        )
        return [(item.connection_id, item.calendar_id, cursor_from_item(item)) for item in items]

    def forget(self, principal: Principal, connection_id: str, calendar_id: str) -> None:
        """Delete a calendar's mirrored events, its cursor and its sync-request mark."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        prefix = external_prefix(connection_id, calendar_id)
        with ExternalEventItem.batch_write() as batch:
            for event in self.events(principal, connection_id, calendar_id):
                batch.delete(ExternalEventItem(pk, prefix + event.event_id))
        SyncStateItem(pk, sync_sk(connection_id, calendar_id)).delete(add_version_condition=False)
        _, _, held = pending_key(principal, calendar_resource(connection_id, calendar_id))
        PendingDeletionsItem(pk, held).delete(add_version_condition=False)
        SyncRequestItem(pk, sync_request_sk(connection_id, calendar_id)).delete()
        UnlistedEventsItem(pk, unlisted_sk(connection_id, calendar_id)).delete()


def _event_item(pk: str, prefix: str, connection_id: str, calendar_id: str, event: ExternalEvent) -> ExternalEventItem:
    return ExternalEventItem(
        pk,
        prefix + event.event_id,
        connection_id=connection_id,
        calendar_id=calendar_id,
        event_id=event.event_id,
        start=event.start,
        end=event.end,
        start_date=event.start_date,
        end_date=event.end_date,
        all_day=event.all_day,
        transparent=event.transparent,
        declined=event.declined,
        summary=event.summary,
        etag=event.etag,
        crm_appointment_id=event.crm_appointment_id,
    )


def _write_chunk(pk: str, prefix: str, items: list[tuple[str, ExternalEventItem | None]]) -> None:
    """One BatchWriteItem's worth (PynamoDB retries its unprocessed items)."""
    with ExternalEventItem.batch_write() as batch:
        for event_id, item in items:
            if item is None:
                batch.delete(ExternalEventItem(pk, prefix + event_id))
            else:
                batch.save(item)
