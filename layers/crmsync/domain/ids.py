"""Ids that end up in keys: plain tokens of bounded length, checked where they enter."""

from __future__ import annotations

import re

_ID = re.compile(r"^[A-Za-z0-9._@:+\-]{1,128}$")


def check_id(kind: str, value: str) -> str:
    """Tenant/user/connection ids must be plain tokens: no key separators, bounded length."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"invalid {kind} id")
    return value
