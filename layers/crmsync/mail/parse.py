"""Raw message bytes → :class:`ParsedMail` or :class:`Refusal`; never raises.

mail-parser (``mailparser``) does the MIME work it is good at: decoding headers, addresses,
dates and text bodies, with charset recovery on real-world breakage. The stdlib ``email``
package is used directly only where mail-parser falls short for us, each place marked:

- the tree walks that enforce the limits and take attached messages out before mail-parser
  reads the tree (it walks into a message/rfc822 part and mixes the original's text into the
  forwarder's body);
- attachments (it names unnamed ones with random strings, so one message would parse two
  ways, and it counts every Content-ID part, inline images included, as an attachment);
- a Date without a zone (it answers None; we read it as UTC).

Some inputs make mail-parser itself raise or lose content; the tree is adjusted before it
reads it (see "mail-parser's blind spots" below). Refusal reasons are stable slugs, documented
in docs/MAIL.md: ``too_large``, ``too_many_headers``, ``too_complex``, ``too_many_parts``,
``too_deep``, ``no_sender``, ``bounce``, ``auto_reply``, ``unparseable``.
"""

from __future__ import annotations

import base64
import email
import email.header
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import HeaderParseError
from email.message import Message
from typing import Any

import mailparser
from mailparser.const import EPILOGUE_DEFECTS
from mailparser.utils import as_string_safe, decode_header_part, find_between, mime_header_view

from crmsync.domain.message import Address, Attachment, MailLimits, ParsedMail, Refusal
from crmsync.mail.forwards import (
    as_utc,
    find_inline_forward,
    is_forward_subject,
    parse_loose_date,
    strip_forward_prefix,
)
from crmsync.mail.mailboxes import first_address, recipients
from crmsync.mail.sanitize import clean_line, clean_text, html_to_text, sanitise_html

DEFAULT_LIMITS = MailLimits()

