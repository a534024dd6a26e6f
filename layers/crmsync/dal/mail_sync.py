"""The user's two-way mail sync (F8) and the lookup of the users syncing a mailbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError

from crmsync.dal import condition_failed
from crmsync.domain import Principal
from crmsync.domain.mail_sync import DEFAULT_WINDOW_DAYS, Backfill, MailSync
from crmsync.domain.sweeps import Sweep, sweep_key
from crmsync.errors import Conflict
from crmsync.models.keys import check_id, user_pk
from crmsync.models.mail_sync import MAIL_SYNC_SK, MailboxLookupItem, MailSyncItem, mailbox_pk, mailbox_sk


def _to_domain(item: MailSyncItem | None) -> MailSync:
    if item is None:
        return MailSync()
    backfill = None
    if item.backfill_cursor is not None:
        backfill = Backfill(
            cursor=item.backfill_cursor,
            page=item.backfill_page,
            started_at=item.backfill_started_at or item.updated_at,
            reached=item.backfill_reached,
            checked=int(item.backfill_checked or 0),
            logged=int(item.backfill_logged or 0),
            reconcile=bool(item.backfill_reconcile),
        )
    return MailSync(
        connection_id=item.connection_id,
        account_email=item.account_email,
        enabled_at=item.enabled_at,
        window_days=int(item.window_days or DEFAULT_WINDOW_DAYS),
        history_cursor=item.history_cursor,
        backfill=backfill,
        last_synced_at=item.last_synced_at,
        last_error=item.last_error,
        watch_expires_at=item.watch_expires_at,
        watch_renewed_at=item.watch_renewed_at,
        version=int(item.version or 0),
    )


class MailSyncStore:
    """One item per user (sk ``SETTINGS#mailsync``). Every write is conditional on the version
    read (PynamoDB's version attribute): two writers never lose each other's change — the
    later one gets :class:`Conflict` and reads again."""

    def _item(self, principal: Principal) -> MailSyncItem | None:
        try:
            return MailSyncItem.get(user_pk(principal.tenant_id, principal.user_id), MAIL_SYNC_SK, consistent_read=True)
        except DoesNotExist:
            return None

    def get(self, principal: Principal) -> MailSync:
        return _to_domain(self._item(principal))

    def _change(self, principal: Principal, change: Callable[[MailSyncItem], None]) -> MailSync:
        item = self._item(principal) or MailSyncItem(
            user_pk(principal.tenant_id, principal.user_id),
            MAIL_SYNC_SK,
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
        )
        change(item)
        item.sweep = sweep_key(Sweep.MAIL, principal.tenant_id, principal.user_id) if item.connection_id else None
        item.updated_at = datetime.now(UTC)
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The mail sync settings changed meanwhile; try again.") from exc
            raise
        return _to_domain(item)

    def enable(self, principal: Principal, connection_id: str, account_email: str, window_days: int) -> MailSync:
        """Sync this mailbox (choosing another starts over: a new backfill). Choosing the same
        one again changes only the window (a longer one backfills the older part at the next
        full sync)."""
        check_id("connection", connection_id)

        def change(item: MailSyncItem) -> None:
            if item.connection_id != connection_id:
                _clear(item)
                item.connection_id = connection_id
                item.enabled_at = datetime.now(UTC)
            item.account_email = account_email
            item.window_days = window_days

        return self._change(principal, change)

    def set_window(self, principal: Principal, window_days: int) -> MailSync:
        """How many days of mail a backfill (and a new contact's pull) reaches back."""

        def change(item: MailSyncItem) -> None:
            item.window_days = window_days

        return self._change(principal, change)

    def disable(self, principal: Principal) -> MailSync:
        """Off; returns what was on (to stop its watch and forget its mail)."""
        before = self.get(principal)
        self._change(principal, _clear)
        return before

    def save(
        self,
        principal: Principal,
        connection_id: str,
        *,
        backfill: Backfill | bool | None = False,
        history_cursor: str | bool | None = False,
        synced_at: datetime | None = None,
        error: str | bool | None = False,
        watch_expires_at: datetime | None = None,
        watch_renewed_at: datetime | None = None,
    ) -> MailSync | None:
        """Record the sync's progress (``False``: leave as it is). None when the mailbox is no
        longer the one synced (disabled or changed meanwhile): nothing is written."""

        def change(item: MailSyncItem) -> None:
            if item.connection_id != connection_id:
                raise _NotSynced
            if backfill is not False:
                _set_backfill(item, backfill if isinstance(backfill, Backfill) else None)
            if history_cursor is not False:
                item.history_cursor = history_cursor if isinstance(history_cursor, str) else None
            if synced_at is not None:
                item.last_synced_at = synced_at
            if error is not False:
                item.last_error = error if isinstance(error, str) else None
            if watch_expires_at is not None:
                item.watch_expires_at = watch_expires_at
            if watch_renewed_at is not None:
                item.watch_renewed_at = watch_renewed_at

        try:
            return self._change(principal, change)
        except _NotSynced:
            return None

    def due(self, key: str) -> Iterator[tuple[Principal, str]]:
        """The users with mail sync on in one slot of the hourly safety net's sweep (the
        sparse ``sweeps`` index: no scan of the table), and their mailbox's connection."""
        for item in MailSyncItem.sweeps.query(key):
            if item.connection_id:
                yield Principal(item.tenant_id, item.user_id), item.connection_id

    def enabled(self) -> Iterator[tuple[Principal, MailSync]]:
        """Every user with mail sync on: scheduled jobs only (a scan)."""
        for item in MailSyncItem.scan(MailSyncItem.sk == MAIL_SYNC_SK):
            if item.connection_id:
                yield Principal(item.tenant_id, item.user_id), _to_domain(item)


class _NotSynced(Exception):
    pass


def _set_backfill(item: MailSyncItem, backfill: Backfill | None) -> None:
    item.backfill_cursor = backfill.cursor if backfill else None
    item.backfill_page = backfill.page if backfill else None
    item.backfill_started_at = backfill.started_at if backfill else None
    item.backfill_reached = backfill.reached if backfill else None
    item.backfill_checked = backfill.checked if backfill else 0
    item.backfill_logged = backfill.logged if backfill else 0
    item.backfill_reconcile = True if backfill and backfill.reconcile else None


def _clear(item: MailSyncItem) -> None:
    item.connection_id = None
    item.account_email = None
    item.enabled_at = None
    item.history_cursor = None
    _set_backfill(item, None)
    item.last_synced_at = None
    item.last_error = None
    item.watch_expires_at = None
    item.watch_renewed_at = None


class MailboxDirectory:
    """Which users sync a mailbox: a Gmail push names only its address."""

    def register(self, principal: Principal, connection_id: str, email: str) -> None:
        MailboxLookupItem(
            mailbox_pk(email),
            mailbox_sk(principal.tenant_id, principal.user_id),
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            connection_id=connection_id,
            created_at=datetime.now(UTC),
        ).save()

    def unregister(self, principal: Principal, email: str) -> None:
        MailboxLookupItem(mailbox_pk(email), mailbox_sk(principal.tenant_id, principal.user_id)).delete()

    def owners(self, email: str) -> list[tuple[Principal, str]]:
        """Each user syncing the mailbox at ``email``, with their connection."""
        return [
            (Principal(i.tenant_id, i.user_id), i.connection_id)
            for i in MailboxLookupItem.query(mailbox_pk(email), consistent_read=True)
        ]
