"""A useful subset of Gmail's search syntax (``q``) for messages.list.

Supported: ``from: to: cc: bcc: subject: after: before: older: newer: newer_than: older_than:
in: label: is: rfc822msgid:`` and plain words or "quoted phrases", each negatable with a leading ``-``.
Terms are ANDed; ``{a b c}`` is an OR group (any of its terms). Dates in ``YYYY/MM/DD`` are
midnight Pacific time, as Gmail documents; epoch seconds are exact.
"""

from __future__ import annotations

import datetime
import re
import shlex
from collections.abc import Callable
from zoneinfo import ZoneInfo

from devstack.google.apis.gmail.store import GmailError, Mailbox, StoredMessage

Predicate = Callable[[StoredMessage], bool]

_PACIFIC = ZoneInfo("America/Los_Angeles")
_RELATIVE = re.compile(r"^(\d+)([dmy])$")
_RELATIVE_SECONDS = {"d": 86400, "m": 31 * 86400, "y": 366 * 86400}
# Labels that messages.list hides unless asked for (includeSpamTrash, in:spam, in:trash...).
HIDDEN_LABELS = frozenset({"SPAM", "TRASH"})


def _invalid(term: str) -> GmailError:
    return GmailError(400, f"Invalid search query: {term}", "invalidArgument")


def _date(value: str, term: str) -> float:
    if value.isdigit():
        return float(value)
    try:
        day = datetime.datetime.strptime(value.replace("-", "/"), "%Y/%m/%d")
    except ValueError:
        raise _invalid(term) from None
    return day.replace(tzinfo=_PACIFIC).timestamp()


def _relative(value: str, term: str) -> float:
    match = _RELATIVE.match(value)
    if not match:
        raise _invalid(term)
    return int(match.group(1)) * _RELATIVE_SECONDS[match.group(2)]


def _message_id(value: str) -> str:
    """A Message-ID as Gmail compares it: without brackets and space, the domain in any case."""
    local, at, domain = value.strip().strip("<>").strip().rpartition("@")
    return f"{local}@{domain.lower()}" if at else domain


def _address_matcher(field: str, value: str) -> Predicate:
    wanted = value.casefold()

    def match(message: StoredMessage) -> bool:
        parsed = message.parsed
        addresses = parsed.sender if field == "from" else parsed.recipients[field]
        header = parsed.header(field)
        return any(wanted in addr for addr in addresses) or wanted in header.casefold()

    return match


class Query:
    """A parsed ``q``: a conjunction of predicates plus whether it reaches into spam/trash."""

    def __init__(self, q: str, box: Mailbox, now: float) -> None:
        self.predicates: list[Predicate] = []
        self.includes_hidden = False
        try:
            terms = shlex.split(q)
        except ValueError:
            raise _invalid(q) from None
        group: list[Predicate] | None = None
        for term in terms:
            opens = term.startswith("{") and group is None
            if opens:
                group, term = [], term[1:]
            closes = group is not None and term.endswith("}")
            if closes:
                term = term[:-1]
            predicate = self._negatable(term, box, now) if term else None
            if group is None:
                if predicate is not None:
                    self.predicates.append(predicate)
                continue
            if predicate is not None:
                group.append(predicate)
            if closes:
                # ``{a b}``: Gmail's OR group (any of its terms matches).
                self.predicates.append((lambda ps: lambda m: any(p(m) for p in ps))(group))
                group = None
        if group is not None:
            raise _invalid(q)

    def _negatable(self, term: str, box: Mailbox, now: float) -> Predicate | None:
        negate = term.startswith("-") and len(term) > 1
        predicate = self._term(term[1:] if negate else term, box, now)
        if predicate is None or not negate:
            return predicate
        return (lambda p: lambda m: not p(m))(predicate)

    def _term(self, term: str, box: Mailbox, now: float) -> Predicate | None:
        operator, sep, value = term.partition(":")
        operator = operator.lower()
        if not sep or not value or operator not in _OPERATORS:
            words = term.casefold()
            return lambda m: (
                words in (m.parsed.subject + "\n" + m.parsed.text + "\n" + m.parsed.header("from")).casefold()
            )
        if operator in ("from", "to", "cc", "bcc"):
            return _address_matcher(operator, value)
        if operator == "subject":
            return lambda m: value.casefold() in m.parsed.subject.casefold()
        if operator == "rfc822msgid":
            # The message whose Message-ID header is this id (angle brackets optional).
            wanted = _message_id(value)
            return lambda m: _message_id(m.parsed.header("message-id")) == wanted
        if operator in ("after", "newer", "before", "older"):
            bound = _date(value, term) * 1000
            if operator in ("after", "newer"):
                return lambda m: m.internal_date >= bound
            return lambda m: m.internal_date < bound
        if operator in ("newer_than", "older_than"):
            cutoff = (now - _relative(value, term)) * 1000
            if operator == "newer_than":
                return lambda m: m.internal_date >= cutoff
            return lambda m: m.internal_date < cutoff
        if operator == "is":
            return self._is(value.lower(), term)
        return self._in(value, box, term)

    def _is(self, value: str, term: str) -> Predicate:
        flags = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}
        if value in flags:
            return lambda m: flags[value] in m.label_ids
        if value == "read":
            return lambda m: "UNREAD" not in m.label_ids
        raise _invalid(term)

    def _in(self, value: str, box: Mailbox, term: str) -> Predicate | None:
        if value.lower() == "anywhere":
            self.includes_hidden = True
            return None
        label = box.label_by_name_or_id(value.upper() if value.upper() in box.labels else value)
        if label is None:
            # Gmail matches nothing for an unknown label rather than failing.
            return lambda m: False
        if label.id in HIDDEN_LABELS:
            self.includes_hidden = True
        return lambda m: label.id in m.label_ids

    def matches(self, message: StoredMessage) -> bool:
        """Whether every term matches."""
        return all(p(message) for p in self.predicates)


_OPERATORS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "after",
        "before",
        "older",
        "newer",
        "newer_than",
        "older_than",
        "in",
        "label",
        "is",
        "rfc822msgid",
    }
)
