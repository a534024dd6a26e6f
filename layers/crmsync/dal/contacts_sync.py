"""Which connection is a user's contacts account (F10), in the user's partition."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError

from crmsync.dal import condition_failed
from crmsync.domain import Principal
from crmsync.domain.contacts import ContactsSync
from crmsync.domain.sweeps import Sweep, sweep_key
from crmsync.errors import Conflict
from crmsync.models.keys import check_id, user_pk
from crmsync.models.settings import CONTACTS_SYNC_SK, ContactsSyncItem


def _to_domain(item: ContactsSyncItem | None) -> ContactsSync:
    if item is None:
        return ContactsSync()
    return ContactsSync(item.connection_id, item.enabled_at, int(item.version or 0), bool(item.link_primary))


class ContactsSyncStore:
    def _item(self, principal: Principal) -> ContactsSyncItem | None:
        try:
            return ContactsSyncItem.get(
                user_pk(principal.tenant_id, principal.user_id), CONTACTS_SYNC_SK, consistent_read=True
            )
        except DoesNotExist:
            return None

    def get(self, principal: Principal) -> ContactsSync:
        return _to_domain(self._item(principal))

    def set(self, principal: Principal, connection_id: str | None, *, link_primary: bool = False) -> ContactsSync:
        """Make ``connection_id`` the user's contacts account (``None``: turn sync off).
        Choosing the same account again keeps its ``enabled_at``. ``link_primary``: its
        primary calendar is still to become the linked one (see :meth:`linked_primary`)."""
        if connection_id is not None:
            check_id("connection", connection_id)
        item = self._item(principal) or ContactsSyncItem(
            user_pk(principal.tenant_id, principal.user_id),
            CONTACTS_SYNC_SK,
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
        )
        now = datetime.now(UTC)
        if item.connection_id != connection_id:
            item.enabled_at = now if connection_id else None
        item.connection_id = connection_id
        item.link_primary = bool(connection_id and link_primary) or None
        item.sweep = sweep_key(Sweep.CONTACTS, principal.tenant_id, principal.user_id) if connection_id else None
        item.updated_at = now
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The contacts sync settings changed meanwhile; try again.") from exc
            raise
        return _to_domain(item)

    def linked_primary(self, principal: Principal) -> None:
        """The pending primary-calendar link is done (or given up): clear the mark."""
        item = self._item(principal)
        if item is None or not item.link_primary:
            return
        item.link_primary = None
        item.updated_at = datetime.now(UTC)
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The contacts sync settings changed meanwhile; try again.") from exc
            raise

    def due(self, key: str) -> Iterator[tuple[Principal, str]]:
        """The users with contacts sync on in one slot of the scheduled sync's sweep (the
        sparse ``sweeps`` index: no scan of the table), and their contacts account."""
        for item in ContactsSyncItem.sweeps.query(key):
            if item.connection_id:
                yield Principal(item.tenant_id, item.user_id), item.connection_id

    def enabled(self) -> Iterator[tuple[Principal, str]]:
        """Every user with contacts sync on, and their contacts account: scheduled jobs only."""
        for item in ContactsSyncItem.scan(
            ContactsSyncItem.sk == CONTACTS_SYNC_SK,
            attributes_to_get=["tenant_id", "user_id", "connection_id"],
        ):
            if item.connection_id:
                yield Principal(item.tenant_id, item.user_id), item.connection_id
