"""Calendar watch channels: web_hook deliveries with Google's ``X-Goog-*`` headers and no body.

A channel sends a ``sync`` message (message number 1) when it is created, then ``exists``
on every change of its calendar's events (message numbers increase, not by one), or
``not_exists`` when the calendar goes away. Expiry is judged on the emulator clock.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from devstack.google.apis.discovery import ApiError
from devstack.google.apis.push import Notification

#: Google's default channel lifetime for Calendar (``params.ttl`` doc: 604800 seconds).
DEFAULT_TTL_SECONDS = 604800
_CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")


@dataclass
class Channel:
    """One live notification channel on one calendar's events collection."""

    id: str
    resource_id: str
    resource_uri: str
    address: str
    token: str | None
    expiration_ms: int
    sub: str
    email: str
    calendar_id: str
    message_number: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the control API (``GET /_emulator/calendar/channels``)."""
        return {
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "address": self.address,
            "token": self.token,
            "expiration": str(self.expiration_ms),
            "email": self.email,
            "calendarId": self.calendar_id,
            "messageNumber": self.message_number,
        }


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (the only place the emulator may deliver to)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_watch_body(body: Any) -> tuple[str, str, str | None, float | None, float | None]:
    """Validate a watch request body → (id, address, token, ttl seconds, expiration ms)."""
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid channel.", "invalid")
    channel_id = body.get("id")
    if not isinstance(channel_id, str) or not channel_id:
        raise ApiError(400, "Required channel id.", "required")
    if not _CHANNEL_ID.match(channel_id):
        raise ApiError(400, f"Channel id {channel_id} contains invalid characters or is longer than 64.", "invalid")
    if body.get("type") not in ("web_hook", "webhook"):
        raise ApiError(400, f"Invalid value for channel type: {body.get('type')!r}.", "invalid")
    address = body.get("address")
    if not isinstance(address, str) or not address:
        raise ApiError(400, "Required channel address.", "required")
    parts = urlsplit(address)
    # Google accepts only https; the local stack has no TLS, so plain http is allowed on loopback only.
    if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))):
        raise ApiError(400, f"WebHook callback must be HTTPS: {address}", "webhookUrlNotHttps")
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        raise ApiError(400, "Invalid channel token.", "invalid")
    ttl: float | None = None
    params = body.get("params") or {}
    if isinstance(params, dict) and params.get("ttl") is not None:
        try:
            ttl = float(params["ttl"])
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid ttl value: {params['ttl']!r}.", "invalid") from None
        if ttl <= 0:
            raise ApiError(400, f"Invalid ttl value: {params['ttl']!r}.", "invalid")
    expiration: float | None = None
    if body.get("expiration") is not None:
        try:
            expiration = float(body["expiration"])
        except (TypeError, ValueError):
            raise ApiError(400, "Invalid expiration.", "invalid") from None
    return channel_id, address, token, ttl, expiration


class Channels:
    """The registry of live channels; callers hold the emulator state lock."""

    def __init__(self, push: Any) -> None:
        self._push = push
        self.by_id: dict[str, Channel] = {}

    def add(self, channel: Channel, now: float) -> None:
        """Register ``channel`` (its id must be unused) and send its ``sync`` message."""
        self.prune(now)
        if channel.id in self.by_id:
            raise ApiError(400, f"Channel id {channel.id} not unique", "channelIdNotUnique")
        self.by_id[channel.id] = channel
        self._send(channel, "sync")

    def stop(self, channel_id: str, resource_id: str, sub: str) -> None:
        """channels.stop: 404 unless a live channel with this id and resourceId belongs to ``sub``."""
        channel = self.by_id.get(channel_id)
        if channel is None or channel.resource_id != resource_id or channel.sub != sub:
            raise ApiError(404, f"Channel '{channel_id}' not found for project", "notFound")
        del self.by_id[channel_id]

    def prune(self, now: float) -> None:
        """Forget channels whose expiration has passed on the emulator clock."""
        for channel in list(self.by_id.values()):
            if channel.expiration_ms <= now * 1000:
                del self.by_id[channel.id]

    def notify(self, sub: str, calendar_id: str, now: float, state: str = "exists") -> None:
        """Send ``state`` to every live channel watching ``calendar_id`` of account ``sub``."""
        self.prune(now)
        for channel in list(self.by_id.values()):
            if channel.sub == sub and channel.calendar_id == calendar_id:
                self._send(channel, state)
                if state == "not_exists":
                    del self.by_id[channel.id]

    def listing(self, email: str | None = None) -> list[dict[str, Any]]:
        """Live channels, optionally only those of ``email``."""
        return [c.as_dict() for c in self.by_id.values() if email is None or c.email == email]

    def _send(self, channel: Channel, state: str) -> None:
        # "always 1 for sync messages … increase for each subsequent message … not sequential".
        channel.message_number = 1 if state == "sync" else channel.message_number + 1 + secrets.randbelow(3)
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": formatdate(channel.expiration_ms / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.message_number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        host = urlsplit(channel.address).hostname or ""
        if not is_loopback(host):
            # The emulator never connects off this machine; such channels exist but stay silent.
            return
        meta = {"channel_id": channel.id, "email": channel.email, "calendar_id": channel.calendar_id, "state": state}
        self._push.send(Notification("calendar", channel.address, headers, b"", meta))
