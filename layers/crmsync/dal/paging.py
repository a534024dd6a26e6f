"""Opaque page cursors over one user's partition: the sort key to continue after, checked on the way in."""

from __future__ import annotations

import base64
import binascii
import json

from crmsync.errors import InvalidRequest


def encode_cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": sk}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, prefix: str) -> str | None:
    """The sort key a cursor continues after. It must lie under ``prefix`` (the listing it came
    from); the partition is always the caller's own, so a cursor cannot reach another user."""
    if not cursor:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = data["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidRequest("The cursor is not valid; start again without it.") from None
    if not isinstance(after, str) or not after.startswith(prefix) or len(after) > 1024:
        raise InvalidRequest("The cursor is not valid; start again without it.")
    return after
