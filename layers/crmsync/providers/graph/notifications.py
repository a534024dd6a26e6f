"""Microsoft Graph change notifications: the webhook's validation handshake and the
``value`` array of change and lifecycle notifications (learn.microsoft.com: "Set up
notifications for changes in resource data", "Reduce missing subscriptions and change
notifications" — lifecycle notifications).

What a notification proves is its ``clientState``: the secret we gave the subscription,
stored only as its hash and compared in constant time by :func:`crmsync.sync.channels.on_notification`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from crmsync.ports.notifications import ChannelNotification

__all__ = ["LIFECYCLE_EVENTS", "MAX_BODY", "GraphNotification", "parse_notifications", "validation_token"]

#: Larger bodies are refused before they are parsed (Graph's batches are far smaller).
MAX_BODY = 1_000_000
#: Notifications one request may carry (Graph batches; more is not Graph).
MAX_ITEMS = 1000
#: The longest validation token echoed back (Graph's are a few hundred characters).
MAX_VALIDATION_TOKEN = 4096
#: Subscription ids are GUIDs; clientState is at most 128 characters (Graph refuses more).
_SUBSCRIPTION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_MAX_CLIENT_STATE = 128
#: Lifecycle events Graph sends to the lifecycleNotificationUrl.
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


@dataclass(frozen=True)
class GraphNotification:
    """One authenticated-to-be item: the channel notification the shared webhook logic checks,
    and the lifecycle event when it is one (None for a change notification)."""

    channel: ChannelNotification
    lifecycle_event: str | None = None


def validation_token(query: object) -> str | None:
    """The token of a subscription validation request (``?validationToken=…``, already
    URL-decoded by API Gateway), or None when the request is not one. A token of a size Graph
    never sends, or with control characters, is not echoed (``""``: refused)."""
    if not isinstance(query, dict) or "validationToken" not in query:
        return None
    token = query.get("validationToken")
    if not isinstance(token, str) or not token or len(token) > MAX_VALIDATION_TOKEN:
        return ""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        return ""
    return token


def parse_notifications(body: object, is_base64: bool) -> list[GraphNotification] | str:
    """The notifications in a webhook body, or why it is refused (for the log: never a
    value from the body, which may hold anything, a client state among them)."""
    if not isinstance(body, str) or not body:
        return "no body"
    if len(body) > MAX_BODY * 2:
        return "body too large"
    raw: bytes | str = body
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "body is not base64"
    if len(raw) > MAX_BODY:
        return "body too large"
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "body is not JSON"
    items = document.get("value") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        return "no notifications"
    if len(items) > MAX_ITEMS:
        return "too many notifications"
    found: list[GraphNotification] = []
    for item in items:
        parsed = _item(item)
        if isinstance(parsed, str):
            return parsed
        found.append(parsed)
    return found


def _item(item: object) -> GraphNotification | str:
    if not isinstance(item, dict):
        return "a notification is not an object"
    subscription_id = item.get("subscriptionId")
    if not isinstance(subscription_id, str) or not _SUBSCRIPTION_ID.match(subscription_id):
        return "malformed subscriptionId"
    client_state = item.get("clientState", "")
    if not isinstance(client_state, str) or len(client_state) > _MAX_CLIENT_STATE:
        return "malformed clientState"
    lifecycle = item.get("lifecycleEvent")
    if lifecycle is not None and lifecycle not in LIFECYCLE_EVENTS:
        return "unknown lifecycleEvent"
    if lifecycle is None and not isinstance(item.get("changeType"), str):
        return "neither a change nor a lifecycle notification"
    return GraphNotification(
        ChannelNotification(channel_id=subscription_id, resource_id="", token=client_state, handshake=False),
        lifecycle_event=lifecycle,
    )
