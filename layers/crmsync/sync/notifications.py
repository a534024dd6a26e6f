"""A push notification of a calendar (Google channel, Graph subscription) turned into a queued
sync: what the webhooks run on every request.

Kept apart from the channels' upkeep (:mod:`crmsync.sync.channels`, which opens, renews and
stops channels through the calendar port and the mirror) so that the webhooks import only
this: the stores are protocols, met by the webhooks' low-level ones
(:mod:`crmsync.dal.notifications`) and by the PynamoDB stores the worker and the integration
suites use; the message is the plain twin of the pydantic one (:mod:`crmsync.messaging.plain`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from crmsync.messaging.plain import PlainCalendarSyncRequest
from crmsync.security.secrets import same, sha256_hex

if TYPE_CHECKING:
    from crmsync.dal.notifications import Channel
    from crmsync.domain import Principal
    from crmsync.ports.notifications import ChannelNotification

#: Graph's lifecycle events (learn.microsoft.com/graph/change-notifications-lifecycle-events)
#: that act on the subscription itself, in the worker (a ``missed`` only asks for a sync).
REAUTHORIZATION_REQUIRED = "reauthorizationRequired"
SUBSCRIPTION_REMOVED = "subscriptionRemoved"
MISSED = "missed"
SUBSCRIPTION_ACTIONS = frozenset({REAUTHORIZATION_REQUIRED, SUBSCRIPTION_REMOVED})
#: A request pending this long lost its message (never sent, or dead-lettered): the next
#: notification opens a new one.
REQUEST_LOST_AFTER = timedelta(minutes=5)


class ChannelLookup(Protocol):
    def get(self, channel_id: str) -> Channel | None: ...


class SyncMarks(Protocol):
    """The "sync requested" marks (:class:`crmsync.dal.sync_requests.SyncRequestStore`)."""

    def note(
        self, principal: Principal, connection_id: str, calendar_id: str, now: datetime, stale_before: datetime
    ) -> bool: ...

    def withdraw(self, principal: Principal, connection_id: str, calendar_id: str, requested_at: datetime) -> None: ...


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


def on_notification(
    parsed: ChannelNotification,
    store: ChannelLookup,
    marks: SyncMarks,
    queue: Queue,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    *,
    lifecycle: str | None = None,
) -> tuple[int, str]:
    """A channel notification (parsed from the provider's request by its adapter):
    authenticate, enqueue, answer.

    ``sync`` messages are acknowledged and ignored;
    unknown or stopped channels are acknowledged (Google keeps sending briefly after a stop);
    a channel whose resource id or token does not match is refused (403). An authentic
    notification opens a sync request for its calendar, or joins the pending one: a burst
    queues one sync, plus one trailing sync for what arrives once that sync has started.

    ``lifecycle``: a Graph lifecycle event. ``missed`` is a change notification like any
    (a sync catches up). ``reauthorizationRequired`` and ``subscriptionRemoved`` queue their
    own sync, never coalesced (a pending push sync would not act on the subscription); the
    worker renews or recreates the subscription after it (the webhook calls no provider).
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
    if lifecycle is not None and lifecycle in SUBSCRIPTION_ACTIONS:
        queue.send(
            PlainCalendarSyncRequest(
                tenant_id=channel.tenant_id,
                user_id=channel.user_id,
                connection_id=channel.connection_id,
                calendar_id=channel.calendar_id,
                reason=lifecycle,
                channel_id=channel.channel_id,
                occasion=now.isoformat(),
            )
        )
        return 200, "enqueued"
    if not marks.note(principal, channel.connection_id, channel.calendar_id, now, now - REQUEST_LOST_AFTER):
        return 200, "coalesced"
    try:
        queue.send(
            PlainCalendarSyncRequest(
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
