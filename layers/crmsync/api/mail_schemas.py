"""Request and response bodies of the F9 routes: BCC address, sender addresses, never-log list,
contacts, conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from crmsync.domain.mail_records import BccAddress, LoggedMessage, SenderAddress
from crmsync.domain.message import Address
from crmsync.domain.never_log import MAX_ENTRIES, MAX_ENTRY_CHARS
from crmsync.logic.bcc_settings import SenderVerification
from crmsync.logic.contacts import MessageContent
from crmsync.logic.never_log import NeverLogEntry

#: Page sizes of the listings.
DEFAULT_PAGE = 25
MAX_PAGE = 100


class BccAddressOut(BaseModel):
    address: str
    created_at: datetime

    @classmethod
    def of(cls, a: BccAddress) -> BccAddressOut:
        return cls(address=a.address, created_at=a.created_at)


class SenderAddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)


class SenderAddressOut(BaseModel):
    email: str
    #: ``verified`` (mail from it is logged) or ``pending`` (waiting for the verification mail).
    status: Literal["verified", "pending"]
    #: ``connected_account`` (a connected Google account's address) or ``added``.
    source: Literal["connected_account", "added"]
    created_at: datetime | None
    verified_at: datetime | None

    @classmethod
    def of(cls, s: SenderAddress) -> SenderAddressOut:
        return cls(
            email=s.email,
            status=s.status.value,
            source=s.source,
            created_at=s.created_at,
            verified_at=s.verified_at,
        )


class SenderAddressList(BaseModel):
    items: list[SenderAddressOut]


class SenderVerificationOut(SenderAddressOut):
    code: str
    bcc_address: str
    instructions: str

    @classmethod
    def of_verification(cls, v: SenderVerification) -> SenderVerificationOut:
        return cls(
            **SenderAddressOut.of(v.sender).model_dump(),
            code=v.code,
            bcc_address=v.bcc_address,
            instructions=v.instructions,
        )


class NeverLogEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: An email address (``anna@example.com``) or a domain (``example.com``, also written
    #: ``@example.com``; it covers its subdomains). Stored lower-cased, domains as IDNA A-labels.
    entry: str = Field(min_length=1, max_length=MAX_ENTRY_CHARS)


class NeverLogEntryOut(BaseModel):
    #: As stored: lower case, the domain as its IDNA A-label (``xn--bcher-kva.example``).
    entry: str
    #: ``address``: that mailbox only; ``domain``: every address on it and on its subdomains.
    kind: Literal["address", "domain"]

    @classmethod
    def of(cls, e: NeverLogEntry) -> NeverLogEntryOut:
        return cls(entry=e.entry, kind=e.kind)


class NeverLogList(BaseModel):
    items: list[NeverLogEntryOut]
    #: The most entries the list can hold.
    limit: int = MAX_ENTRIES


class AddressOut(BaseModel):
    email: str
    name: str

    @classmethod
    def of(cls, a: Address) -> AddressOut:
        return cls(email=a.email, name=a.name)


class AttachmentOut(BaseModel):
    filename: str
    content_type: str
    size: int
    #: False when it was dropped (over the size limit; a note says so).
    stored: bool


class ConversationEntryOut(BaseModel):
    message_key: str
    direction: Literal["outbound", "inbound"]
    subject: str
    date: datetime
    sender: AddressOut | None = Field(serialization_alias="from")
    to: list[AddressOut]
    cc: list[AddressOut]
    preview: str
    notes: list[str]
    attachments: list[AttachmentOut]
    logged_at: datetime
    #: How it was logged first: by BCC, by two-way Gmail sync, or sent from the CRM.
    source: Literal["bcc", "gmail", "crm"]
    #: Gmail's thread (conversation) id, once two-way sync saw the message; null otherwise.
    thread_id: str | None
    #: What became of it in Gmail: live, trashed, spam or deleted (the CRM keeps it, marked);
    #: null when two-way sync has not seen it.
    gmail_state: Literal["live", "trashed", "spam", "deleted"] | None

    @classmethod
    def fields_of(cls, m: LoggedMessage) -> dict[str, object]:
        return {
            "message_key": m.message_key,
            "direction": m.direction,
            "subject": m.subject,
            "date": m.date,
            "sender": AddressOut.of(m.sender) if m.sender else None,
            "to": [AddressOut.of(a) for a in m.to],
            "cc": [AddressOut.of(a) for a in m.cc],
            "preview": m.preview,
            "notes": list(m.notes),
            "attachments": [
                AttachmentOut(filename=a.filename, content_type=a.content_type, size=a.size, stored=bool(a.s3_key))
                for a in m.attachments
            ],
            "logged_at": m.logged_at,
            "source": m.source,
            "thread_id": m.gmail.thread_id if m.gmail and m.gmail.thread_id else None,
            "gmail_state": m.gmail.state if m.gmail else None,
        }

    @classmethod
    def of(cls, m: LoggedMessage) -> ConversationEntryOut:
        return cls.model_validate(cls.fields_of(m))


class ConversationPage(BaseModel):
    items: list[ConversationEntryOut]
    next_cursor: str | None


class MessageOut(ConversationEntryOut):
    message_id: str
    in_reply_to: str
    references: list[str]
    text: str
    #: Sanitised when logged: no scripts, event handlers, forms, frames or remote resources.
    html: str

    @classmethod
    def of_content(cls, c: MessageContent) -> MessageOut:
        m = c.message
        return cls.model_validate(
            {
                **ConversationEntryOut.fields_of(m),
                "message_id": m.message_id,
                "in_reply_to": m.in_reply_to,
                "references": list(m.references),
                "text": c.text,
                "html": c.html,
            }
        )


# ---------------------------------------------------------------------- sending (F8)

#: An address as typed; read and checked by the use case (422 naming the field).
EmailIn = Annotated[str, Field(min_length=1, max_length=320)]
UploadId = Annotated[str, Field(min_length=1, max_length=64)]


class UploadIn(BaseModel):
    """An attachment to upload before sending (display name, media type, exact size)."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=3, max_length=129)
    #: Bytes; at most 25 MB (Gmail's limit).
    size: int = Field(ge=1)


class UploadOut(BaseModel):
    upload_id: str
    #: Presigned: PUT the file's bytes here, with exactly ``headers``, before ``expires_at``.
    url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_at: datetime


class MessageIn(BaseModel):
    """A message to send from the user's Gmail. ``to`` defaults to the contact's first email;
    ``in_reply_to`` (a message key of this contact's conversation) makes it a reply in that
    Gmail thread, with the thread's subject."""

    model_config = ConfigDict(extra="forbid")

    to: list[EmailIn] | None = Field(default=None, max_length=100)
    cc: list[EmailIn] = Field(default_factory=list, max_length=100)
    bcc: list[EmailIn] = Field(default_factory=list, max_length=100)
    subject: str | None = Field(default=None, max_length=500)
    text: str = Field(default="", max_length=100_000)
    html: str = Field(default="", max_length=100_000)
    attachments: list[UploadId] = Field(default_factory=list, max_length=20)
    in_reply_to: str | None = Field(default=None, min_length=1, max_length=128)
