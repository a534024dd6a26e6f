"""RFC 2822 parsing and building for the Gmail emulator (stdlib ``email`` only).

Gmail's ``Message.payload`` is a tree of parts with unfolded, decoded headers and
base64url bodies; :func:`parse` builds it once when a message enters a mailbox.
"""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import hashlib
import html
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Any

SNIPPET_LENGTH = 200
_COMPAT = email.policy.compat32
# Reply/forward prefixes Gmail ignores when it compares subjects for threading.
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|wg)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def b64url(data: bytes) -> str:
    """base64url with padding, as Gmail returns ``body.data`` and ``raw``."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url (or standard base64), padding optional, as Gmail accepts ``raw``."""
    cleaned = re.sub(r"\s+", "", text).replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def normalize_subject(subject: str) -> str:
    """The subject without Re:/Fwd: prefixes, case-folded and whitespace-collapsed."""
    return " ".join(_SUBJECT_PREFIX.sub("", subject).split()).casefold()


def _decode_header_value(value: str) -> str:
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", value)
    try:
        return str(make_header(decode_header(unfolded)))
    except (ValueError, LookupError, UnicodeError):
        # A malformed encoded-word: show it raw, as a mail client would.
        return unfolded


@dataclass
class Parsed:
    """What the emulator needs from a message source, computed once."""

    headers: list[dict[str, str]]
    payload: dict[str, Any]
    snippet: str
    text: str
    subject: str
    message_id: str
    references: list[str]
    sender: list[str]
    recipients: dict[str, list[str]]
    attachments: dict[str, bytes] = field(default_factory=dict)

    def header(self, name: str) -> str:
        """First value of header ``name`` (case-insensitive), or ''."""
        lowered = name.lower()
        return next((h["value"] for h in self.headers if h["name"].lower() == lowered), "")


def _text_of(part: MimeMessage) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    return data.decode(part.get_content_charset() or "utf-8", errors="replace")


def _plain_text(message: MimeMessage) -> str:
    html_text = ""
    for part in message.walk():
        if part.is_multipart() or part.get_filename():
            continue
        if part.get_content_type() == "text/plain":
            return _text_of(part)
        if part.get_content_type() == "text/html" and not html_text:
            html_text = html.unescape(re.sub(r"<[^>]+>", " ", _text_of(part)))
    return html_text


def _snippet(text: str) -> str:
    # Gmail's snippet is HTML-escaped plain text (apostrophes come back as &#39;).
    collapsed = " ".join(text.split())[:SNIPPET_LENGTH]
    return html.escape(collapsed, quote=True).replace("&#x27;", "&#39;")


def _part(part: MimeMessage, part_id: str, attachments: dict[str, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": [{"name": k, "value": _decode_header_value(str(v))} for k, v in part.items()],
    }
    if part.is_multipart():
        children = part.get_payload()
        out["body"] = {"size": 0}
        out["parts"] = [
            _part(child, f"{part_id}.{i}" if part_id else str(i), attachments)
            for i, child in enumerate(children if isinstance(children, list) else [])
        ]
        return out
    data = part.get_payload(decode=True)
    data = data if isinstance(data, bytes) else b""
    if out["filename"]:
        # Attachments are fetched separately in Gmail; the id only has to be stable.
        attachment_id = "ANGjdJ" + hashlib.sha256(data + part_id.encode()).hexdigest()[:40]
        attachments[attachment_id] = data
        out["body"] = {"attachmentId": attachment_id, "size": len(data)}
    else:
        out["body"] = {"size": len(data), "data": b64url(data)} if data else {"size": 0}
    return out


def _addresses(message: MimeMessage, *names: str) -> list[str]:
    values = [_decode_header_value(str(v)) for name in names for v in message.get_all(name, [])]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


def parse(raw: bytes) -> Parsed:
    """Parse an RFC 2822 source into Gmail's payload shape plus threading/search facts."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    attachments: dict[str, bytes] = {}
    payload = _part(message, "", attachments)
    text = _plain_text(message)
    references = _MESSAGE_ID.findall(str(message.get("References", "")))
    references += _MESSAGE_ID.findall(str(message.get("In-Reply-To", "")))
    return Parsed(
        headers=payload["headers"],
        payload=payload,
        snippet=_snippet(text),
        text=text,
        subject=_decode_header_value(str(message.get("Subject", ""))),
        message_id=(_MESSAGE_ID.findall(str(message.get("Message-ID", ""))) or [""])[0],
        references=references,
        sender=_addresses(message, "From"),
        recipients={
            "to": _addresses(message, "To"),
            "cc": _addresses(message, "Cc"),
            "bcc": _addresses(message, "Bcc"),
        },
        attachments=attachments,
    )


def compose(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    date: float,
    cc: str = "",
    html_body: str = "",
    in_reply_to: str = "",
    references: str = "",
    domain: str = "mail.gmail.com",
) -> bytes:
    """Build an RFC 2822 message from fields (for mail delivered through the control API)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.datetime.fromtimestamp(date, datetime.UTC))
    message["Message-ID"] = make_msgid(domain=domain)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = (references + " " + in_reply_to).strip()
    message.set_content(text)
    if html_body:
        message.add_alternative(html_body, subtype="html")
    return message.as_bytes()


def prepare_outgoing(raw: bytes, own_address: str, own_name: str, date: float) -> bytes:
    """What Gmail does to a message it sends: From is the sender's own address, and a
    Message-ID and Date are added when missing."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    senders = _addresses(message, "From")
    if senders != [own_address]:
        # Gmail rewrites a From that is not the account (or a verified alias; there are none here).
        del message["From"]
        message["From"] = f"{own_name} <{own_address}>" if own_name else own_address
    if not message.get("Message-ID"):
        message["Message-ID"] = make_msgid(domain="mail.gmail.com")
    if not message.get("Date"):
        message["Date"] = format_datetime(datetime.datetime.fromtimestamp(date, datetime.UTC))
    return message.as_bytes()


def without_bcc(raw: bytes) -> bytes:
    """The copy recipients receive: Bcc is never delivered."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get("Bcc") is None:
        return raw
    del message["Bcc"]
    return message.as_bytes()


def multipart_parts(content_type: str, data: bytes) -> list[MimeMessage] | None:
    """The parts of a multipart HTTP body (batch requests, multipart uploads); None if not multipart."""
    envelope = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + data, policy=_COMPAT)
    parts = envelope.get_payload()
    if not envelope.is_multipart() or not isinstance(parts, list):
        return None
    return [part for part in parts if isinstance(part, MimeMessage)]


def part_bytes(part: MimeMessage) -> bytes:
    """A part's body with its transfer encoding undone (a message/rfc822 part: the message)."""
    if part.get_content_type() == "message/rfc822" and part.is_multipart():
        inner = part.get_payload(0)
        return inner.as_bytes() if isinstance(inner, MimeMessage) else b""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""
