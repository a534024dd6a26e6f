"""Google Calendar push notifications: the ``X-Goog-*`` headers of a channel message."""

from __future__ import annotations

import re

from crmsync.ports.notifications import ChannelNotification

__all__ = ["parse_notification"]

#: Header values we read: visible ASCII (and spaces) of bounded length. Google's are short
#: tokens; anything else is not a Google notification and is refused before it is used.
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{0,256}$")
_STATES = frozenset({"sync", "exists", "not_exists"})
#: "always 1 for sync messages … increase for each subsequent message": an int64.
_MESSAGE_NUMBER = re.compile(r"^[0-9]{1,19}$")
_NAMES = ("x-goog-channel-id", "x-goog-resource-state", "x-goog-resource-id", "x-goog-channel-token")


def parse_notification(headers: dict[str, str]) -> ChannelNotification | str:
    """The notification the headers carry, or why they are refused (for the log; never a
    header's value, which may be anything, the channel token among them)."""
    h = {k.lower(): v for k, v in headers.items()}
    for name in (*_NAMES, "x-goog-message-number"):
        if not _HEADER_VALUE.match(h.get(name, "")):
            return f"malformed {name}"
    channel_id, state, resource_id, token = (h.get(name, "") for name in _NAMES)
    if not channel_id or not state:
        return "not a channel notification"
    if state not in _STATES:
        return "unknown resource state"
    number = h.get("x-goog-message-number", "")
    if number and not _MESSAGE_NUMBER.match(number):
        return "malformed x-goog-message-number"
    return ChannelNotification(
        channel_id=channel_id,
        resource_id=resource_id,
        token=token,
        handshake=state == "sync",
        message_number=int(number) if number else None,
    )
