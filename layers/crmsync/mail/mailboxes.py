"""Mailbox normalisation: one spelling per mailbox, nothing that cannot be a CRM contact.

Addresses come from hostile headers (and from the header lines of forwarded blocks), so
everything here is a pure function that answers ``None`` instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from crmsync.domain.message import Address
from crmsync.mail.sanitize import clean_line

# dot-atom local part (RFC 5322 3.2.3: printable ASCII but the specials) plus non-ASCII
# (RFC 6531); no quoted strings, spaces, controls or surrogates (left by undecodable bytes).
# Written as a negated class: the positive one with Unicode ranges costs 10 ms to compile.
_ATEXT = r'[^\s"(),.:;<>@\[\\\]\x00-\x1f\x7f-\x9f\ud800-\udfff]+'
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_NAME_CHARS = 200


def normalise_email(value: str) -> str | None:
    """``Local@Bücher.Example`` → ``local@xn--bcher-kva.example``; None when it is not a mailbox.

    The domain is stored as its IDNA A-label so that the Unicode and the punycode spelling of
    one mailbox are one contact; the whole address is lower-cased (F9 matches case-insensitively).
    """
    value = value.strip()
    if len(value) > 254 or value.count("@") != 1:
        return None
    local, domain = value.lower().split("@")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        return None
    domain = domain.rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return None
    return f"{local}@{ascii_domain}"


def clean_name(name: str, email: str) -> str:
    """A display name fit to show: one line, no controls (an undecodable byte is U+FFFD), not
    just the address again."""
    name = clean_line(name).strip("\"'").strip()
    if name.lower() == email or not name:
        return ""
    return name[:_MAX_NAME_CHARS]


def to_address(name: str, email: str) -> Address | None:
    """An :class:`Address` from a (display name, address) pair, or None when the address is invalid."""
    normalised = normalise_email(email)
    if normalised is None:
        return None
    return Address(email=normalised, name=clean_name(name, normalised))


def first_address(pairs: Iterable[tuple[str, str]]) -> Address | None:
    """The first valid mailbox of a header such as From."""
    for name, email in pairs:
        address = to_address(name, email)
        if address is not None:
            return address
    return None


def recipients(
    to: Iterable[tuple[str, str]], cc: Iterable[tuple[str, str]], limit: int
) -> tuple[tuple[Address, ...], tuple[Address, ...], str]:
    """To and Cc, each mailbox once (To wins over Cc), at most ``limit`` in all.

    Returns the two tuples and a note ("" when nothing was capped). Invalid addresses are
    ignored silently: they can never become contacts.
    """
    seen: set[str] = set()
    kept: tuple[list[Address], list[Address]] = ([], [])
    total = 0
    for bucket, pairs in zip(kept, (to, cc), strict=True):
        for name, email in pairs:
            address = to_address(name, email)
            if address is None or address.email in seen:
                continue
            seen.add(address.email)
            total += 1
            if total <= limit:
                bucket.append(address)
    note = f"recipients capped: {total} addresses, only the first {limit} kept" if total > limit else ""
    return tuple(kept[0]), tuple(kept[1]), note
