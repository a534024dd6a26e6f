"""The mail port: one connected mailbox, shaped for Gmail (F8, issue 14).

Messages travel as raw RFC 822 bytes (the CRM parses and sanitises them as it does BCC-logged
mail); the adapter owns the provider's wire format, its paging, its batch requests and its
change notification. Sync with it as Gmail's guide says (PROVIDERS.md §2.3):

* **full**: :meth:`MailPort.profile` for the cursor to resume from, then
  :meth:`MailPort.list_messages` page by page and :meth:`MailPort.get_messages` in batches;
  store that cursor only once everything listed is applied;
* **incremental**: :meth:`MailPort.changes_since` the stored cursor; :class:`CursorInvalid`
  means the cursor is too old (Gmail keeps history about a week, sometimes hours): sync the
  window in full again.

Cursors are opaque strings, but Gmail's (historyIds) grow over time: a caller keeping the
higher of two may compare them with :func:`cursor_order`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from enum import StrEnum
from typing import Protocol

from crmsync.domain import StoredConnection
from crmsync.domain.mail_records import GmailState
from crmsync.errors import InvalidRequest

__all__ = [
    "ChangeKind",
    "ChangePage",
    "MailAccess",
    "MailChange",
    "MailPort",
    "MailWatch",
    "MailboxNotification",
    "MailboxProfile",
    "MessagePage",
    "MessageRef",
    "OutgoingMessage",
    "RawMessage",
    "cursor_order",
    "state_in_mailbox",
]

#: Labels a mailbox gives every message it holds in the spam folder, the trash, or drafts
#: (Gmail's system label ids); :meth:`MailPort.list_messages` never lists such messages.
SPAM, TRASH, DRAFT = "SPAM", "TRASH", "DRAFT"


def cursor_order(cursor: str) -> tuple[int, str]:
    """A sort key for cursors of one mailbox: later cursors sort higher (Gmail's historyIds are
    decimal integers that increase, not contiguously)."""
    return (int(cursor), "") if cursor.isdigit() else (-1, cursor)


@dataclass(frozen=True)
class MailboxProfile:
    """The mailbox's address and the cursor of its current state."""

    email: str
    history_cursor: str


@dataclass(frozen=True)
class MessageRef:
    """A message and the thread (conversation) it belongs to, by the provider's ids."""

    message_id: str
    thread_id: str


@dataclass(frozen=True)
class MessagePage:
    """One page of message ids, newest first; ``next_page`` asks for the next one (None on
    the last page). A page may hold fewer refs than asked, or none, with more to come."""

    messages: list[MessageRef]
    next_page: str | None


@dataclass(frozen=True)
class RawMessage:
    """A message as stored: labels at the time it was read, when the mailbox received it
    (Gmail's ``internalDate``, which orders a conversation), and its RFC 822 bytes."""

    message_id: str
    thread_id: str
    label_ids: tuple[str, ...]
    internal_date: datetime
    raw: bytes

    @property
    def ref(self) -> MessageRef:
        return MessageRef(self.message_id, self.thread_id)


class ChangeKind(StrEnum):
    """What happened to a message (Gmail's history types)."""

    ADDED = "added"  # messageAdded: received, sent, or a draft saved
    DELETED = "deleted"  # messageDeleted: gone for good (trashing is LABELS_ADDED TRASH)
    LABELS_ADDED = "labels_added"  # labelAdded
    LABELS_REMOVED = "labels_removed"  # labelRemoved


@dataclass(frozen=True)
class MailChange:
    """One change to one message. ``label_ids``: for ADDED the message's labels then, for
    LABELS_ADDED/LABELS_REMOVED the labels added/removed, for DELETED none."""

    kind: ChangeKind
    message: MessageRef
    label_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangePage:
    """Every change after a cursor, oldest first, and the cursor to resume from (store it
    only once the changes are applied). One message may appear in several changes."""

    changes: list[MailChange]
    cursor: str


@dataclass(frozen=True)
class MailWatch:
    """An open change notification for the mailbox (Gmail ``users.watch``): the cursor of the
    mailbox when it opened, and when it lapses unless opened again (Google says: at least
    every 7 days, ideally daily)."""

    cursor: str
    expires_at: datetime


