"""Two-way Gmail sync (F8): the user's mailbox sync, the lookup from a mailbox address to its
users (all a Pub/Sub push names), and the index from a Gmail message to the logged message."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from crmsync.models.base import ConnectionsTableItem, OwnedItem
from crmsync.models.sweeps import SweepsIndex
from crmsync.security.secrets import sha256_hex

MAIL_SYNC_SK = "SETTINGS#mailsync"
GMAIL_INDEX_SK_PREFIX = "GMAIL#"


def mailbox_pk(email: str) -> str:
    """The lookup partition of a mailbox: the hash of its address (never the address)."""
    return "MAILBOX#" + sha256_hex(email.strip().lower())


def mailbox_sk(tenant_id: str, user_id: str) -> str:
    return "USER#" + sha256_hex(tenant_id + "\n" + user_id)


def gmail_index_sk(connection_id: str, gmail_id: str) -> str:
    return f"{GMAIL_INDEX_SK_PREFIX}{connection_id}#{gmail_id}"


class MailSyncSweeps(SweepsIndex["MailSyncItem"]):
    """Mail-synced users by their hourly safety-net sync's slot."""


class MailSyncItem(ConnectionsTableItem):
    """The user's two-way mail sync (sk ``SETTINGS#mailsync``). Absent or without
    ``connection_id``: off."""

    tenant_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    connection_id = UnicodeAttribute(null=True)
    account_email = UnicodeAttribute(null=True)
    enabled_at = UTCDateTimeAttribute(null=True)
    window_days = NumberAttribute(default=90)
    #: Where the mailbox's history is read from; absent until the first backfill is applied.
    history_cursor = UnicodeAttribute(null=True)
    #: The backfill under way: the cursor taken before listing (stored as ``history_cursor``
    #: once every page is applied), the next page, and its progress.
    backfill_cursor = UnicodeAttribute(null=True)
    backfill_page = UnicodeAttribute(null=True)
    backfill_started_at = UTCDateTimeAttribute(null=True)
    backfill_reached = UTCDateTimeAttribute(null=True)
    backfill_checked = NumberAttribute(default=0)
    backfill_logged = NumberAttribute(default=0)
    backfill_reconcile = BooleanAttribute(null=True)
    last_synced_at = UTCDateTimeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    watch_expires_at = UTCDateTimeAttribute(null=True)
    watch_renewed_at = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    #: The hourly safety-net sync's slot (:mod:`crmsync.domain.sweeps`) while sync is on.
    sweep = UnicodeAttribute(null=True)
    sweeps = MailSyncSweeps()
    version = VersionAttribute()


class MailboxLookupItem(OwnedItem):
    """Finds the users syncing a mailbox from its address (pk ``MAILBOX#<sha256 of the
    address>``, sk ``USER#<hash of tenant and user>``): a Gmail push names only the address.
    Two users (even of two tenants) may sync one mailbox; each has their own item."""

    connection_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class GmailIndexItem(ConnectionsTableItem):
    """A Gmail message the sync logged or recognised (sk ``GMAIL#<connection>#<gmail id>``),
    in the user's partition: label changes and deletions find the logged message through it."""

    message_key = UnicodeAttribute()
    thread_id = UnicodeAttribute(null=True)
