"""In-memory fakes of the DynamoDB stores the calendar use cases call.

Each fake has the methods of its real store that ``Appointments``, ``CalendarSync``,
``Availability``, ``Integrations``, ``Calendars`` (and the ``Channels``, ``SyncPlanner`` and
``CalendarSettingsService`` they use) call, with the same signatures, return types and
semantics: the version checks, the conditional writes, the orderings, the tenant isolation
by principal. ``tests/contract/test_stores.py`` runs every behaviour over both the real store
(DynamoDB Local) and the fake.

The fakes of the connections table share one :class:`FakeTable`, keyed like the real table
(``(pk, sk)`` built by the real key functions, so orderings and id checks match): a read of
one kind of item sees what another store wrote, as :meth:`FakeMirrorStore.sync_inputs` does.
Use :class:`FakeStores` to get one of each, sharing that table.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, UpdateError

from crmsync.dal.appointments import AppointmentFields, DuePush
from crmsync.dal.channels import Channel
from crmsync.dal.mirror import MAX_ERROR, SyncCursor, SyncInputs, calendar_resource
from crmsync.domain import (
    MAX_APPOINTMENT_DURATION,
    Appointment,
    AppointmentStatus,
    CalendarRef,
    CalendarSettings,
    ConnectedCalendar,
    Connection,
    ConnectionStatus,
    CredentialKind,
    EventLink,
    ExternalEvent,
    PendingAuthorization,
    Principal,
    ProviderCalendar,
    StoredConnection,
    SyncPreferences,
    busy_span,
    event_end,
)
from crmsync.domain.contacts import ContactsSync
from crmsync.domain.ids import check_id
from crmsync.domain.mail_sync import MailSync
from crmsync.domain.sweeps import Sweep, sweep_key
from crmsync.errors import BookingConflict, Conflict, OAuthStateError
from crmsync.guard import Decision, GuardedResource, PendingDeletions
from crmsync.models.appointment import APPOINTMENT_SK_PREFIX, PUSH_DUE_SHARDS, push_due_at_key
from crmsync.models.calendar import CALENDAR_SK_PREFIX, calendar_sk
from crmsync.models.connection import CONNECTION_SK_PREFIX
from crmsync.models.guard import PENDING_DELETIONS_SK_PREFIX, pending_deletions_sk
from crmsync.models.keys import user_pk
from crmsync.models.settings import CALENDAR_SETTINGS_SK
from crmsync.models.sync import SYNC_SK_PREFIX, external_prefix, sync_sk, unlisted_sk
from crmsync.security.secrets import same

__all__ = [
    "FakeAppointmentStore",
    "FakeCalendarStore",
    "FakeChannelStore",
    "FakeConnectionStore",
    "FakeMirrorStore",
    "FakeOAuthStateStore",
    "FakePendingDeletionsStore",
    "FakeSettingsStore",
    "FakeStores",
    "FakeTable",
]

Clock = Callable[[], datetime]
T = TypeVar("T")

#: How many times the real store retries a booking whose transaction was cancelled.
_BOOKING_ATTEMPTS = 8


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    """A moment as PynamoDB's ``UTCDateTimeAttribute`` gives it back (aware, in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _opt_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _condition_failed(error: type[PutError] | type[UpdateError], operation: str) -> Exception:
    """The error PynamoDB raises when a write's condition fails (``crmsync.dal.condition_failed``
    recognises it)."""
    cause = ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}},
        operation,
    )
    return error("Failed to " + operation, cause)


def _pk(principal: Principal) -> str:
    return user_pk(principal.tenant_id, principal.user_id)  # raises ValueError on a bad id, as the stores do


def _valid(kind: str, value: str) -> bool:
    try:
        check_id(kind, value)
    except ValueError:
        return False
    return True


class FakeTable:
    """The connections table: items by ``(pk, sk)``, read in sort-key order like a query."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], object] = {}

    def get(self, pk: str, sk: str, kind: type[T]) -> T | None:
        item = self.items.get((pk, sk))
        return item if isinstance(item, kind) else None

    def put(self, pk: str, sk: str, item: object) -> None:
        self.items[(pk, sk)] = item

    def delete(self, pk: str, sk: str) -> None:
        self.items.pop((pk, sk), None)

    def query(self, pk: str, prefix: str, kind: type[T]) -> list[tuple[str, T]]:
        """``(sk, item)`` of the partition's items of ``kind`` whose sort key starts with ``prefix``."""
        found = [
            (sk, item)
            for (p, sk), item in self.items.items()
            if p == pk and sk.startswith(prefix) and isinstance(item, kind)
        ]
        return sorted(found, key=lambda pair: pair[0])

    def scan(self, prefix: str, kind: type[T]) -> list[T]:
        return [item for (_, sk), item in self.items.items() if sk.startswith(prefix) and isinstance(item, kind)]


# --- connections ---------------------------------------------------------------------------


#: The fake's stand-in for ``poll_shard`` (the sparse polled_connections index).
POLLED_SK_PREFIX = "POLLED#"


@dataclass(frozen=True)
class _Polled:
    """Marks a connection whose calendars the scheduled poll lists."""