_HEADER_END = re.compile(rb"\r?\n\r?\n")
#: A header field line as the stdlib parser recognises one (printable name, then a colon).
_HEADER_FIELD = re.compile(rb"^[\x21-\x39\x3b-\x7e]+:", re.MULTILINE)
_ATTACHED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "message/rfc822": ".eml",
}
#: Labels whose text is routinely written in a superset: decoded by the superset, as the WHATWG
#: Encoding Standard (and every mail client) does; by the label alone, Chinese, Korean and
#: Japanese text comes out garbled.
_SUPERSETS = {
    **dict.fromkeys(("gb2312", "gbk", "x-gbk", "euc-cn", "cp936"), "gb18030"),
    **dict.fromkeys(("ks_c_5601-1987", "euc-kr"), "cp949"),
    **dict.fromkeys(("shift_jis", "sjis", "x-sjis"), "cp932"),
    "iso-8859-8-i": "iso-8859-8",
}
_ENCODED_WORD_CHARSET = re.compile(
    rb"(=\?)(" + b"|".join(re.escape(label.encode()) for label in _SUPERSETS) + rb")(?=[?*])", re.IGNORECASE
)
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?[bBqQ]\?[^?\s]*\?=")
_CHARSET_NAME = re.compile(r"[A-Za-z0-9_.:+-]+(?:\*[A-Za-z0-9-]*)?")
_NOT_IN_CHARSET_NAME = re.compile(r"[^A-Za-z0-9_.:+-]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_ID_TOKEN = re.compile(r"[^\s<>\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,998}")
_MAX_REFERENCES = 100
_MAX_FILENAME_CHARS = 255
_NAMES_IN_NOTE = 5


def parse_message(raw: bytes, limits: MailLimits = DEFAULT_LIMITS) -> ParsedMail | Refusal:
    """Parse one raw message (as SES stored it) under ``limits``.

    Never raises: a message that breaks the limits or cannot be read at all is a
    :class:`Refusal`; anything less (bad charsets, garbled headers, oversized attachments,
    too many recipients) is parsed as well as it can be, with a note in ``ParsedMail.notes``.
    """
    try:
        return _parse(raw, limits)
    except RecursionError:
        return Refusal("too_deep", "the MIME structure exhausted the parser's recursion limit")
    except Exception as exc:  # noqa: BLE001 - the contract: hostile input is a refusal, never an exception
        return Refusal("unparseable", f"{type(exc).__name__} while parsing")


@dataclass
class _AttachmentBudget:
    """Attachments kept with their content, shared by a message and the ones it forwards."""

    left: int


@dataclass
class _Notes:
    items: list[str] = field(default_factory=list)

    def add(self, note: str) -> None:
        if note:
            self.items.append(note)


def _parse(raw: bytes, limits: MailLimits) -> ParsedMail | Refusal:
    if len(raw) > limits.max_message_bytes:
        return Refusal("too_large", f"{_size(len(raw))} is over the {_size(limits.max_message_bytes)} limit")
    # Counted on the bytes, before parsing: parsing a million header lines is the attack.
    if _too_many_header_fields(raw, limits.max_headers):
        return Refusal("too_many_headers", f"more than {limits.max_headers} header fields")
    work = (raw.count(b"\n") + 1) * (4 + raw.lower().count(b"multipart/"))
    if work > limits.max_parse_work:
        return Refusal("too_complex", f"{work:,} units of parser work over the {limits.max_parse_work:,} limit")
    # stdlib: the same call (compat32 policy) that mailparser.MailParser.from_bytes makes, done
    # here so the tree can be checked and rearranged before mail-parser reads it.
    message = email.message_from_bytes(_widen_header_charsets(raw))
    refusal = _check_tree(message, limits)
    if refusal is None and _repair_multiparts(message, limits.max_parse_work - work):
        refusal = _check_tree(message, limits)  # the repaired parts count as well
    if refusal is not None:
        return refusal
    _repair_part_charsets(message)
    return _build(message, content_hash(raw), limits, _AttachmentBudget(limits.max_attachments))


#: Header fields added on the way (SES, relays, our local SES): not part of what was sent.
_TRACE_FIELDS: tuple[bytes, ...] = (
    b"received",
    b"return-path",
    b"authentication-results",
    b"received-spf",
    b"arc-",
    b"x-ses-",
    b"x-received",
    b"delivered-to",
    b"x-original-to",
    b"x-devstack-",
)


def content_hash(raw: bytes) -> str:
    """A hash of the message as its sender sent it: the header fields relays and SES add on
    the way (``Received``, verdicts, ...) are left out, so two deliveries of one message hash
    alike although SES stamps each with its own trace headers."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the previous field
            if not skipping:
                kept.append(line.strip())
            continue
        skipping = line.split(b":", 1)[0].strip().lower().startswith(_TRACE_FIELDS)
        if not skipping:
            kept.append(line.rstrip())
    return hashlib.sha256(b"\n".join(kept) + b"\n\n" + body.replace(b"\r\n", b"\n")).hexdigest()


def _too_many_header_fields(raw: bytes, limit: int) -> bool:
    end = _HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    return next(itertools.islice(_HEADER_FIELD.finditer(head), limit, None), None) is not None


def _check_tree(message: Message, limits: MailLimits) -> Refusal | None:
    """Depth, part count and per-part header count of the whole tree (attached messages
    included), iteratively so that no depth can exhaust the stack here."""
    parts = 0
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        parts += 1
        if parts > limits.max_parts:
            return Refusal("too_many_parts", f"more than {limits.max_parts} MIME parts")
        if depth > limits.max_mime_depth:
            return Refusal("too_deep", f"MIME parts nested more than {limits.max_mime_depth} deep")
        if len(part) > limits.max_headers:
            return Refusal("too_many_headers", f"a MIME part has more than {limits.max_headers} header fields")
        stack.extend((child, depth + 1) for child in _children(part))
    return None


def _children(part: Message) -> list[Message]:
    """The sub-parts of a container. Only for containers: ``get_payload()`` on a leaf decodes
    it with its declared charset, which raises for some (``charset=idna`` on 8-bit bytes)."""
    payload = part.get_payload() if part.is_multipart() else []
    return [child for child in payload if isinstance(child, Message)]


def _build(message: Message, content_hash: str, limits: MailLimits, budget: _AttachmentBudget) -> ParsedMail | Refusal:
    automatic = _automatic(message)
    if automatic is not None:
        return automatic
    notes = _Notes()
    attached = _detach_attached_messages(message)
    # Taken out of the tree too: mail-parser would re-encode every attachment and run a
    # Unicode normalisation over each unnamed one it takes for text (seconds on 10 MB).
    attachments = _take_attachments(message, limits, notes)
    _guard_epilogue_recovery(message)
    _repair_headers(message)
    _merge_repeated_address_fields(message)
    parsed: Any = mailparser.MailParser(message)
    sender = first_address(parsed.from_)
    if sender is None:
        return Refusal("no_sender", "the From header has no valid address")
    subject = _one_line(_first(parsed.subject))
    if _is_mail_system(sender, subject):
        return Refusal("bounce", "a bounce from a mail system")
    to, cc, capped = recipients(parsed.to, parsed.cc, limits.max_recipients)
    notes.add(capped)
    if len(subject) > limits.max_subject_chars:
        subject = subject[: limits.max_subject_chars]
        notes.add(f"subject truncated to {limits.max_subject_chars:,} characters")
    text, html = _bodies(parsed, limits, notes)

    forwarded: ParsedMail | None = None
    for number, (part, inner, forwardable) in enumerate(attached, start=1):
        flat = _flatten(inner)
        if forwarded is None and forwardable:
            original = _build(inner, hashlib.sha256(flat).hexdigest(), limits, budget)
            if isinstance(original, ParsedMail):
                forwarded = original
                continue
            if original.reason in _AUTOMATIC_REASONS:  # the user forwarded a bounce or an auto-reply
                return Refusal(original.reason, f"the forwarded message is {original.detail}")
        name = _safe_filename(decode_header_part(mime_header_view(part)[0].get_filename()))
        default = "forwarded-message" if forwardable else "message"
        attachments.append(_attachment(name or f"{default}-{number}.eml", "message/rfc822", flat, limits, notes))
    _apply_budget(attachments, budget, limits, notes)
    if forwarded is None and is_forward_subject(subject):
        forwarded = _inline_forward(subject, text, tuple(attachments), limits, notes)
        if forwarded is not None and forwarded.sender is not None:
            if _is_mail_system(forwarded.sender, forwarded.subject):
                return Refusal("bounce", "the forwarded message is a bounce from a mail system")
            if _AUTO_REPLY_SUBJECT.match(forwarded.subject):
                return Refusal("auto_reply", "the forwarded message is an automatic reply")

    return ParsedMail(
        sender=sender,
        to=to,
        cc=cc,
        subject=subject,
        date=_date(parsed.date, message),
        message_id=_first(_ids(_first(parsed.message_id))),
        in_reply_to=_first(_ids(_first(parsed.in_reply_to))),
        references=tuple(_dedupe(_ids(parsed.references))[-_MAX_REFERENCES:]),
        text=text,
        html=html,
        attachments=tuple(attachments),
        content_hash=content_hash,
        forwarded=forwarded,
        notes=tuple(notes.items),
    )


# ---------------------------------------------------------------- bounces and automatic replies

_AUTOMATIC_REASONS = frozenset({"bounce", "auto_reply"})
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_BOUNCE_REPORTS = frozenset({"delivery-status", "global-delivery-status"})
#: Headers autoresponders add besides RFC 3834's Auto-Submitted (any value but "no" counts).
_AUTO_REPLY_FLAGS = ("x-autoreply", "x-autorespond", "x-autoresponder")
_MAIL_SYSTEMS = frozenset({"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "maildaemon"})
#: Subjects of the bounces postmaster accounts send without a delivery-status report.
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|non[- ]?deliver|delivery (?:status notification|failure|has failed|failed|incomplete)"
    r"|failure notice|returned mail|mail delivery (?:failed|failure)|unzustellbar|nicht zustellbar"
    r"|non remis|non recapitabile|no se puede entregar|onbestelbaar",
    re.IGNORECASE,
)
#: The subjects autoresponders write, for an auto-reply forwarded inline (its headers are gone).
_AUTO_REPLY_SUBJECT = re.compile(
    r"\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|out of (?:the )?office(?: reply)?"
    r"|automatische antwort|abwesenheitsnotiz|réponse automatique|respuesta automática"
    r"|risposta automatica|automatisch antwoord)\s*:",
    re.IGNORECASE,
)


def _automatic(message: Message) -> Refusal | None:
    """A bounce or an automatic reply is not conversation: it is refused, never logged as mail
    from the person it names. Read off the message's own headers and parts (not those of the
    messages it carries):

    - ``bounce``: a delivery status report (multipart/report; report-type=delivery-status, or a
      message/delivery-status part), or an ``X-Failed-Recipients`` field (Exim's bounces);
    - ``auto_reply``: ``Auto-Submitted`` other than ``no`` (RFC 3834: auto-replied,
      auto-generated, auto-notified), ``X-Autoreply``/``X-Autorespond``/``X-Autoresponder``,
      ``Precedence: auto_reply``, or another machine-generated report (a read receipt).
    """
    for part in _own_parts(message):
        if part.get_content_type() in _STATUS_TYPES:
            return Refusal("bounce", "a delivery status report")
        if part.get_content_type() == "multipart/report":
            kind = str(part.get_param("report-type") or "").strip().lower()
            if kind in _BOUNCE_REPORTS:
                return Refusal("bounce", "a delivery status report")
            return Refusal("auto_reply", "a machine-generated report")
    if message.get("x-failed-recipients") is not None:
        return Refusal("bounce", "a bounce (X-Failed-Recipients)")
    submitted = _header_word(message, "auto-submitted")
    if submitted and submitted != "no":
        return Refusal("auto_reply", "an automatic message (Auto-Submitted)")
    if any(_header_word(message, name) not in ("", "no", "false", "0") for name in _AUTO_REPLY_FLAGS):
        return Refusal("auto_reply", "an automatic reply")
    if "auto_reply" in (_header_word(message, "precedence"), _header_word(message, "x-precedence")):
        return Refusal("auto_reply", "an automatic reply (Precedence)")
    return None


def _own_parts(message: Message) -> list[Message]:
    """The message's parts, without descending into the messages attached to it."""
    parts: list[Message] = []
    stack = [message]
    while stack:
        part = stack.pop()
        parts.append(part)
        if part is message or part.get_content_type() not in _ATTACHED_MESSAGE_TYPES:
            stack.extend(reversed(_children(part)))
    return parts


def _header_word(message: Message, name: str) -> str:
    """The first word of a header field, lower-cased ("" when absent): ``auto-replied; x=y``
    → ``auto-replied``."""
    value = message.get(name)
    if value is None:
        return ""
    words = str(value).replace(";", " ").split()
    return words[0].lower() if words else ""


def _is_mail_system(sender: Address, subject: str) -> bool:
    """A bounce that is no delivery status report: sent by MAILER-DAEMON, or by postmaster
    with a bounce's subject (postmaster is also a person people write to)."""
    local = sender.email.rpartition("@")[0]
    return local in _MAIL_SYSTEMS or (local == "postmaster" and bool(_BOUNCE_SUBJECT.search(subject)))


# ---------------------------------------------------------------- mail-parser's blind spots


def _repair_headers(message: Message) -> None:
    """Header values mail-parser would mangle or raise on, rewritten before it reads them:

    - 8-bit bytes that are not UTF-8 (the stdlib keeps them as surrogate escapes, which
      mail-parser passes on as literal ``\\udcff`` text): decoded as UTF-8 with U+FFFD for
      each undecodable byte;
    - an encoded word whose bytes do not decode in its charset (or whose charset is unknown):
      re-encoded as UTF-8 with U+FFFD for what did not decode (mail-parser would keep the
      whole word as raw ``=?utf-8?b?...?=`` text);
    - an encoded word that does not decode at all (bad base64, a NUL in the charset name,
      which makes mail-parser raise): kept as its plain text.
    """
    for part in message.walk():
        items = [(name, str(value)) for name, value in part.raw_items()]
        fixed = [(name, _repaired_value(value)) for name, value in items]
        if fixed != items:
            for name in {name for name, _ in items}:
                del part[name]
            for name, value in fixed:
                part[name] = value


def _repaired_value(value: str) -> str:
    if _SURROGATES.search(value):
        try:
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a surrogate no undecodable byte left
            value = _SURROGATES.sub("\ufffd", value)
    return _ENCODED_WORD.sub(_repaired_word, value) if "=?" in value else value


def _repaired_word(word: re.Match[str]) -> str:
    if not _CHARSET_NAME.fullmatch(word.group(1)):
        return word.group()[2:-2]
    try:
        chunks = email.header.decode_header(word.group())
    except (HeaderParseError, ValueError):
        return word.group()[2:-2]
    data = b"".join(chunk if isinstance(chunk, bytes) else chunk.encode("ascii", "replace") for chunk, _ in chunks)
    label = word.group(1).split("*", 1)[0].lower()
    label = _SUPERSETS.get(label, label)
    try:
        text = data.decode(label)
    except LookupError:  # an unknown charset (or not a text encoding at all)
        text = data.decode("utf-8", "replace")
    except (UnicodeError, ValueError):
        try:
            text = data.decode(label, "replace")
        except (UnicodeError, ValueError):  # a codec that refuses the error handler (idna)
            text = data.decode("utf-8", "replace")
    else:
        if not _SURROGATES.search(text):
            return word.group()
    text = _SURROGATES.sub("\ufffd", text)
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _merge_repeated_address_fields(message: Message) -> None:
    """mail-parser reads only the first of repeated To or Cc fields (a message with two To:
    lines is not rare); their addresses are joined into one field so none is lost."""
    for name in ("to", "cc"):
        values = [str(value).strip() for value in message.get_all(name) or ()]
        if len(values) > 1:
            del message[name]
            message[name] = ", ".join(value for value in values if value)


def _repair_multiparts(message: Message, work_left: int) -> bool:
    """A multipart whose boundary parameter is missing or cut off (``boundary="abc`` for
    ``abc123``): the stdlib leaves its whole body as one string, which mail-parser reads as
    nothing. The boundary is recovered from the body's first delimiter line (one that the
    declared, cut-off value starts) and the part parsed again, its work counted in what
    ``max_parse_work`` leaves; without a delimiter line (or work left) the body is read as
    plain text. Whether anything was reparsed (the tree must then be checked again)."""
    reparsed = False
    stack = [message]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart" and not part.is_multipart():
            body = part.get_payload()
            body = body if isinstance(body, str) else ""
            boundary = _delimiter_in(body, part.get_param("boundary"))
            work = (body.count("\n") + 1) * (4 + body.lower().count("multipart/"))
            if boundary is not None and work <= work_left:
                work_left -= work
                part.set_param("boundary", boundary)
                fixed = email.message_from_bytes(part.as_bytes())
                part.set_payload(fixed.get_payload())
                part.preamble, part.epilogue, part.defects = fixed.preamble, fixed.epilogue, fixed.defects
                reparsed = True
            else:
                part.set_type("text/plain")
                part.del_param("boundary")  # (its defects still let the epilogue be recovered)
        stack.extend(_children(part))
    return reparsed


_DELIMITER = re.compile(r"^--([0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-])[ \t]*\r?$", re.MULTILINE)


def _delimiter_in(body: str, declared: object) -> str | None:
    """The boundary of the first delimiter line of ``body`` that starts with the declared
    (possibly cut-off) boundary; any first one when none was declared."""
    prefix = str(declared).strip().strip('"').strip() if isinstance(declared, str) else ""
    for line in _DELIMITER.finditer(body):
        boundary = line.group(1).removesuffix("--")
        if boundary and boundary.startswith(prefix):
            return boundary
    return None


def _guard_epilogue_recovery(message: Message) -> None:
    """mail-parser recovers an epilogue whenever any part has a start-boundary defect, reading
    the root's boundary and epilogue, and raises when the root has none: there is nothing to
    recover then, so the defect is dropped."""
    if message.get_boundary() and message.epilogue:
        return
    for part in message.walk():
        part.defects = [d for d in part.defects if type(d).__name__ not in EPILOGUE_DEFECTS]


# ---------------------------------------------------------------- charsets


def _widen_header_charsets(raw: bytes) -> bytes:
    """Relabel encoded words of the top header block (bodies are relabelled in the tree)."""
    end = _HEADER_END.search(raw)
    cut = end.start() if end else len(raw)
    return _ENCODED_WORD_CHARSET.sub(_superset_label, raw[:cut]) + raw[cut:]


def _superset_label(match: re.Match[bytes]) -> bytes:
    return match.group(1) + _SUPERSETS[match.group(2).lower().decode()].encode()


def _repair_part_charsets(message: Message) -> None:
    """Charset labels as mail-parser can use them: a superset label for the labels routinely
    written in one, and no character a label cannot have (``utf\\x008``: a NUL makes the codec
    lookup raise ValueError, which mail-parser does not catch). What remains unknown decodes
    with replacement characters."""
    for part in message.walk():
        charset = part.get_param("charset")
        if not isinstance(charset, str):
            continue
        label = charset if _CHARSET_NAME.fullmatch(charset) else _NOT_IN_CHARSET_NAME.sub("", charset)
        label = _SUPERSETS.get(label.lower(), label)
        if not label:
            part.del_param("charset")
        elif label != charset:
            part.set_param("charset", label)


# ---------------------------------------------------------------- attached (forwarded) messages


def _detach_attached_messages(message: Message, *, root: bool = True) -> list[tuple[Message, Message, bool]]:
    """stdlib: take each message/rfc822 part (not nested in another) out of the tree, in
    document order, as (part, the message inside it, whether it may be a forwarded original).
    The messages of a multipart/digest are a collection the user sent, never an original:
    they stay attachments. A message whose whole body is an attached message is a forward of
    it (its body becomes empty text). The tree is at most max_mime_depth deep."""
    if root and (inner := _attached_message(message)) is not None:
        for name in ("content-type", "content-transfer-encoding", "content-disposition"):
            del message[name]
        message.set_payload("")
        return [(message, inner, True)]
    found: list[tuple[Message, Message, bool]] = []
    children = _children(message)
    forwardable = message.get_content_type() != "multipart/digest"
    kept: list[Message | str] = []
    for child in children:
        inner = _attached_message(child)
        if inner is None:
            kept.append(child)
            found.extend(_detach_attached_messages(child, root=False))
        else:
            found.append((child, inner, forwardable))
    if len(kept) != len(children):
        message.set_payload(kept)
    return found


def _attached_message(part: Message) -> Message | None:
    if part.get_content_type() not in _ATTACHED_MESSAGE_TYPES:
        return None
    children = _children(part)
    return children[0] if children else None


def _flatten(message: Message) -> bytes:
    text: str = as_string_safe(message)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte left: not the original anyway
        return text.encode("utf-8", "replace")


def _inline_forward(
    subject: str, text: str, attachments: tuple[Attachment, ...], limits: MailLimits, notes: _Notes
) -> ParsedMail | None:
    """The original of a forward written inline (the subject said Fwd: and the text has a
    forwarded block). It carries the forward's attachments: they came with the original."""
    block = find_inline_forward(text)
    if block is None:
        return None
    sender = first_address(block.sender)
    if sender is None:
        notes.add("a forwarded block was found but its sender could not be read")
        return None
    original_notes = _Notes()
    to, cc, capped = recipients(block.to, block.cc, limits.max_recipients)
    original_notes.add(capped)
    original_subject = _one_line(block.subject)[: limits.max_subject_chars] or strip_forward_prefix(subject)
    identity = f"{sender.email}\n{original_subject}\n{block.date}\n{block.body}"
    return ParsedMail(
        sender=sender,
        to=to,
        cc=cc,
        subject=original_subject,
        date=block.date,
        message_id="",
        in_reply_to="",
        references=(),
        text=block.body,
        html="",
        attachments=attachments,
        content_hash=hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest(),
        notes=tuple(original_notes.items),
    )


# ---------------------------------------------------------------- bodies, headers


def _bodies(parsed: Any, limits: MailLimits, notes: _Notes) -> tuple[str, str]:
    source_html = "\n".join(parsed.text_html)
    text = clean_text("\n\n".join(part.strip("\r\n") for part in parsed.text_plain))
    if not text.strip() and source_html:
        text = clean_text(html_to_text(source_html[: limits.max_html_chars]))
    if len(text) > limits.max_text_chars:
        notes.add(f"text truncated to {limits.max_text_chars:,} of {len(text):,} characters")
        text = text[: limits.max_text_chars]
    html, truncated = sanitise_html(source_html, limits.max_html_chars)
    if truncated:
        notes.add(f"HTML truncated to {limits.max_html_chars:,} characters")
    return text, clean_text(html)


def _date(value: object, message: Message) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    raw = message.get("date")
    # mail-parser answers None for a Date without a zone (obsolete but real); read it as UTC.
    return parse_loose_date(str(raw)) if raw else None


def _ids(value: object) -> list[str]:
    """Message ids without angle brackets, from an id header (or several values of one)."""
    text = " ".join(str(v) for v in value) if isinstance(value, list) else str(value or "")
    found = _MSG_ID.findall(text) or text.split()
    return [token.strip("<>") for token in found if _ID_TOKEN.fullmatch(token.strip("<>"))]


def _first(value: Any) -> Any:
    """The first value of a repeated header (mail-parser answers a list then)."""
    if isinstance(value, list):
        return value[0] if value else ""
    return value if value is not None else ""


def _one_line(value: object) -> str:
    return clean_line(str(value or ""))


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


# ---------------------------------------------------------------- attachments


def _take_attachments(message: Message, limits: MailLimits, notes: _Notes) -> list[Attachment]:
    """stdlib walk (see the module docstring): every attachment, decoded, taken out of the tree.

    A part is an attachment when it has a filename or says ``Content-Disposition:
    attachment``, or when it is neither a text body (text/plain, text/html) nor an unnamed
    inline image (which belongs to the HTML body through its Content-ID).
    """
    found: list[Attachment] = []
    root = _as_attachment(message, 1, limits, notes)
    if root is not None:  # a single-part message that is a file
        found.append(root)
        message.set_payload("")
    else:
        _take_from(message, found, limits, notes)
    recovered = _recovered_epilogue(message)
    for part in recovered.walk() if recovered is not None else ():
        attachment = _as_attachment(part, len(found) + 1, limits, notes)
        if attachment is not None:
            found.append(attachment)
    return found


def _take_from(container: Message, found: list[Attachment], limits: MailLimits, notes: _Notes) -> None:
    children = _children(container)
    kept: list[Message | str] = []
    for child in children:
        attachment = _as_attachment(child, len(found) + 1, limits, notes)
        if attachment is None:
            kept.append(child)
            _take_from(child, found, limits, notes)
        else:
            found.append(attachment)
    if len(kept) != len(children):
        container.set_payload(kept)


def _as_attachment(part: Message, number: int, limits: MailLimits, notes: _Notes) -> Attachment | None:
    if part.get_content_maintype() == "multipart":  # a container, or a broken one
        return None
    view, _ = mime_header_view(part)  # mail-parser's charset-safe view of the MIME headers
    filename = _safe_filename(decode_header_part(view.get_filename()))
    disposition = (view.get_content_disposition() or "").lower()
    content_type = view.get_content_type()
    named = bool(filename) or disposition == "attachment"
    data: object
    if part.is_multipart():
        # message/delivery-status and the like: a file only when named or marked attachment.
        if not named:
            return None
        data = b"".join(_flatten(sub) for sub in _children(part))
    elif not named and (content_type in _BODY_TYPES or content_type.startswith("image/")):
        return None
    else:
        data = part.get_payload(decode=True)
    name = filename or f"attachment-{number}{_EXTENSIONS.get(content_type, '.bin')}"
    return _attachment(name, content_type, data if isinstance(data, bytes) else b"", limits, notes)


def _recovered_epilogue(message: Message) -> Message | None:
    """The part a boundary mistake left in the epilogue, recovered as mail-parser recovers it
    for the bodies (same trigger, same cut), so its attachments are not lost."""
    if not any(type(d).__name__ in EPILOGUE_DEFECTS for part in message.walk() for d in part.defects):
        return None
    boundary, epilogue = message.get_boundary(), message.epilogue
    if not boundary or not epilogue:
        return None
    chunk = find_between(epilogue, f"--{boundary}", f"--{boundary}--")
    return email.message_from_string(chunk) if chunk else None


def _attachment(filename: str, content_type: str, data: bytes, limits: MailLimits, notes: _Notes) -> Attachment:
    keep = len(data) <= limits.max_attachment_bytes
    if not keep:
        notes.add(
            f"attachment {filename} ({_size(len(data))}) dropped: over the {_size(limits.max_attachment_bytes)} limit"
        )
    return Attachment(
        filename=filename,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data if keep else None,
    )


def _apply_budget(attachments: list[Attachment], budget: _AttachmentBudget, limits: MailLimits, notes: _Notes) -> None:
    """Keep content for the first ``max_attachments`` (across a message and its forwarded
    original); drop the content of the rest, with one note."""
    over: list[str] = []
    for index, attachment in enumerate(attachments):
        if attachment.content is None:
            continue
        if budget.left > 0:
            budget.left -= 1
            continue
        over.append(attachment.filename)
        attachments[index] = Attachment(
            attachment.filename, attachment.content_type, attachment.size, attachment.sha256, None
        )
    if over:
        names = ", ".join(over[:_NAMES_IN_NOTE]) + (", …" if len(over) > _NAMES_IN_NOTE else "")
        notes.add(f"{len(over)} attachment(s) dropped ({names}): over the limit of {limits.max_attachments}")


def _safe_filename(name: str) -> str:
    """A display name only: one line, no controls, no path (storage keys never use it)."""
    name = clean_line(name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "" if name in {".", ".."} else name[:_MAX_FILENAME_CHARS]


def _size(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"
