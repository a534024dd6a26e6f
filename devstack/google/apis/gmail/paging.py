"""Opaque page tokens: encrypted and authenticated (Fernet), bound to the account, the method
and the request parameters they were issued for, so they are unguessable and cannot be
replayed against another mailbox or another query."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from devstack.google.apis.gmail.store import GmailError


def _fingerprint(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:24]


class PageTokens:
    """Issue and check page tokens; the key lives only in memory (tokens die with the emulator)."""

    def __init__(self) -> None:
        self._fernet = Fernet(Fernet.generate_key())

    def issue(self, kind: str, sub: str, params: dict[str, Any], cursor: Any) -> str:
        """A token for the page after ``cursor`` of this (kind, account, params) listing."""
        payload = {"k": kind, "s": sub, "p": _fingerprint(params), "c": cursor}
        return self._fernet.encrypt(json.dumps(payload).encode()).decode("ascii")

    def cursor(self, token: str, kind: str, sub: str, params: dict[str, Any]) -> Any:
        """The cursor in ``token``; 400 if it is forged or was issued for another request."""
        try:
            payload = json.loads(self._fernet.decrypt(token.encode("ascii")))
        except (InvalidToken, ValueError, UnicodeError):
            raise GmailError(400, "Invalid pageToken", "invalidArgument") from None
        if payload.get("k") != kind or payload.get("s") != sub or payload.get("p") != _fingerprint(params):
            raise GmailError(400, "Invalid pageToken", "invalidArgument")
        return payload.get("c")
