"""What BCC logging (F9) and Gmail sync (F8) share once a message is to be logged: its bodies
and attachments in the mail bucket under deterministic keys, and the record to commit.

Both paths key a message by its Message-ID (:func:`message_keys`), so a message seen through
both is logged once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from crmsync.dal.mail_bucket import MailBucket, attachment_key, body_key
from crmsync.domain import Principal
from crmsync.domain.mail_records import Direction, GmailRef, LoggedMessage, MessageSource, StoredAttachment
from crmsync.domain.message import Address, ParsedMail
from crmsync.mail.addresses import on_domain
from crmsync.security.secrets import sha256_hex

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


def message_key(mail: ParsedMail) -> str:
    """``m`` + hash of the Message-ID, or ``h`` + hash of the content when there is none."""
    message_id = normalise_message_id(mail.message_id)
    if message_id:
        return "m" + sha256_hex(message_id)
    return "h" + sha256_hex(mail.content_hash)


def message_keys(mail: ParsedMail, digest: str) -> tuple[str, ...]:
    """Where a message may be logged: under :func:`message_key`; a message with a Message-ID
    that another (different) message took first goes under ``m`` + hash of the Message-ID and
    its content digest. Messages logged before the digest was recorded keep their keys."""
    message_id = normalise_message_id(mail.message_id)
    if message_id:
        return (message_key(mail), "m" + sha256_hex(f"{message_id}\n{digest}"))
    return (message_key(mail),)


def content_digest(mail: ParsedMail) -> str:
    """sha256 of what is logged of a message: sender, recipients, subject, date, text, HTML and
    attachments. A redelivery (whatever trace headers SES or relays added) has the same digest;
    another message reusing the Message-ID has another."""
    logged = {
        "from": mail.sender.email if mail.sender else "",
        "to": [a.email for a in mail.to],
        "cc": [a.email for a in mail.cc],
        "subject": mail.subject,
        "date": mail.date.isoformat() if mail.date else "",
        "text": mail.text,
        "html": mail.html,
        "attachments": [[a.filename, a.content_type, a.size, a.sha256] for a in mail.attachments],
    }
    return sha256_hex(json.dumps(logged, ensure_ascii=False, sort_keys=True))


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


def shown(addresses: tuple[Address, ...], logging_domain: str) -> tuple[Address, ...]:
    """Recipients as shown in a conversation: never the BCC addresses themselves (they are the
    users' secrets), at most MAX_STORED_ADDRESSES."""
    kept = [a for a in addresses if not on_domain(a.email, logging_domain) and len(a.email) <= 320]
    return tuple(Address(a.email, a.name[:200]) for a in kept[:MAX_STORED_ADDRESSES])