class FakeConnectionStore:
    """:class:`crmsync.dal.connections.ConnectionStore`, in memory."""

    def __init__(self, table: FakeTable, clock: Clock = _now) -> None:
        self._table = table
        self._clock = clock

    def _stored(self, principal: Principal, connection_id: str) -> StoredConnection | None:
        if not _valid("connection", connection_id):
            return None
        return self._table.get(_pk(principal), CONNECTION_SK_PREFIX + connection_id, StoredConnection)

    def get(self, principal: Principal, connection_id: str) -> Connection | None:
        stored = self._stored(principal, connection_id)
        return stored.connection if stored else None

    def list(self, principal: Principal) -> list[Connection]:
        items = self._table.query(_pk(principal), CONNECTION_SK_PREFIX, StoredConnection)
        return sorted((s.connection for _, s in items), key=lambda c: (c.created_at, c.email))

    def get_stored(self, principal: Principal, connection_id: str) -> StoredConnection | None:
        return self._stored(principal, connection_id)

    def upsert(
        self,
        principal: Principal,
        *,
        connection_id: str,
        provider: str,
        subject: str,
        email: str,
        display_name: str | None,
        scopes: tuple[str, ...],
        credential_ciphertext: bytes | None,
        credential_kind: CredentialKind = CredentialKind.OAUTH_TOKENS,
        polled: bool = False,
    ) -> Connection:
        now = _utc(self._clock())
        pk = _pk(principal)
        stored = self._stored(principal, connection_id)
        if stored is None:
            if credential_ciphertext is None:
                raise Conflict(f"{provider.title()} returned no refresh token for a new connection.")
            created_at, ciphertext, kind, version = now, credential_ciphertext, credential_kind, 0
        else:
            old = stored.connection
            if old.subject != subject or old.provider != provider:
                raise Conflict("The connection id belongs to another account.")
            created_at, ciphertext, kind, version = (
                old.created_at,
                stored.credential_ciphertext,
                old.credential_kind,
                stored.version,
            )
            if credential_ciphertext is not None:
                ciphertext, kind = credential_ciphertext, credential_kind
        if credential_ciphertext is not None:
            # The sparse polled_connections index: a marker item beside the connection.
            if polled or credential_kind is CredentialKind.APP_PASSWORD:
                self._table.put(pk, POLLED_SK_PREFIX + connection_id, _Polled())
            else:
                self._table.delete(pk, POLLED_SK_PREFIX + connection_id)
        connection = Connection(
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            connection_id=connection_id,
            provider=provider,
            subject=subject,
            email=email,
            display_name=display_name,
            scopes=tuple(sorted(set(scopes))),
            status=ConnectionStatus.CONNECTED,
            status_reason=None,
            created_at=created_at,
            updated_at=now,
            last_checked_at=now,
            credential_kind=CredentialKind(kind),
        )
        self._table.put(pk, CONNECTION_SK_PREFIX + connection_id, StoredConnection(connection, ciphertext, version + 1))
        return connection

    def set_status(
        self,
        principal: Principal,
        connection_id: str,
        status: ConnectionStatus,
        reason: str | None,
        *,
        version: int,
        credential_ciphertext: bytes | None = None,
    ) -> Connection | None:
        now = _utc(self._clock())
        pk = _pk(principal)
        stored = self._table.get(pk, CONNECTION_SK_PREFIX + connection_id, StoredConnection)
        if stored is None or stored.version != version:
            return None  # the connection changed since (or is gone): the newer state wins
        connection = replace(
            stored.connection, status=status, status_reason=reason or None, last_checked_at=now, updated_at=now
        )
        renewed = stored.credential_ciphertext if credential_ciphertext is None else credential_ciphertext
        self._table.put(
            pk,
            CONNECTION_SK_PREFIX + connection_id,
            replace(stored, connection=connection, version=version + 1, credential_ciphertext=renewed),
        )
        return connection

    def renew_credential(
        self, principal: Principal, connection_id: str, credential_ciphertext: bytes, *, version: int
    ) -> int | None:
        pk = _pk(principal)
        stored = self._table.get(pk, CONNECTION_SK_PREFIX + connection_id, StoredConnection)
        if stored is None or stored.version != version:
            return None
        connection = replace(stored.connection, updated_at=_utc(self._clock()))
        self._table.put(
            pk,
            CONNECTION_SK_PREFIX + connection_id,
            replace(stored, connection=connection, version=version + 1, credential_ciphertext=credential_ciphertext),
        )
        return version + 1

    def delete(self, principal: Principal, connection_id: str) -> bool:
        if self._stored(principal, connection_id) is None:
            return False
        self._table.delete(_pk(principal), CONNECTION_SK_PREFIX + connection_id)
        self._table.delete(_pk(principal), POLLED_SK_PREFIX + connection_id)
        return True

    def all_keys(self) -> Iterator[tuple[Principal, str]]:
        for stored in self._table.scan(CONNECTION_SK_PREFIX, StoredConnection):
            c = stored.connection
            yield Principal(c.tenant_id, c.user_id), c.connection_id

    def due(self, key: str) -> Iterator[tuple[Principal, str]]:
        for principal, connection_id in self.all_keys():
            if sweep_key(Sweep.HEALTH, principal.tenant_id, principal.user_id, connection_id) == key:
                yield principal, connection_id

    def of_providers(self, providers: frozenset[str]) -> Iterator[tuple[Principal, str, ConnectionStatus]]:
        for stored in self._table.scan(CONNECTION_SK_PREFIX, StoredConnection):
            c = stored.connection
            polled = self._table.get(_pk(c.principal), POLLED_SK_PREFIX + c.connection_id, _Polled)
            if c.provider in providers and polled is not None:
                yield Principal(c.tenant_id, c.user_id), c.connection_id, c.status