@dataclass(frozen=True)
class MailboxNotification:
    """A change in a watched mailbox, as the adapter read it from an authenticated push (Gmail:
    a Pub/Sub push naming the address and its history id). It names no user: the CRM finds
    who syncs the mailbox, and the sync reads the changes from its own cursor."""

    email: str
    cursor: str
    #: The push's own id (Pub/Sub's messageId), for the log.
    message_id: str


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to send, as RFC 822 bytes (From is the mailbox's; Bcc is honoured and removed
    from what recipients get).

    To reply in a conversation, give its ``thread_id`` **and** put In-Reply-To / References
    naming a message of that thread in ``raw``, with the same Subject (a ``Re:`` prefix
    aside): that is Gmail's threading rule. A message that breaks it is still sent, but Gmail
    starts a new thread with it; so a ``thread_id`` without In-Reply-To or References is
    refused here (InvalidRequest) rather than silently sent out of its thread.
    """

    raw: bytes
    thread_id: str | None = None

    def __post_init__(self) -> None:
        if not self.raw.strip():
            raise InvalidRequest("An outgoing message needs its RFC 822 bytes.")
        if self.thread_id is not None:
            if not self.thread_id.strip():
                raise InvalidRequest("An outgoing message's thread id is empty.")
            headers = BytesHeaderParser(policy=default_policy).parsebytes(self.raw)
            if not (headers.get("In-Reply-To") or headers.get("References")):
                raise InvalidRequest(
                    "A reply in a thread needs In-Reply-To or References naming a message of that thread."
                )


class MailPort(Protocol):
    """One connected mailbox.

    Every method raises only the neutral errors of :mod:`crmsync.ports.errors`:
    ``CursorInvalid`` (:meth:`changes_since` only), ``ProviderNotFound``, ``RateLimited``
    (429 and Google's rate-limit 403s; ``retry_after`` when the provider said),
    ``AuthRevoked``, or a ``ProviderError`` that says whether retrying helps.
    """

    def profile(self) -> MailboxProfile:
        """The mailbox's address and current cursor (Gmail ``users.getProfile``)."""
        ...

    def list_messages(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        query: str = "",
        page: str | None = None,
        page_size: int = 500,
    ) -> MessagePage:
        """One page of the messages received in ``[since, until)``, newest first (Gmail
        ``messages.list``). Spam, trash and drafts are never listed. ``query``: more Gmail
        search terms, ANDed (e.g. ``{from:a@x to:a@x cc:a@x}``). ``page``: the previous page's
        ``next_page``, with the same other arguments."""
        ...

    def get_messages(self, message_ids: Sequence[str]) -> list[RawMessage]:
        """The messages, raw, in the order asked (Gmail ``messages.get`` ``format=raw`` in
        batch requests). A message deleted meanwhile is left out, not an error."""
        ...

    def changes_since(self, cursor: str) -> ChangePage:
        """Every change after ``cursor`` (Gmail ``history.list``, all pages, the four history
        types). ``CursorInvalid`` when the cursor is too old or unknown: sync in full."""
        ...

    def send(self, message: OutgoingMessage) -> MessageRef:
        """Send (Gmail ``messages.send``); the sent message is then in the mailbox (SENT) and
        in its changes. Not idempotent: a retry after a lost answer sends twice, so a caller
        that retries first asks :meth:`find_sent` for its Message-ID."""
        ...

    def find_sent(self, message_id: str, *, since: datetime) -> MessageRef | None:
        """The message this mailbox sent since ``since`` with the RFC 5322 Message-ID
        ``message_id`` (without brackets), wherever it is now (trash and spam included: the
        user may have binned it since); None when there is none (never sent, or deleted for
        good)."""
        ...

    def watch(self, topic: str, *, label_ids: Sequence[str] = (), exclude: bool = False) -> MailWatch:
        """Ask for a notification at ``topic`` (Gmail: a Pub/Sub topic the Gmail push account may
        publish to; unknown → ``ProviderNotFound``) on each change; with ``label_ids``, only on
        changes of messages with (``exclude``: without) those labels. Calling it again
        renews it."""
        ...

    def stop(self) -> None:
        """No more notifications (Gmail ``users.stop``; some may still arrive for a while)."""
        ...


class MailAccess(Protocol):
    """Opens the mail port of a stored connection, whatever its provider (the composition
    root decrypts its credential and picks the adapter)."""

    def mail(self, stored: StoredConnection) -> MailPort: ...


def state_in_mailbox(raw: RawMessage | None) -> GmailState:
    """Where a message is in the mailbox now, as a logged message records it (None: the
    mailbox no longer has it)."""
    if raw is None:
        return "deleted"
    if TRASH in raw.label_ids:
        return "trashed"
    if SPAM in raw.label_ids:
        return "spam"
    return "live"
