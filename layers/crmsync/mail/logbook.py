"""What BCC logging (F9) and Gmail sync (F8) share once a message is to be logged: its bodies
and attachments in the mail bucket under deterministic keys, and the record to commit.

Both paths key a message by its Message-ID (:func:`crmsync.mail.inbound.message_keys`), so a
message seen through both is logged once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from crmsync.dal.mail_bucket import MailBucket, attachment_key, body_key
from crmsync.domain import Principal
from crmsync.domain.mail_records import Direction, GmailRef, LoggedMessage, MessageSource, StoredAttachment
from crmsync.domain.message import Address, ParsedMail

#: Kept small so the MAIL# item stays far below DynamoDB's 400 KB.
MAX_STORED_ADDRESSES = 100
MAX_REFERENCES = 20
MAX_HEADER_CHARS = 998
MAX_NOTES = 20
MAX_NOTE_CHARS = 500
PREVIEW_CHARS = 200
_MIME_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$")


def normalise_message_id(value: str) -> str:
    """Message-IDs compare without brackets and surrounding space, the domain case-insensitively."""
    value = value.strip().strip("<>").strip()
    local, at, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}" if at else value


@dataclass(frozen=True)
class StoredParts:
    text_key: str | None
    html_key: str | None
    attachments: tuple[StoredAttachment, ...]


def store_parts(bucket: MailBucket, principal: Principal, key: str, digest: str, mail: ParsedMail) -> StoredParts:
    """Bodies and attachments to the bucket (a retry overwrites the same objects)."""
    text_key = html_key = None
    if mail.text:
        text_key = body_key(principal, key, digest, "text.txt")
        bucket.put(text_key, mail.text.encode(), "text/plain; charset=utf-8")
    if mail.html:
        html_key = body_key(principal, key, digest, "body.html")
        bucket.put(html_key, mail.html.encode(), "text/html; charset=utf-8")
    attachments = []
    for index, attachment in enumerate(mail.attachments):
        s3_key = None
        content_type = attachment.content_type if _MIME_TYPE.match(attachment.content_type or "") else ""
        if attachment.content is not None:
            s3_key = attachment_key(principal, key, digest, index)
            bucket.put(s3_key, attachment.content, content_type or "application/octet-stream")
        attachments.append(
            StoredAttachment(
                attachment.filename[:255],
                content_type or "application/octet-stream",
                attachment.size,
                attachment.sha256,
                s3_key,
            )
        )
    return StoredParts(text_key, html_key, tuple(attachments))


def record(
    mail: ParsedMail,
    *,
    key: str,
    digest: str,
    direction: Direction,
    parts: StoredParts,
    contact_ids: tuple[str, ...],
    notes: tuple[str, ...],
    date: datetime,
    to: tuple[Address, ...],
    cc: tuple[Address, ...],
    source: MessageSource = "bcc",
    gmail: GmailRef | None = None,
) -> LoggedMessage:
    """The record of a logged message (``to``/``cc``: as they may be shown)."""
    return LoggedMessage(
        message_key=key,
        direction=direction,
        subject=mail.subject[:MAX_HEADER_CHARS],
        date=date,
        sender=mail.sender,
        to=to,
        cc=cc,
        message_id=normalise_message_id(mail.message_id)[:MAX_HEADER_CHARS],
        in_reply_to=normalise_message_id(mail.in_reply_to)[:MAX_HEADER_CHARS],
        references=tuple(normalise_message_id(r)[:MAX_HEADER_CHARS] for r in mail.references[-MAX_REFERENCES:]),
        preview=" ".join(mail.text.split())[:PREVIEW_CHARS],
        text_key=parts.text_key,
        html_key=parts.html_key,
        attachments=parts.attachments,
        notes=tuple(n[:MAX_NOTE_CHARS] for n in notes[:MAX_NOTES]),
        contact_ids=contact_ids,
        logged_at=datetime.now(UTC),
        content_digest=digest,
        source=source,
        gmail=gmail,
    )
