"""The one-off backfill of ``sweep`` slots (:mod:`crmsync.domain.sweeps`).

Every write of a connection, a contacts sync setting or a mail sync setting sets its slot;
items stored before the ``sweeps`` index existed have none until then, and the scheduled
sweeps would skip them. Run once after deploying the index (the scheduler function with
``{"job": "backfill_sweeps"}``: infra/README.md); running it again does nothing.
"""

from __future__ import annotations

import logging

from pynamodb.exceptions import UpdateError

from crmsync.dal import condition_failed
from crmsync.domain.sweeps import Sweep, sweep_key
from crmsync.models.connection import CONNECTION_SK_PREFIX, ConnectionItem
from crmsync.models.mail_sync import MAIL_SYNC_SK, MailSyncItem
from crmsync.models.settings import CONTACTS_SYNC_SK, ContactsSyncItem

log = logging.getLogger(__name__)


def backfill_sweep_slots() -> int:
    """Give every item a sweep visits and that has no slot its slot; how many were given one.
    A scan of the table per kind (once). Each write is conditional on the version read: an
    item changed meanwhile was given its slot by that change (or is read by the next run)."""
    given = 0
    for connection in ConnectionItem.scan(
        ConnectionItem.sk.startswith(CONNECTION_SK_PREFIX) & ConnectionItem.sweep.does_not_exist()
    ):
        key = sweep_key(Sweep.HEALTH, connection.tenant_id, connection.user_id, connection.connection_id)
        given += _give(connection, ConnectionItem.sweep.set(key))
    for contacts in ContactsSyncItem.scan(
        (ContactsSyncItem.sk == CONTACTS_SYNC_SK)
        & ContactsSyncItem.sweep.does_not_exist()
        & ContactsSyncItem.connection_id.exists()
    ):
        key = sweep_key(Sweep.CONTACTS, contacts.tenant_id, contacts.user_id)
        given += _give(contacts, ContactsSyncItem.sweep.set(key))
    for mail in MailSyncItem.scan(
        (MailSyncItem.sk == MAIL_SYNC_SK) & MailSyncItem.sweep.does_not_exist() & MailSyncItem.connection_id.exists()
    ):
        key = sweep_key(Sweep.MAIL, mail.tenant_id, mail.user_id)
        given += _give(mail, MailSyncItem.sweep.set(key))
    return given


def _give(item: ConnectionItem | ContactsSyncItem | MailSyncItem, action: object) -> int:
    try:
        item.update(actions=[action])  # type: ignore[list-item]
    except UpdateError as exc:
        if condition_failed(exc):
            log.info("item changed during the sweep backfill; left to its own write", extra={"sk": item.sk})
            return 0
        raise
    return 1
