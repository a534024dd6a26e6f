"""Calendar push channels: open one per synced calendar whose provider pushes, renew it at
least 24 h before it expires, and turn an authentic notification into a queued sync.

Two kinds (the adapter's ``notification``): a Google push channel is renewed by opening a new
channel first, then stopping the old (Google documents the overlap); a Graph subscription is
renewed in place (``PATCH``), and Graph's lifecycle events act on it: ``reauthorizationRequired``
renews it (a renewal reauthorizes), ``subscriptionRemoved`` opens a new one, ``missed`` only
asks for a sync. Either way the channel record is keyed by the id the provider answers
(Google echoes ours, Graph assigns its own): that is the id its notifications name."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

from crmsync.dal.channels import Channel, ChannelStore
from crmsync.dal.mirror import MirrorStore, SyncCursor
from crmsync.domain import Principal
from crmsync.ports.calendar import CalendarPort, ChangeNotification, SubscriptionPort
from crmsync.ports.errors import ProviderNotFound
from crmsync.security.secrets import new_secret, sha256_hex

# What the webhooks run on every notification lives apart, light (see there); its callers
# (the worker, the integration suites) also find it here.
from crmsync.sync.notifications import (  # noqa: F401 - re-exported
    MISSED,
    REAUTHORIZATION_REQUIRED,
    SUBSCRIPTION_ACTIONS,
    SUBSCRIPTION_REMOVED,
    on_notification,
)

log = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(hours=24)


class Channels:
    def __init__(
        self,
        *,
        store: ChannelStore,
        mirror: MirrorStore,
        webhook_url: str,
        subscription_url: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``webhook_url``: where Google's channels notify; ``subscription_url``: Graph's
        notification URL (its lifecycle URL is the Graph adapter's own setting)."""
        self._store = store
        self._mirror = mirror
        self._webhook_url = webhook_url
        self._subscription_url = subscription_url
        self._clock = clock

    def _address(self, api: CalendarPort) -> str:
        return self._subscription_url if api.notification is ChangeNotification.SUBSCRIPTION else self._webhook_url

    def ensure(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        api: CalendarPort,
        cursor: SyncCursor | None = None,
        *,
        lifecycle: str = "",
        notified: str = "",
    ) -> str:
        """``live``, ``opened`` or ``renewed``. Call after a successful sync (with the cursor
        it read, if any: the channel fields are not changed by the sync itself).

        ``lifecycle``/``notified``: a Graph lifecycle event and the subscription it named. It
        acts only on the calendar's current subscription (one renewed or replaced since is
        left alone): ``reauthorizationRequired`` renews it even when it is far from expiry,
        ``subscriptionRemoved`` opens a new one (Graph has removed the old)."""
        now = self._clock()
        if cursor is None:
            cursor = self._mirror.cursor(principal, connection_id, calendar_id)
        current = cursor.channel_id
        acted_on = bool(lifecycle in SUBSCRIPTION_ACTIONS and current and current == notified)
        if acted_on and lifecycle == SUBSCRIPTION_REMOVED and current:
            self._store.delete(current)  # already gone at Graph: nothing to stop
            return self._open(principal, connection_id, calendar_id, api, previous=None)
        live = current and cursor.channel_expires_at and cursor.channel_expires_at - now > RENEW_BEFORE
        if live and not acted_on:
            return "live"
        if current and api.notification is ChangeNotification.SUBSCRIPTION:
            renewed = self._renew(principal, connection_id, calendar_id, api, current)
            if renewed == "renewed":
                return renewed
            # Gone at Graph: nothing to stop. Unrecorded here (its clientState unknown, so its
            # notifications could never be authenticated): replaced, and stopped at Graph.
            return self._open(
                principal, connection_id, calendar_id, api, previous=cursor if renewed == "unrecorded" else None
            )
        return self._open(principal, connection_id, calendar_id, api, previous=cursor)

    def _open(
        self,
        principal: Principal,
        connection_id: str,
        calendar_id: str,
        api: CalendarPort,
        *,
        previous: SyncCursor | None,
    ) -> str:
        """Open a channel and record it under the id the provider answered; then stop the
        ``previous`` one (Google's overlap). ``opened``, or ``renewed`` when one was stopped."""
        channel_id, token = str(uuid.uuid4()), new_secret(32)
        watch = api.watch(calendar_id, channel_id=channel_id, address=self._address(api), token=token)
        self._store.put(
            Channel(
                channel_id=watch.channel_id,
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                calendar_id=calendar_id,
                resource_id=watch.resource_id,
                token_hash=sha256_hex(token),
                expires_at=watch.expires_at,
            )
        )
        self._mirror.set_channel(
            principal, connection_id, calendar_id, watch.channel_id, watch.resource_id, watch.expires_at
        )
        if previous is not None and previous.channel_id:
            self._stop(api, previous.channel_id, previous.channel_resource_id or "")
            return "renewed"
        return "opened"

    def _renew(
        self, principal: Principal, connection_id: str, calendar_id: str, api: CalendarPort, current: str
    ) -> str:
        """Renew a Graph subscription in place (``PATCH``: same id, same clientState):
        ``renewed``; ``gone`` when Graph no longer has it (its record is dropped);
        ``unrecorded`` when its channel record is missing (nothing is renewed)."""
        channel = self._store.get(current)
        if channel is None:
            return "unrecorded"
        try:
            expires_at = cast(SubscriptionPort, api).renew_watch(current)
        except ProviderNotFound:
            self._store.delete(current)
            return "gone"
        self._store.put(replace(channel, expires_at=expires_at))
        self._mirror.set_channel(principal, connection_id, calendar_id, current, "", expires_at)
        return "renewed"

    def stop(self, api: CalendarPort, channel_id: str, resource_id: str) -> None:
        """Stop a channel at the provider (already gone counts as stopped) and forget it."""
        self._stop(api, channel_id, resource_id)

    def _stop(self, api: CalendarPort, channel_id: str, resource_id: str) -> None:
        with contextlib.suppress(ProviderNotFound):  # already gone at the provider
            api.stop_watch(channel_id, resource_id)
        self._store.delete(channel_id)
