"""Forwards written inline: the block a mail client puts above the original message.

Gmail and Thunderbird write ``---------- Forwarded message ---------``, Outlook
``-----Original Message-----``, a line of underscores, or just the ``From:``/``Sent:`` lines;
Apple Mail ``Begin forwarded message:``. Each is followed by header lines (From, Date or Sent,
Subject, To, Cc), in the client's language, then the original body. The rules are in
docs/MAIL.md; everything here is pure and never raises.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_FORWARD_PREFIX = re.compile(r"^\s*(?:\[\s*)?(?:fwd?|wg|tr|rv|enc|i|vb|vs|vl|doorst)\s*:\s*", re.IGNORECASE)

_APPLE_MARKERS = (
    "begin forwarded message",
    "inizio messaggio inoltrato",
    "anfang der weitergeleiteten nachricht",
    "début du message réexpédié",
    "comienzo del mensaje reenviado",
    "início da mensagem reencaminhada",
    "begin doorgestuurd bericht",
)
_SEPARATOR = re.compile(
    r"[ \t]*(?:-{2,}[^\n]*-{2,}|_{10,}|(?:" + "|".join(_APPLE_MARKERS) + r")[ \t]*:)[ \t]*",
    re.IGNORECASE,
)
#: A header line of a forwarded block: one or two words, a colon, the value (Outlook's
#: plain-text rendering of bold labels adds asterisks).
_FIELD = re.compile(r"[ \t]*\*?([^\W\d_]{1,12}(?: [^\W\d_]{1,10})?)\*?[ \t]*:\*?[ \t]*(.*)")
_KEYS = {
    **dict.fromkeys(("from", "von", "da", "de", "van", "från", "fra", "od"), "from"),
    **dict.fromkeys(("date", "sent", "datum", "gesendet", "envoyé", "envoye", "enviado", "enviada"), "date"),
    **dict.fromkeys(("fecha", "data", "inviato", "verzonden", "skickat", "sendt", "wysłano"), "date"),
    **dict.fromkeys(("subject", "betreff", "objet", "asunto", "assunto", "oggetto", "onderwerp", "ämne"), "subject"),
    **dict.fromkeys(("emne", "temat"), "subject"),
    **dict.fromkeys(("to", "an", "à", "a", "para", "aan", "till", "til", "do"), "to"),
    **dict.fromkeys(("cc", "kopie", "copie", "kopia"), "cc"),
}
_MAX_BLANKS_AFTER_MARKER = 2
#: Separator lines and dates are short; longer lines are not examined (which also keeps every
#: pattern here linear on hostile input).
_MAX_MARKER_CHARS = 200

#: One item of an address list: split on "," and ";" (Outlook) outside quotes.
_ITEM = re.compile(r'(?:"[^"]*"|[^,;"])+')
#: "Name <a@b>", "Name [mailto:a@b]" (Outlook), "a@b<mailto:a@b>" (Outlook's link text)...
_BRACKETED = re.compile(r"[<\[](?:mailto:)?([^<>\[\]\s]+@[^<>\[\]\s]+)[>\]]", re.IGNORECASE)
#: ...or a bare a@b among other words.
_WORD_TOKEN = re.compile(r'[^\s<>\[\]:",;]+')
_MAX_ITEM_CHARS = 1000


@dataclass(frozen=True)
class InlineForward:
    """What the header lines of a forwarded block say (addresses still as written)."""

    sender: list[tuple[str, str]]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    subject: str
    date: datetime | None
    body: str


def is_forward_subject(subject: str) -> bool:
    """Fwd:, Fw:, WG:, TR:, RV:, ENC:, I:, VB:, VS:, VL:, Doorst: (any case)."""
    return bool(_FORWARD_PREFIX.match(subject))


def strip_forward_prefix(subject: str) -> str:
    """ "Fwd: FW: Hello" → "Hello"; "[Fwd: Hello]" → "Hello"."""
    bracketed = subject.lstrip().startswith("[")
    while match := _FORWARD_PREFIX.match(subject):
        subject = subject[match.end() :]
    subject = subject.strip()
    return subject[:-1].rstrip() if bracketed and subject.endswith("]") else subject


def block_addresses(value: str) -> list[tuple[str, str]]:
    """(display name, address) pairs from a forwarded block's From/To/Cc line. Linear in the
    length of the line whatever it holds (the patterns never backtrack over a long run)."""
    pairs = []
    for item in _ITEM.findall(value):
        if len(item) > _MAX_ITEM_CHARS:
            continue
        if bracketed := _BRACKETED.search(item):
            pairs.append((item[: bracketed.start()].strip().strip('"').strip(), bracketed.group(1)))
        else:
            pairs.extend(("", token) for token in _WORD_TOKEN.findall(item) if "@" in token)
    return pairs


def find_inline_forward(text: str) -> InlineForward | None:
    """The first forwarded block in ``text`` (with a From line), or None.

    After a separator line a From line is enough; a block that starts directly with its From
    line (Outlook) must also have a Date/Sent or Subject line, so that a ``From:`` in the
    user's own words is not taken for a forward.
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if len(line) <= _MAX_MARKER_CHARS and _SEPARATOR.fullmatch(line):
            block = _read_block(lines, index + 1, need_more_than_from=False)
        elif _field_key(line) == "from":
            block = _read_block(lines, index, need_more_than_from=True)
        else:
            continue
        if block is not None:
            return block
    return None


def _field_key(line: str) -> str | None:
    match = _FIELD.fullmatch(line)
    return _KEYS.get(match.group(1).lower()) if match else None