# --- settings ------------------------------------------------------------------------------


def _stored_settings(settings: CalendarSettings) -> CalendarSettings:
    """The settings as the item keeps them: a link needs both ids."""
    linked = settings.linked
    if linked is not None and not (linked.connection_id and linked.calendar_id):
        linked = None
    p = settings.preferences
    return CalendarSettings(
        linked=CalendarRef(linked.connection_id, linked.calendar_id) if linked else None,
        preferences=SyncPreferences(
            p.direction, p.external_deletion, int(p.window_days_back), int(p.window_days_ahead)
        ),
    )


class FakeSettingsStore:
    """:class:`crmsync.dal.settings.SettingsStore`, in memory."""

    def __init__(self, table: FakeTable) -> None:
        self._table = table

    def get(self, principal: Principal) -> CalendarSettings:
        stored = self._table.get(_pk(principal), CALENDAR_SETTINGS_SK, CalendarSettings)
        return stored or CalendarSettings(linked=None, preferences=SyncPreferences())

    def save(self, principal: Principal, settings: CalendarSettings) -> CalendarSettings:
        self._table.put(_pk(principal), CALENDAR_SETTINGS_SK, _stored_settings(settings))
        return settings


# --- calendars -----------------------------------------------------------------------------


class FakeCalendarStore:
    """:class:`crmsync.dal.calendars.CalendarStore`, in memory."""

    def __init__(self, table: FakeTable, clock: Clock = _now) -> None:
        self._table = table
        self._clock = clock

    def of_user(self, principal: Principal, connection_id: str | None = None) -> list[ConnectedCalendar]:
        prefix = calendar_sk(connection_id) if connection_id else CALENDAR_SK_PREFIX
        return [c for _, c in self._table.query(_pk(principal), prefix, ConnectedCalendar)]

    def replace_for_connection(
        self, principal: Principal, connection_id: str, account_email: str, calendars: Iterable[ProviderCalendar]
    ) -> list[ConnectedCalendar]:
        pk = _pk(principal)
        existing = {c.calendar_id: c for c in self.of_user(principal, connection_id)}
        now = _utc(self._clock())
        wanted = {c.calendar_id: c for c in calendars}
        for calendar in wanted.values():
            known = existing.get(calendar.calendar_id)
            self._table.put(
                pk,
                calendar_sk(connection_id, calendar.calendar_id),
                ConnectedCalendar(
                    connection_id=connection_id,
                    calendar_id=calendar.calendar_id,
                    account_email=account_email,
                    name=calendar.name,
                    access_role=calendar.access_role,
                    primary=bool(calendar.primary),
                    color=calendar.color,
                    time_zone=calendar.time_zone,
                    conflict=known.conflict if known else bool(calendar.primary),
                    refreshed_at=now,
                ),
            )
        for gone in existing.keys() - wanted.keys():
            self._table.delete(pk, calendar_sk(connection_id, gone))
        return self.of_user(principal, connection_id)

    def set_conflict(self, principal: Principal, chosen: set[tuple[str, str]]) -> list[ConnectedCalendar]:
        pk = _pk(principal)
        for calendar in self.of_user(principal):
            wanted = (calendar.connection_id, calendar.calendar_id) in chosen
            if wanted != calendar.conflict:
                sk = calendar_sk(calendar.connection_id, calendar.calendar_id)
                self._table.put(pk, sk, replace(calendar, conflict=wanted))
        return self.of_user(principal)

    def delete_for_connection(self, principal: Principal, connection_id: str) -> None:
        pk = _pk(principal)
        for calendar in self.of_user(principal, connection_id):
            self._table.delete(pk, calendar_sk(connection_id, calendar.calendar_id))


# --- held deletions ------------------------------------------------------------------------


def _pending_sk(resource: GuardedResource) -> str:
    return pending_deletions_sk(resource.kind, resource.connection_id, resource.resource_id)


def _version_matches(stored: int | None, read: int | None, exists: bool) -> bool:
    """PynamoDB's version condition: ``version = read`` (the item must exist), or
    ``attribute_not_exists(version)`` when nothing was read."""
    if read is None:
        return not exists or stored is None
    return exists and stored == read


