"""What the BCC log stores and shows, as plain data (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar

from crmsync.domain.message import Address

Direction = Literal["outbound", "inbound"]
T = TypeVar("T")


@dataclass(frozen=True)
class BccAddress:
    address: str
    created_at: datetime


class SenderStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"


@dataclass(frozen=True)
class SenderAddress:
    """One of the user's own addresses: a connected account's (``source`` ``connected_account``,
    always verified) or one the user added (``added``)."""

    email: str
    status: SenderStatus
    source: Literal["connected_account", "added"]
    created_at: datetime | None
    verified_at: datetime | None = None


@dataclass(frozen=True)
class SenderChallenge:
    """The verification code of an added address (only its hash). Kept after verification,
    so a second delivery of the verification mail is recognised and not logged."""

    email: str
    status: SenderStatus
    code_hash: str


@dataclass(frozen=True)
class StoredAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    #: None when the attachment was dropped (the message's notes say why).
    s3_key: str | None


@dataclass(frozen=True)
class LoggedMessage:
    """A logged message as stored: metadata in DynamoDB, bodies referenced by their S3 keys."""

    message_key: str
    direction: Direction
    subject: str
    date: datetime
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    preview: str
    text_key: str | None
    html_key: str | None
    attachments: tuple[StoredAttachment, ...]
    notes: tuple[str, ...]
    contact_ids: tuple[str, ...]
    logged_at: datetime
    event_published: bool = False
    #: sha256 of what was logged (``crmsync.mail.inbound.content_digest``); None on messages
    #: logged before it was recorded.
    content_digest: str | None = None
    #: How it was logged first: ``bcc``, ``gmail`` (two-way sync) or ``crm`` (sent from the CRM).
    source: MessageSource = "bcc"
    #: The Gmail message, once two-way sync saw it (F8).
    gmail: GmailRef | None = None


MessageSource = Literal["bcc", "gmail", "crm"]
#: What became of a message in Gmail after it was logged: still there (``live``), in the
#: trash or the spam folder, or deleted for good. The CRM keeps the entry, marked.
GmailState = Literal["live", "trashed", "spam", "deleted"]


@dataclass(frozen=True)
class GmailRef:
    """Where a logged message is in the user's Gmail: the connection, Gmail's message and
    thread ids, Gmail's ``internalDate`` (which orders a conversation) and its state there."""

    connection_id: str
    message_id: str
    thread_id: str
    internal_date: datetime
    state: GmailState = "live"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    #: Opaque; pass it back to get the next page. None: this was the last page.
    next_cursor: str | None
