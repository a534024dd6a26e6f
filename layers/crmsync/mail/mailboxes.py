"""Mailbox normalisation: one spelling per mailbox, nothing that cannot be a CRM contact.

The address rules themselves are :func:`crmsync.domain.mailbox.normalise_email` (shared with
the never-log list); this module adds display names and the recipient lists.

Addresses come from hostile headers (and from the header lines of forwarded blocks), so
everything here is a pure function that answers ``None`` instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable

from crmsync.domain.mailbox import normalise_email
from crmsync.domain.message import Address
from crmsync.mail.sanitize import clean_line

_MAX_NAME_CHARS = 200


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