class FakePendingDeletionsStore:
    """:class:`crmsync.dal.guard.PendingDeletionsStore`, in memory."""

    def __init__(self, table: FakeTable, clock: Clock = _now) -> None:
        self._table = table
        self._clock = clock

    def get(self, principal: Principal, resource: GuardedResource) -> PendingDeletions | None:
        return self._table.get(_pk(principal), _pending_sk(resource), PendingDeletions)

    def of_user(self, principal: Principal, kind: str | None = None) -> list[PendingDeletions]:
        prefix = PENDING_DELETIONS_SK_PREFIX + (f"{kind}#" if kind else "")
        return [p for _, p in self._table.query(_pk(principal), prefix, PendingDeletions)]

    def hold(self, principal: Principal, held: PendingDeletions, read: PendingDeletions | None) -> None:
        pk, sk = _pk(principal), _pending_sk(held.resource)
        stored = self._table.get(pk, sk, PendingDeletions)
        if read is None:
            if stored is not None:
                raise Conflict("The held deletions changed meanwhile.")
            version = 1
        else:
            if not _version_matches(stored.version if stored else None, read.version, stored is not None):
                raise Conflict("The held deletions changed meanwhile.")
            version = (read.version or 0) + 1
        self._table.put(
            pk,
            sk,
            PendingDeletions(
                resource=held.resource,
                deletions=int(held.deletions),
                mirrored=int(held.mirrored),
                complete=bool(held.complete),
                detected_at=_utc(held.detected_at),
                decision=None,  # a whole new record: any earlier answer is gone
                version=version,
            ),
        )

    def decide(self, principal: Principal, resource: GuardedResource, decision: Decision) -> PendingDeletions | None:
        pk, sk = _pk(principal), _pending_sk(resource)
        stored = self._table.get(pk, sk, PendingDeletions)
        if stored is None:
            return None
        decided = replace(stored, decision=Decision(decision.value), version=(stored.version or 0) + 1)
        self._table.put(pk, sk, decided)
        return decided

    def clear(self, principal: Principal, read: PendingDeletions) -> None:
        pk, sk = _pk(principal), _pending_sk(read.resource)
        stored = self._table.get(pk, sk, PendingDeletions)
        if not _version_matches(stored.version if stored else None, read.version, stored is not None):
            raise Conflict("The held deletions changed meanwhile.")
        self._table.delete(pk, sk)

    def forget(self, principal: Principal, resource: GuardedResource) -> None:
        self._table.delete(_pk(principal), _pending_sk(resource))


# --- mirror --------------------------------------------------------------------------------


@dataclass
class _SyncState:
    """A calendar's sync-state item (every attribute may be missing: ``None``)."""

    connection_id: str
    calendar_id: str
    version: int | None = None
    sync_token: str | None = None
    window_start: datetime | None = None
    full_syncs: int = 0
    channel_id: str | None = None
    channel_resource_id: str | None = None
    channel_expires_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    events_so_far: int | None = None

    def cursor(self) -> SyncCursor:
        return SyncCursor(
            self.sync_token,
            self.window_start,
            self.version,
            self.full_syncs,
            self.channel_id,
            self.channel_resource_id,
            self.channel_expires_at,
            self.last_success_at,
            self.last_error,
            self.last_error_at,
            self.events_so_far,
        )


def _mirrored(event: ExternalEvent) -> ExternalEvent:
    """An event as the mirror keeps it (zone and type are not mirrored)."""
    return ExternalEvent(
        event_id=event.event_id,
        cancelled=False,
        start=_opt_utc(event.start),
        end=_opt_utc(event.end),
        start_date=event.start_date,
        end_date=event.end_date,
        transparent=bool(event.transparent),
        declined=bool(event.declined),
        summary=event.summary,
        etag=event.etag,
        crm_appointment_id=event.crm_appointment_id,
    )


def _end_of(event: ExternalEvent) -> datetime | None:
    return event_end(event.end, event.end_date)


@dataclass
class _Unlisted:
    """:class:`crmsync.models.sync.UnlistedEventsItem`."""

    event_ids: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)

    def frozen(self) -> tuple[frozenset[str], frozenset[str]]:
        return frozenset(self.event_ids), frozenset(self.seen)


