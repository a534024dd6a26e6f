"""BCC logging addresses and sender-verification codes (pure functions).

A BCC address is ``u`` + 26 base32 characters of 16 random bytes (128 bits) at the logging
domain: unguessable, and safe in any mail client (lower-case letters and digits only; mail
systems may lower-case the local part, and the lookup does too).
"""

from __future__ import annotations

import base64
import re
import secrets

_LOCAL_PART = re.compile(r"^u[a-z2-7]{26}$")
#: "CRM-XXXX-XXXX-XXXX": 60 random bits, easy to type into a subject without mistakes.
_CODE = re.compile(r"\bCRM-([A-Z2-7]{4})-([A-Z2-7]{4})-([A-Z2-7]{4})\b", re.IGNORECASE)


def new_local_part() -> str:
    """A fresh, unguessable local part for a user's BCC address."""
    return "u" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def is_local_part(value: str) -> bool:
    """Whether a local part has the shape of an issued address (others are not looked up)."""
    return bool(_LOCAL_PART.match(value))


def on_domain(email: str, domain: str) -> bool:
    """Whether ``email`` is on ``domain`` or one of its subdomains (case-insensitive)."""
    host = email.strip().rpartition("@")[2].lower().rstrip(".")
    domain = domain.strip().lower().rstrip(".")
    return bool(domain) and (host == domain or host.endswith("." + domain))


def local_part_on(email: str, domain: str) -> str | None:
    """The lower-cased local part of an address on exactly ``domain``; None for other domains."""
    local, at, host = email.strip().rpartition("@")
    domain = domain.strip().lower().rstrip(".")
    if not at or not domain or host.lower().rstrip(".") != domain:
        return None
    return local.lower()


def new_verification_code() -> str:
    """A one-time code the user puts in the subject of a mail sent from an added address."""
    raw = base64.b32encode(secrets.token_bytes(8)).decode()[:12]
    return f"CRM-{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


def codes_in(text: str) -> list[str]:
    """Verification codes found in a subject, normalised (upper case)."""
    return [f"CRM-{a}-{b}-{c}".upper() for a, b, c in _CODE.findall(text or "")]
