"""Calendar push channels: open one per synced calendar, renew it at least 24 h before it
expires (new channel first, then stop the old: Google documents the overlap), and turn a
notification into a queued sync."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crmsync.dal.channels import Channel, ChannelStore
from crmsync.dal.mirror import MirrorStore, SyncCursor
from crmsync.dal.sync_requests import SyncRequestStore
from crmsync.domain import Principal
from crmsync.messaging.messages import CalendarSyncRequest
from crmsync.providers.google.api import ProviderNotFound
from crmsync.security.secrets import new_secret, same, sha256_hex
from crmsync.sync.coalesce import REQUEST_LOST_AFTER

log = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(hours=24)


class ChannelApi(Protocol):
    def watch_events(self, calendar_id: str, *, channel_id: str, address: str, token: str) -> dict[str, Any]: ...
    def stop_channel(self, channel_id: str, resource_id: str) -> None: ...


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class Channels:
    def __init__(
        self,
        *,
        store: ChannelStore,
        mirror: MirrorStore,
        webhook_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._mirror = mirror
        self._webhook_url = webhook_url
        self._clock = clock

    def ensure(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        api: ChannelApi,
        cursor: SyncCursor | None = None,
    ) -> str:
        """``live``, ``opened`` or ``renewed``. Call after a successful sync (with the cursor
        it read, if any: the channel fields are not changed by the sync itself)."""
        now = self._clock()
        if cursor is None:
            cursor = self._mirror.cursor(principal, connection_id, calendar_id)
        if cursor.channel_id and cursor.channel_expires_at and cursor.channel_expires_at - now > RENEW_BEFORE:
            return "live"
        channel_id, token = str(uuid.uuid4()), new_secret(32)
        answer = api.watch_events(calendar_id, channel_id=channel_id, address=self._webhook_url, token=token)
        expires_at = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
        self._store.put(
            Channel(
                channel_id=channel_id,
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                calendar_id=calendar_id,
                resource_id=str(answer["resourceId"]),
                token_hash=sha256_hex(token),
                expires_at=expires_at,
            )
        )
        self._mirror.set_channel(
            principal, connection_id, calendar_id, channel_id, str(answer["resourceId"]), expires_at
        )
        if cursor.channel_id:
            self._stop(api, cursor.channel_id, cursor.channel_resource_id or "")
            return "renewed"
        return "opened"

    def stop(self, api: Any, channel_id: str, resource_id: str) -> None:
        """Stop a channel at Google (already gone counts as stopped) and forget it."""
        self._stop(api, channel_id, resource_id)

    def _stop(self, api: ChannelApi, channel_id: str, resource_id: str) -> None:
        with contextlib.suppress(ProviderNotFound):  # already gone at Google
            api.stop_channel(channel_id, resource_id)
        self._store.delete(channel_id)


#: Header values we read: visible ASCII (and spaces) of bounded length. Google's are short
#: tokens; anything else is not a Google notification and is refused before it is used.
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{0,256}$")
_STATES = frozenset({"sync", "exists", "not_exists"})
#: "always 1 for sync messages … increase for each subsequent message": an int64.
_MESSAGE_NUMBER = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True)
class Notification:
    channel_id: str
    state: str
    resource_id: str
    token: str
    message_number: int | None


def parse_notification(headers: dict[str, str]) -> Notification | str:
    """The notification the headers carry, or why they are refused (for the log)."""
    h = {k.lower(): v for k, v in headers.items()}
    names = ("x-goog-channel-id", "x-goog-resource-state", "x-goog-resource-id", "x-goog-channel-token")
    for name in (*names, "x-goog-message-number"):
        if not _HEADER_VALUE.match(h.get(name, "")):
            return f"malformed {name}"
    channel_id, state, resource_id, token = (h.get(name, "") for name in names)
    if not channel_id or not state:
        return "not a channel notification"
    if state not in _STATES:
        return "unknown resource state"
    number = h.get("x-goog-message-number", "")
    if number and not _MESSAGE_NUMBER.match(number):
        return "malformed x-goog-message-number"
    return Notification(channel_id, state, resource_id, token, int(number) if number else None)


def on_notification(
    headers: dict[str, str],
    store: ChannelStore,
    marks: SyncRequestStore,
    queue: Queue,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[int, str]:
    """A Calendar notification (headers only, no body): authenticate, enqueue, answer.

    Malformed headers are refused (400); ``sync`` messages are acknowledged and ignored;
    unknown or stopped channels are acknowledged (Google keeps sending briefly after a stop);
    a channel whose resource id or token does not match is refused (403). An authentic
    notification opens a sync request for its calendar, or joins the pending one: a burst
    queues one sync, plus one trailing sync for what arrives once that sync has started.
    """
    parsed = parse_notification(headers)
    if isinstance(parsed, str):
        return 400, parsed
    if parsed.state == "sync":
        return 200, "sync ignored"
    channel = store.get(parsed.channel_id)
    if channel is None:
        return 200, "unknown channel"
    resource_ok = same(channel.resource_id, parsed.resource_id)
    token_ok = same(channel.token_hash, sha256_hex(parsed.token))
    if not (resource_ok and token_ok):
        return 403, "channel token or resource mismatch"
    principal = channel.principal
    now = clock()
    if not marks.note(principal, channel.connection_id, channel.calendar_id, now, now - REQUEST_LOST_AFTER):
        return 200, "coalesced"
    try:
        queue.send(
            CalendarSyncRequest(
                tenant_id=channel.tenant_id,
                user_id=channel.user_id,
                connection_id=channel.connection_id,
                calendar_id=channel.calendar_id,
                reason="push",
                occasion=now.isoformat(),
            )
        )
    except Exception:
        # Not queued: the next notification (Google retries a 5xx) must open a request again.
        marks.withdraw(principal, channel.connection_id, channel.calendar_id, now)
        raise
    return 200, "enqueued"