class FakeMirrorStore:
    """:class:`crmsync.dal.mirror.MirrorStore`, in memory. Reads the connection, settings,
    calendar and held deletions that the other fakes of the same table wrote."""

    def __init__(self, table: FakeTable, clock: Clock = _now) -> None:
        self._table = table
        self._clock = clock

    def _state(self, principal: Principal, connection_id: str, calendar_id: str) -> _SyncState | None:
        return self._table.get(_pk(principal), sync_sk(connection_id, calendar_id), _SyncState)

    def cursor(self, principal: Principal, connection_id: str, calendar_id: str) -> SyncCursor:
        state = self._state(principal, connection_id, calendar_id)
        return state.cursor() if state else SyncCursor(None, None, None, 0)

    def sync_inputs(self, principal: Principal, connection_id: str, calendar_id: str) -> SyncInputs:
        pk = _pk(principal)
        defaults = CalendarSettings(linked=None, preferences=SyncPreferences())
        if not _valid("connection", connection_id):
            return SyncInputs(None, SyncCursor(None, None, None, 0), defaults, None)
        state = self._table.get(pk, sync_sk(connection_id, calendar_id), _SyncState)
        return SyncInputs(
            self._table.get(pk, CONNECTION_SK_PREFIX + connection_id, StoredConnection),
            state.cursor() if state else SyncCursor(None, None, None, 0),
            self._table.get(pk, CALENDAR_SETTINGS_SK, CalendarSettings) or defaults,
            self._table.get(pk, calendar_sk(connection_id, calendar_id), ConnectedCalendar),
            self._table.get(pk, _pending_sk(calendar_resource(connection_id, calendar_id)), PendingDeletions),
            *(self._table.get(pk, unlisted_sk(connection_id, calendar_id), _Unlisted) or _Unlisted()).frozen(),
        )

    def _unlisted(self, principal: Principal, connection_id: str, calendar_id: str) -> _Unlisted:
        pk, sk = _pk(principal), unlisted_sk(connection_id, calendar_id)
        found = self._table.get(pk, sk, _Unlisted)
        if found is None:
            found = _Unlisted()
            self._table.put(pk, sk, found)
        return found

    def record_unlisted(self, principal: Principal, connection_id: str, calendar_id: str, event_id: str) -> None:
        self._unlisted(principal, connection_id, calendar_id).event_ids.add(event_id)

    def settle_unlisted(
        self, principal: Principal, connection_id: str, calendar_id: str, *, done: set[str], seen: set[str]
    ) -> None:
        unlisted = self._unlisted(principal, connection_id, calendar_id)
        unlisted.event_ids -= done
        unlisted.seen = set(seen)

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
        pk, sk = _pk(principal), sync_sk(connection_id, calendar_id)
        stored = self._table.get(pk, sk, _SyncState)
        if not _version_matches(stored.version if stored else None, read.version, stored is not None):
            raise Conflict("Another sync advanced this calendar's cursor.")
        self._table.put(
            pk,
            sk,
            _SyncState(  # a whole new item: the error and the progress counter are gone
                connection_id=connection_id,
                calendar_id=calendar_id,
                version=(read.version or 0) + 1,
                sync_token=sync_token,
                window_start=_opt_utc(window_start),
                last_success_at=_utc(self._clock()),
                full_syncs=read.full_syncs + (1 if full else 0),
                channel_id=read.channel_id,
                channel_resource_id=read.channel_resource_id,
                channel_expires_at=_opt_utc(read.channel_expires_at),
            ),
        )

    def _upsert_state(self, principal: Principal, connection_id: str, calendar_id: str) -> _SyncState:
        pk, sk = _pk(principal), sync_sk(connection_id, calendar_id)
        state = self._table.get(pk, sk, _SyncState)
        if state is None:
            state = _SyncState(connection_id, calendar_id)
            self._table.put(pk, sk, state)
        state.connection_id, state.calendar_id = connection_id, calendar_id
        return state

    def record_failure(self, principal: Principal, connection_id: str, calendar_id: str, error: str) -> None:
        state = self._upsert_state(principal, connection_id, calendar_id)
        state.last_error = error[:MAX_ERROR]
        state.last_error_at = _utc(self._clock())
        state.events_so_far = None
        state.version = (state.version or 0) + 1  # moves the version: a sync that read before re-reads

    def record_progress(self, principal: Principal, connection_id: str, calendar_id: str, events_so_far: int) -> None:
        state = self._upsert_state(principal, connection_id, calendar_id)
        state.events_so_far = events_so_far  # the version stays

    def set_channel(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        channel_id: str,
        resource_id: str,
        expires_at: datetime,
    ) -> None:
        state = self._state(principal, connection_id, calendar_id)
        if state is None:
            raise _condition_failed(UpdateError, "update_item")
        state.channel_id = channel_id
        state.channel_resource_id = resource_id
        state.channel_expires_at = _utc(expires_at)
        state.version = (state.version or 0) + 1

    def events(self, principal: Principal, connection_id: str, calendar_id: str) -> list[ExternalEvent]:
        prefix = external_prefix(connection_id, calendar_id)
        return [e for _, e in self._table.query(_pk(principal), prefix, ExternalEvent)]

    def apply(
        self, principal: Principal, connection_id: str, calendar_id: str, changes: Iterable[ExternalEvent]
    ) -> int:
        pk, prefix = _pk(principal), external_prefix(connection_id, calendar_id)
        final: dict[str, ExternalEvent | None] = {}
        for change in changes:
            final[change.event_id] = None if change.cancelled else change
        for event_id, event in final.items():
            if event is None:
                self._table.delete(pk, prefix + event_id)
            else:
                self._table.put(pk, prefix + event_id, _mirrored(event))
        return len(final)

    def event_ids(self, principal: Principal, connection_id: str, calendar_id: str) -> set[str]:
        return {e.event_id for e in self.events(principal, connection_id, calendar_id)}

    def event_ends(self, principal: Principal, connection_id: str, calendar_id: str) -> dict[str, datetime | None]:
        return {e.event_id: _end_of(e) for e in self.events(principal, connection_id, calendar_id)}

    def remove(self, principal: Principal, connection_id: str, calendar_id: str, event_ids: set[str]) -> int:
        pk, prefix = _pk(principal), external_prefix(connection_id, calendar_id)
        for event_id in event_ids:
            self._table.delete(pk, prefix + event_id)
        return len(event_ids)

    def synced_calendars(self, principal: Principal, connection_id: str) -> list[tuple[str, SyncCursor]]:
        return [(c, cursor) for _, c, cursor in self.synced(principal, connection_id)]

    def forget_unlisted(self, principal: Principal, connection_id: str) -> None:
        pk = _pk(principal)
        for sk, _ in self._table.query(pk, unlisted_sk(connection_id, ""), _Unlisted):
            self._table.delete(pk, sk)

    def synced(self, principal: Principal, connection_id: str | None = None) -> list[tuple[str, str, SyncCursor]]:
        prefix = sync_sk(connection_id, "") if connection_id else SYNC_SK_PREFIX
        return [
            (s.connection_id, s.calendar_id, s.cursor())
            for _, s in self._table.query(_pk(principal), prefix, _SyncState)
        ]

    def forget(self, principal: Principal, connection_id: str, calendar_id: str) -> None:
        """Delete the calendar's events, cursor and held deletions. (The real store also drops
        the calendar's sync-request mark, which no fake here keeps.)"""
        pk, prefix = _pk(principal), external_prefix(connection_id, calendar_id)
        for event in self.events(principal, connection_id, calendar_id):
            self._table.delete(pk, prefix + event.event_id)
        self._table.delete(pk, sync_sk(connection_id, calendar_id))
        self._table.delete(pk, _pending_sk(calendar_resource(connection_id, calendar_id)))
        self._table.delete(pk, unlisted_sk(connection_id, calendar_id))


