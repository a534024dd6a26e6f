"""One spelling per mailbox and per mail domain (pure functions, no I/O).

The mail parser (``crmsync.mail.mailboxes``) reads addresses out of hostile headers with these
rules, and the never-log list (:mod:`crmsync.domain.never_log`) stores its entries with the
same ones, so an entry and the address it names always compare equal. Both answer ``None``
instead of raising.
"""

from __future__ import annotations

import re

# dot-atom local part (RFC 5322 3.2.3: printable ASCII but the specials) plus non-ASCII
# (RFC 6531); no quoted strings, spaces, controls or surrogates (left by undecodable bytes).
# Written as a negated class: the positive one with Unicode ranges costs 10 ms to compile.
_ATEXT = r'[^\s"(),.:;<>@\[\\\]\x00-\x1f\x7f-\x9f\ud800-\udfff]+'
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: RFC 1035's limit on a domain name in text form (without the root's dot).
MAX_DOMAIN_CHARS = 253


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
    ascii_domain = normalise_domain(domain)
    return None if ascii_domain is None else f"{local}@{ascii_domain}"


def normalise_domain(value: str) -> str | None:
    """``Bücher.Example.`` → ``xn--bcher-kva.example``; None when no mailbox could be on it.

    Lower case, IDNA A-labels, no trailing dot (surrounding space is not removed: inside an
    address it makes the address invalid); at least two labels (a single-label domain is
    never a mailbox's), each a valid host label, and not ending in a number (an IP address).
    """
    domain = value.lower().rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if (
        len(ascii_domain) > MAX_DOMAIN_CHARS
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        return None
    return ascii_domain