def _read_block(lines: list[str], start: int, *, need_more_than_from: bool) -> InlineForward | None:
    index = start
    while index < len(lines) and index - start < _MAX_BLANKS_AFTER_MARKER and not lines[index].strip():
        index += 1
    fields: dict[str, str] = {}
    last = ""
    while index < len(lines) and lines[index].strip():
        match = _FIELD.fullmatch(lines[index])
        key = _KEYS.get(match.group(1).lower()) if match else None
        if match and key and key not in fields:
            fields[key] = match.group(2).strip()
            last = key
        elif last in ("to", "cc") and "@" in lines[index]:
            fields[last] += " " + lines[index].strip()
        else:
            break
        index += 1
    if "from" not in fields or (need_more_than_from and not ({"date", "subject"} & fields.keys())):
        return None
    return InlineForward(
        sender=block_addresses(fields["from"]),
        to=block_addresses(fields.get("to", "")),
        cc=block_addresses(fields.get("cc", "")),
        subject=fields.get("subject", ""),
        date=parse_loose_date(fields.get("date", "")),
        body="\n".join(_without_leading_blank_lines(lines[index:])).rstrip(),
    )


def _without_leading_blank_lines(lines: list[str]) -> list[str]:
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    return lines[start:]


# ---------------------------------------------------------------- dates as mail clients write them

_MONTHS = {
    **{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10},
    **{"nov": 11, "dec": 12, "mär": 3, "mrz": 3, "mai": 5, "okt": 10, "dez": 12, "fév": 2, "fev": 2, "avr": 4},
    **{"juin": 6, "juil": 7, "aoû": 8, "aou": 8, "déc": 12, "ene": 1, "abr": 4, "ago": 8, "dic": 12, "gen": 1},
    **{"mag": 5, "giu": 6, "lug": 7, "set": 9, "ott": 10, "out": 10, "maa": 3, "mei": 5},
}
#: Weekdays that would read as a month by their first letters (Spanish/French/Italian Tuesday, Dutch Monday).
_NOT_MONTHS = {"martes", "mardi", "martedì", "martedi", "maandag"}
_ZONES = {
    **{"utc": 0, "gmt": 0, "z": 0, "wet": 0, "cet": 60, "bst": 60, "cest": 120, "eet": 120, "eest": 180},
    **{"est": -300, "edt": -240, "cst": -360, "cdt": -300, "mst": -420, "mdt": -360, "pst": -480, "pdt": -420},
}
_TIME = re.compile(r"\b(\d{1,2})[:.](\d{2})\b(?:[:.](\d{2})\b)?\s*(?:([ap])\.?m\b\.?)?", re.IGNORECASE)
_OFFSET = re.compile(r"(?:\b(?:gmt|utc))?\s*([+-])(\d{1,2})(?::?(\d{2}))?\b", re.IGNORECASE)
_MERIDIEM = re.compile(r"\d\s*[ap]\.?m\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DOTTED_DATE = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")
_WORD = re.compile(r"[^\W\d_]+")
_NUMBER = re.compile(r"\b\d{1,4}\b")


def parse_loose_date(value: str) -> datetime | None:
    """A forwarded block's date in UTC ("Mon, Jan 1, 2024 at 10:00 AM", "venerdì 9 giugno 2017
    15:50", RFC 5322...). Without a zone it is taken as UTC; unreadable → None."""
    value = value.strip()
    if not value or len(value) > _MAX_MARKER_CHARS:
        return None
    if _MERIDIEM.search(value):  # the stdlib parser would read "3:04 PM" as 03:04
        return _parse_words(value)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return _parse_words(value)
    return as_utc(parsed)


def as_utc(moment: datetime) -> datetime | None:
    """Aware, in UTC (a naive one is taken as UTC); None when the shift leaves datetime's range."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        return None


def _parse_words(value: str) -> datetime | None:
    rest = value
    ymd: tuple[int, int, int] | None = None
    if iso := _ISO_DATE.search(rest):
        ymd = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
        rest = rest[: iso.start()] + " " + rest[iso.end() :]
    elif dotted := _DOTTED_DATE.search(rest):  # European day.month.year
        ymd = int(dotted.group(3)), int(dotted.group(2)), int(dotted.group(1))
        rest = rest[: dotted.start()] + " " + rest[dotted.end() :]
    hour = minute = second = 0
    if time := _TIME.search(rest):
        hour, minute, second = int(time.group(1)), int(time.group(2)), int(time.group(3) or 0)
        if time.group(4):
            hour = hour % 12 + (12 if time.group(4).lower() == "p" else 0)
        rest = rest[: time.start()] + " " + rest[time.end() :]
    if ymd is None:
        words = [w for w in _WORD.findall(rest.lower()) if w not in _NOT_MONTHS]
        months = [m for w in words if (m := _MONTHS.get(w[:4]) or _MONTHS.get(w[:3]))]
        numbers = [int(n) for n in _NUMBER.findall(rest)]
        years = [n for n in numbers if n >= 1000]
        days = [n for n in numbers if 1 <= n <= 31]
        if not (months and years and days):
            return None
        ymd = years[0], months[0], days[0]
    try:
        return datetime(*ymd, hour, minute, second, tzinfo=UTC) - timedelta(minutes=_zone_minutes(rest))
    except (ValueError, OverflowError):
        return None


def _zone_minutes(rest: str) -> int:
    offset = _OFFSET.search(rest)
    if offset:
        minutes = int(offset.group(2)) * 60 + int(offset.group(3) or 0)
        return -minutes if offset.group(1) == "-" else minutes
    return next((_ZONES[word] for word in _WORD.findall(rest.lower()) if word in _ZONES), 0)
