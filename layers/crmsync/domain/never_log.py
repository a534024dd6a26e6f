"""The never-log list: addresses and domains whose mail is never logged (personal mail,
internal colleagues), per user. Plain data and rules; docs/MAIL.md ("Never log") has them.

An entry is an address (``anna@example.com``: that mailbox) or a domain (``example.com``:
every mailbox on it **and on its subdomains**, so ``eu.example.com`` too, never
``notexample.com``). Entries are spelled as the mail parser spells addresses
(:mod:`crmsync.domain.mailbox`): lower case, domains as IDNA A-labels. Whoever logs mail
(BCC logging, Gmail sync) asks :meth:`NeverLog.blocks` of every would-be contact::

    never_log = store.get(principal)          # crmsync.dal.never_log.NeverLogStore
    contacts = [a for a in addresses if not never_log.blocks(a.email)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from crmsync.domain.mailbox import normalise_domain, normalise_email

#: Entries per user: the list is one DynamoDB item (1,000 of at most 254 characters stay far
#: below its 400 KB), and a list longer than that is better served by a rule than by a list.
MAX_ENTRIES = 1000
#: The longest entry accepted as typed (an address is at most 254 characters once normalised).
MAX_ENTRY_CHARS = 320

EntryKind = Literal["address", "domain"]


class InvalidEntry(ValueError):
    """What was typed is neither an email address nor a domain; the message says why."""


def normalise_entry(value: str) -> str:
    """One entry as stored: ``Anna@Bücher.Example`` → ``anna@xn--bcher-kva.example``,
    ``@Example.COM.`` → ``example.com``. Raises :class:`InvalidEntry` for anything else."""
    text = value.strip()
    if not text:
        raise InvalidEntry("Enter an email address (anna@example.com) or a domain (example.com).")
    if len(text) > MAX_ENTRY_CHARS:
        raise InvalidEntry(f"An entry is at most {MAX_ENTRY_CHARS} characters long.")
    shown = text[:80]
    if text.startswith("@"):  # "@example.com" is how some tools write a domain
        text = text[1:]
    if "@" in text:
        email = normalise_email(text)
        if email is None:
            raise InvalidEntry(f"{shown!r} is not an email address (like anna@example.com).")
        return email
    domain = normalise_domain(text)
    if domain is None:
        raise InvalidEntry(
            f"{shown!r} is not a domain (like example.com): it needs at least two labels of letters, "
            "digits and hyphens, and no spaces, slashes or ports."
        )
    return domain


def entry_kind(entry: str) -> EntryKind:
    """``address`` or ``domain``, for a normalised entry."""
    return "address" if "@" in entry else "domain"


@dataclass(frozen=True)
class NeverLog:
    """One user's list. Build it with :meth:`of`; an empty list blocks nothing."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, entries: Iterable[str]) -> NeverLog:
        """The list of these entries (stored or typed), each normalised; an entry that is not
        one (stored by an older rule) is left out rather than failing every message."""
        addresses: set[str] = set()
        domains: set[str] = set()
        for raw in entries:
            try:
                entry = normalise_entry(raw)
            except InvalidEntry:
                continue
            (addresses if entry_kind(entry) == "address" else domains).add(entry)
        return cls(frozenset(addresses), frozenset(domains))

    @property
    def entries(self) -> tuple[str, ...]:
        """Every entry, sorted (domains and addresses together)."""
        return tuple(sorted(self.addresses | self.domains))

    def __len__(self) -> int:
        return len(self.addresses) + len(self.domains)

    def blocks(self, email: str) -> bool:
        """Whether mail with this address is never logged: the address is on the list, or its
        domain or any parent domain of it is. Case and the Unicode/punycode spelling of the
        domain do not matter."""
        if not self.addresses and not self.domains:
            return False
        address = normalise_email(email) or email.strip().lower()
        if address in self.addresses:
            return True
        local, at, host = address.rpartition("@")
        if not (local and at):
            return False  # not an address: nothing to block
        host = host.rstrip(".")
        while host:
            if host in self.domains:
                return True
            host = host.partition(".")[2]
        return False