# --- appointments --------------------------------------------------------------------------


@dataclass
class _AppointmentItem:
    appointment: Appointment
    #: ``push_due_at_key`` of the moment it was marked as not pushed yet (``None``: not marked).
    push_due_at: str | None


def _push_due_shard(appointment_id: str) -> int:
    return zlib.crc32(appointment_id.encode()) % PUSH_DUE_SHARDS


def _kept_link(link: EventLink | None) -> EventLink | None:
    """A link as the item keeps it: all three ids, or none."""
    if link is None or not (link.connection_id and link.calendar_id and link.event_id):
        return None
    return EventLink(link.connection_id, link.calendar_id, link.event_id, link.etag)


class FakeAppointmentStore:
    """:class:`crmsync.dal.appointments.AppointmentStore`, in memory."""

    def __init__(self, table: FakeTable, clock: Clock = _now) -> None:
        self._table = table
        self._clock = clock

    def _item(self, principal: Principal, appointment_id: str) -> _AppointmentItem | None:
        pk = _pk(principal)
        if not _valid("appointment", appointment_id):
            return None
        return self._table.get(pk, APPOINTMENT_SK_PREFIX + appointment_id, _AppointmentItem)

    def _put(self, item: _AppointmentItem) -> Appointment:
        a = item.appointment
        self._table.put(user_pk(a.tenant_id, a.user_id), APPOINTMENT_SK_PREFIX + a.appointment_id, item)
        return a

    def get(self, principal: Principal, appointment_id: str) -> Appointment | None:
        item = self._item(principal, appointment_id)
        return item.appointment if item else None

    def get_many(self, principal: Principal, appointment_ids: Iterable[str]) -> dict[str, Appointment]:
        _pk(principal)
        found: dict[str, Appointment] = {}
        for appointment_id in sorted({i for i in appointment_ids if _valid("appointment", i)}):
            item = self._item(principal, appointment_id)
            if item is not None:
                found[appointment_id] = item.appointment
        return found

    def between(
        self, principal: Principal, start: datetime | None = None, end: datetime | None = None
    ) -> list[Appointment]:
        out = [i.appointment for _, i in self._table.query(_pk(principal), APPOINTMENT_SK_PREFIX, _AppointmentItem)]
        if start is not None:  # the index is read from MAX_APPOINTMENT_DURATION before the start
            out = [a for a in out if a.start >= start - MAX_APPOINTMENT_DURATION and a.end > start]
        if end is not None:
            out = [a for a in out if a.start < end]
        return sorted(out, key=lambda a: (a.start, a.appointment_id))

    def _check_free(self, principal: Principal, appointment_id: str, fields: AppointmentFields) -> None:
        clashes = [
            a
            for a in self.between(principal, fields.start, fields.end)
            if a.status is AppointmentStatus.CONFIRMED and a.appointment_id != appointment_id and a.end > a.start
        ]
        if clashes:
            raise BookingConflict(
                "The time is already booked: "
                + "; ".join(f"{c.title} ({busy_span(c.start, c.end, fields.time_zone)})" for c in clashes)
                + ".",
                [
                    {
                        "start": c.start.isoformat(),
                        "end": c.end.isoformat(),
                        "source": "crm",
                        "calendar": None,
                        "event": c.title,
                    }
                    for c in clashes
                ],
            )

    def _new(
        self, principal: Principal, appointment_id: str, fields: AppointmentFields, link: EventLink | None
    ) -> _AppointmentItem:
        now = _utc(self._clock())
        kept = _kept_link(link)
        appointment = _with_fields(
            Appointment(
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                appointment_id=appointment_id,
                title="",
                start=now,
                end=now,
                time_zone="",
                status=AppointmentStatus.CONFIRMED,
                contact_id=None,
                attendees=(),
                location=None,
                description=None,
                created_at=now,
                updated_at=now,
                revision=1,
                link=kept,
                pushed_revision=1 if link else 0,
                push_error=None,
            ),
            fields,
            now,
        )
        return _AppointmentItem(appointment, None if link else push_due_at_key(now))

    def create(self, principal: Principal, appointment_id: str, fields: AppointmentFields) -> Appointment:
        _pk(principal)
        self._check_free(principal, appointment_id, fields)
        if self._item(principal, appointment_id) is not None:
            # The real transaction's "does not exist" check fails on every attempt.
            raise Conflict("The schedule is changing too fast; try again.")
        return self._put(self._new(principal, appointment_id, fields, None))

    def change(
        self, principal: Principal, appointment_id: str, fields: AppointmentFields, status: AppointmentStatus
    ) -> Appointment | None:
        if status is AppointmentStatus.CONFIRMED:
            _pk(principal)
            self._check_free(principal, appointment_id, fields)  # before the item is read, as the real store does
        item = self._item(principal, appointment_id)
        if item is None:
            return None
        now = _utc(self._clock())
        old = item.appointment
        changed = replace(
            _with_fields(old, fields, now),
            status=AppointmentStatus(status.value),
            revision=old.revision + 1,
            push_error=None,
        )
        return self._put(_AppointmentItem(changed, push_due_at_key(now)))

    def by_event(self, principal: Principal, connection_id: str, calendar_id: str) -> dict[str, Appointment]:
        return {
            a.link.event_id: a
            for a in self.between(principal, None, None)
            if a.link and (a.link.connection_id, a.link.calendar_id) == (connection_id, calendar_id)
        }

    def import_event(
        self, principal: Principal, appointment_id: str, fields: AppointmentFields, link: EventLink
    ) -> Appointment | None:
        item = self._new(principal, appointment_id, fields, link)
        if self._table.get(_pk(principal), APPOINTMENT_SK_PREFIX + appointment_id, _AppointmentItem) is not None:
            return None
        return self._put(item)

    def absorb_change(
        self,
        principal: Principal,
        appointment: Appointment,
        fields: AppointmentFields,
        status: AppointmentStatus,
        link: EventLink | None,
    ) -> Appointment | None:
        item = self._item(principal, appointment.appointment_id)
        if item is None or item.appointment.revision != appointment.revision:
            return None
        now = _utc(self._clock())
        revision = item.appointment.revision + 1
        changed = replace(
            _with_fields(item.appointment, fields, now),
            status=AppointmentStatus(status.value),
            revision=revision,
            pushed_revision=revision,
            push_error=None,
            link=_kept_link(link),
        )
        return self._put(_AppointmentItem(changed, None))

    def detach(self, principal: Principal, appointment: Appointment) -> Appointment | None:
        item = self._item(principal, appointment.appointment_id)
        if item is None or item.appointment.revision != appointment.revision:
            return None
        now = _utc(self._clock())
        changed = replace(
            item.appointment, revision=item.appointment.revision + 1, push_error=None, updated_at=now, link=None
        )
        return self._put(_AppointmentItem(changed, push_due_at_key(now)))

    def record_push(
        self, principal: Principal, appointment_id: str, revision: int, link: EventLink | None, error: str | None = None
    ) -> bool:
        item = self._table.get(_pk(principal), APPOINTMENT_SK_PREFIX + appointment_id, _AppointmentItem)
        if item is None or item.appointment.pushed_revision > revision:
            return False  # never moves back
        kept = _kept_link(link)
        if kept is not None and not kept.etag:
            kept = replace(kept, etag=None)  # an empty etag is removed, not set
        item.appointment = replace(item.appointment, pushed_revision=revision, push_error=error or None, link=kept)
        self.clear_push_due(principal, appointment_id, revision)
        return True

    def clear_push_due(self, principal: Principal, appointment_id: str, revision: int) -> bool:
        item = self._table.get(_pk(principal), APPOINTMENT_SK_PREFIX + appointment_id, _AppointmentItem)
        if item is None or item.appointment.revision != revision:
            return False
        item.push_due_at = None
        return True

    def pushes_due(self, before: datetime) -> Iterator[DuePush]:
        marked = [i for i in self._table.scan(APPOINTMENT_SK_PREFIX, _AppointmentItem) if i.push_due_at is not None]
        limit = push_due_at_key(before)
        for shard in range(PUSH_DUE_SHARDS):
            due = [
                i
                for i in marked
                if _push_due_shard(i.appointment.appointment_id) == shard and (i.push_due_at or "") < limit
            ]
            for item in sorted(due, key=lambda i: i.push_due_at or ""):
                a = item.appointment
                yield DuePush(Principal(a.tenant_id, a.user_id), a.appointment_id, a.revision, a.pushed_revision)


