"""What the parser makes of one raw message: plain data, no I/O.

`crmsync.mail.parse.parse_message(raw, limits)` turns bytes into a :class:`ParsedMail`
and never raises on hostile input: what it cannot read becomes a :class:`Refusal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class MailLimits:
    """Documented in docs/MAIL.md. SES itself refuses messages over 40 MB."""

    max_message_bytes: int = 40 * 1024 * 1024
    #: An attachment over this is dropped; the message is still logged with a note.
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_attachments: int = 50
    max_recipients: int = 100
    max_headers: int = 1000
    max_mime_depth: int = 20
    max_parts: int = 500
    #: lines × (4 + multipart declarations): the stdlib parser checks every line against every
    #: open boundary, so this bounds its work (at most ~7 s on a 2-core x86 box) before it starts.
    max_parse_work: int = 12_000_000
    max_subject_chars: int = 998
    max_text_chars: int = 200_000
    max_html_chars: int = 500_000


@dataclass(frozen=True)
class Address:
    """An email address, lower-cased, with its display name."""

    email: str
    name: str = ""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    #: The decoded bytes; None when dropped (see ParsedMail.notes).
    content: bytes | None = field(repr=False, default=None)


@dataclass(frozen=True)
class ParsedMail:
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    #: Without angle brackets; "" when the message has none.
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    text: str
    #: Sanitised: no scripts, event handlers, javascript: URLs, iframes, forms or remote
    #: resources other than plain links.
    html: str
    attachments: tuple[Attachment, ...]
    #: sha256 of the raw bytes: the deduplication key when message_id is missing.
    content_hash: str
    #: When the user forwarded a message (message/rfc822 part or a "Forwarded message" block):
    #: the original, which is logged as an inbound message from its original sender.
    forwarded: ParsedMail | None = None
    #: Human-readable notes about what was dropped or truncated (shown with the message).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """Why a message is not logged. `reason` is a stable slug used in logs and metrics."""

    reason: str
    detail: str = ""
