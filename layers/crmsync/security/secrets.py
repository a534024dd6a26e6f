"""Random values and their hashes. Stored references to secrets are hashes, never the value."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random value with ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def new_pkce_verifier() -> str:
    """RFC 7636 verifier: 86 characters from the unreserved set (43..128 allowed)."""
    return secrets.token_urlsafe(64)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())
