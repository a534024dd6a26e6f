"""A calendar's push notification as a provider adapter reads it: apart from the calendar port
(:mod:`crmsync.ports.calendar`, which names it too) because the webhooks need this alone, and
the port's models are a measurable part of their cold start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelNotification:
    """A push notification as the adapter read it from the provider's request; not yet
    authenticated (the channel's stored resource id and token hash decide that)."""

    channel_id: str
    resource_id: str
    token: str
    #: The channel's opening message (Google's ``sync`` state): nothing changed.
    handshake: bool
    message_number: int | None = None