def _with_fields(appointment: Appointment, fields: AppointmentFields, now: datetime) -> Appointment:
    return replace(
        appointment,
        title=fields.title,
        start=fields.start.astimezone(UTC),
        end=fields.end.astimezone(UTC),
        time_zone=fields.time_zone,
        contact_id=fields.contact_id,
        attendees=tuple(fields.attendees),
        location=fields.location,
        description=fields.description,
        updated_at=now,
    )


# --- OAuth states and channels (tables of their own / unguessable keys) ---------------------


class FakeOAuthStateStore:
    """:class:`crmsync.dal.oauth_states.OAuthStateStore`, in memory."""

    def __init__(self, clock: Clock = _now) -> None:
        self._clock = clock
        self.states: dict[str, PendingAuthorization] = {}

    def put(self, state: str, pending: PendingAuthorization) -> None:
        if state in self.states:
            raise _condition_failed(PutError, "put_item")
        self.states[state] = replace(
            pending,
            scopes=tuple(sorted(set(pending.scopes))),
            created_at=_utc(pending.created_at),
            # A TTL attribute: whole seconds, the fraction cut off.
            expires_at=_utc(pending.expires_at).replace(microsecond=0),
        )

    def consume(self, state: str, *, binding_hash: str, provider: str) -> PendingAuthorization:
        pending = self.states.get(state)
        if pending is None:
            raise OAuthStateError(OAuthStateError.UNKNOWN, "The sign-in link is unknown or was already used.")
        if pending.provider != provider or not same(pending.binding_hash, binding_hash):
            raise OAuthStateError(OAuthStateError.MISMATCH, "The sign-in was started in another browser session.")
        del self.states[state]  # used once, even when it turns out expired
        if pending.expires_at <= _utc(self._clock()):
            raise OAuthStateError(OAuthStateError.EXPIRED, "The sign-in took too long; start again.")
        return pending


