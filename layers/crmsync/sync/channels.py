"""Calendar push channels: open one per synced calendar whose provider pushes, renew it at
least 24 h before it expires (new channel first, then stop the old: Google documents the
overlap), and turn an authentic notification into a queued sync."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crmsync.dal.channels import Channel, ChannelStore
from crmsync.dal.mirror import MirrorStore, SyncCursor
from crmsync.dal.sync_requests import SyncRequestStore
from crmsync.domain import Principal
from crmsync.messaging.messages import CalendarSyncRequest
from crmsync.ports.calendar import CalendarPort, ChannelNotification
from crmsync.ports.errors import ProviderNotFound
from crmsync.security.secrets import new_secret, same, sha256_hex
from crmsync.sync.coalesce import REQUEST_LOST_AFTER

log = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(hours=24)


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
        api: CalendarPort,
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
        watch = api.watch(calendar_id, channel_id=channel_id, address=self._webhook_url, token=token)
        self._store.put(
            Channel(
                channel_id=channel_id,
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                calendar_id=calendar_id,
                resource_id=watch.resource_id,
                token_hash=sha256_hex(token),
                expires_at=watch.expires_at,
            )
        )
        self._mirror.set_channel(principal, connection_id, calendar_id, channel_id, watch.resource_id, watch.expires_at)
        if cursor.channel_id:
            self._stop(api, cursor.channel_id, cursor.channel_resource_id or "")
            return "renewed"
        return "opened"

    def stop(self, api: CalendarPort, channel_id: str, resource_id: str) -> None:
        """Stop a channel at the provider (already gone counts as stopped) and forget it."""
        self._stop(api, channel_id, resource_id)

    def _stop(self, api: CalendarPort, channel_id: str, resource_id: str) -> None:
        with contextlib.suppress(ProviderNotFound):  # already gone at the provider
            api.stop_watch(channel_id, resource_id)
        self._store.delete(channel_id)


def on_notification(
    parsed: ChannelNotification,
    store: ChannelStore,
    marks: SyncRequestStore,
    queue: Queue,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[int, str]:
    """A channel notification (parsed from the provider's request by its adapter):
    authenticate, enqueue, answer.

    ``sync`` messages are acknowledged and ignored;
    unknown or stopped channels are acknowledged (Google keeps sending briefly after a stop);
    a channel whose resource id or token does not match is refused (403). An authentic
    notification opens a sync request for its calendar, or joins the pending one: a burst
    queues one sync, plus one trailing sync for what arrives once that sync has started.
    """
    if parsed.handshake:
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