class FakeChannelStore:
    """:class:`crmsync.dal.channels.ChannelStore`, in memory."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}

    def get(self, channel_id: str) -> Channel | None:
        if not channel_id or len(channel_id) > 64:
            return None
        return self.channels.get(channel_id)

    def put(self, channel: Channel) -> None:
        self.channels[channel.channel_id] = replace(channel, expires_at=_utc(channel.expires_at))

    def delete(self, channel_id: str) -> None:
        self.channels.pop(channel_id, None)


class FakeContactSyncStores:
    """The contacts sync's mirror and candidates, as far as disconnecting uses them: what
    :meth:`crmsync.sync.contact_sync.ContactSync.forget_connection` calls. ``forgotten``
    lists the ``(principal, connection)`` pairs it forgot. The contacts sync itself runs on
    DynamoDB Local (tests/integration/test_contact_sync.py)."""

    def __init__(self) -> None:
        self.forgotten: list[tuple[Principal, str]] = []
        self.candidates_deleted: list[tuple[Principal, str]] = []

    def forget(self, principal: Principal, connection_id: str) -> None:
        self.forgotten.append((principal, connection_id))

    def delete_connection(self, principal: Principal, connection_id: str) -> int:
        self.candidates_deleted.append((principal, connection_id))
        return 0


class FakeContactsSyncStore:
    """:class:`crmsync.dal.contacts_sync.ContactsSyncStore`, in memory."""

    def __init__(self, clock: Clock = _now) -> None:
        self._clock = clock
        self.settings: dict[Principal, ContactsSync] = {}

    def get(self, principal: Principal) -> ContactsSync:
        return self.settings.get(principal, ContactsSync())

    def set(self, principal: Principal, connection_id: str | None, *, link_primary: bool = False) -> ContactsSync:
        current = self.get(principal)
        enabled_at = current.enabled_at
        if current.connection_id != connection_id:
            enabled_at = _utc(self._clock()) if connection_id else None
        self.settings[principal] = ContactsSync(
            connection_id, enabled_at, current.version + 1, bool(connection_id and link_primary)
        )
        return self.settings[principal]

    def linked_primary(self, principal: Principal) -> None:
        current = self.get(principal)
        if current.link_primary:
            self.settings[principal] = replace(current, link_primary=False, version=current.version + 1)

    def enabled(self) -> Iterator[tuple[Principal, str]]:
        for principal, current in self.settings.items():
            if current.connection_id:
                yield principal, current.connection_id

    def due(self, key: str) -> Iterator[tuple[Principal, str]]:
        for principal, connection_id in self.enabled():
            if sweep_key(Sweep.CONTACTS, principal.tenant_id, principal.user_id) == key:
                yield principal, connection_id


class FakeMailSyncStore:
    """:class:`crmsync.dal.mail_sync.MailSyncStore` and :class:`MailboxDirectory`, in memory."""

    def __init__(self, clock: Clock = _now) -> None:
        self._clock = clock
        self.settings: dict[Principal, MailSync] = {}
        self.mailboxes: dict[tuple[str, Principal], str] = {}

    def get(self, principal: Principal) -> MailSync:
        return self.settings.get(principal, MailSync())

    def _put(self, principal: Principal, value: MailSync) -> MailSync:
        self.settings[principal] = replace(value, version=self.get(principal).version + 1)
        return self.settings[principal]

    def enable(self, principal: Principal, connection_id: str, account_email: str, window_days: int) -> MailSync:
        current = self.get(principal)
        if current.connection_id != connection_id:
            current = MailSync(connection_id=connection_id, enabled_at=_utc(self._clock()))
        return self._put(principal, replace(current, account_email=account_email, window_days=window_days))

    def set_window(self, principal: Principal, window_days: int) -> MailSync:
        return self._put(principal, replace(self.get(principal), window_days=window_days))

    def disable(self, principal: Principal) -> MailSync:
        before = self.get(principal)
        self._put(principal, MailSync(window_days=before.window_days))
        return before

    def enabled(self) -> Iterator[tuple[Principal, MailSync]]:
        for principal, current in self.settings.items():
            if current.connection_id:
                yield principal, current

    def due(self, key: str) -> Iterator[tuple[Principal, str]]:
        for principal, current in self.enabled():
            if current.connection_id and sweep_key(Sweep.MAIL, principal.tenant_id, principal.user_id) == key:
                yield principal, current.connection_id

    def register(self, principal: Principal, connection_id: str, email: str) -> None:
        self.mailboxes[(email.lower(), principal)] = connection_id

    def unregister(self, principal: Principal, email: str) -> None:
        self.mailboxes.pop((email.lower(), principal), None)

    def owners(self, email: str) -> list[tuple[Principal, str]]:
        return [(p, c) for (e, p), c in self.mailboxes.items() if e == email.lower()]


class FakeStores:
    """One fake of each store, named like the stores of :class:`crmsync.app.wiring.Graph`;
    the stores of the connections table share :attr:`table`. ``clock`` gives the moments
    the stores stamp (``datetime.now(UTC)`` by default, as the real stores do)."""

    def __init__(self, clock: Clock = _now) -> None:
        self.table = FakeTable()
        self.connection_store = FakeConnectionStore(self.table, clock)
        self.settings_store = FakeSettingsStore(self.table)
        self.calendar_store = FakeCalendarStore(self.table, clock)
        self.pending_store = FakePendingDeletionsStore(self.table, clock)
        self.mirror_store = FakeMirrorStore(self.table, clock)
        self.appointment_store = FakeAppointmentStore(self.table, clock)
        self.oauth_states = FakeOAuthStateStore(clock)
        self.channel_store = FakeChannelStore()
        self.contact_sync_stores = FakeContactSyncStores()

        self.contacts_sync_store = FakeContactsSyncStore(clock)
        self.mail_sync_store = FakeMailSyncStore(clock)
