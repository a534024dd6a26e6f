"""Push channels, found by the channel id a notification names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from crmsync.domain import Principal
from crmsync.models.sync import ChannelItem, channel_pk

_SK = "CHANNEL"


@dataclass(frozen=True)
class Channel:
    channel_id: str
    tenant_id: str
    user_id: str
    connection_id: str
    calendar_id: str
    resource_id: str
    token_hash: str
    expires_at: datetime

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.user_id)


class ChannelStore:
    def get(self, channel_id: str) -> Channel | None:
        if not channel_id or len(channel_id) > 64:
            return None
        try:
            item = ChannelItem.get(channel_pk(channel_id), _SK)
        except DoesNotExist:
            return None
        return Channel(
            channel_id=channel_id,
            tenant_id=item.tenant_id,
            user_id=item.user_id,
            connection_id=item.connection_id,
            calendar_id=item.calendar_id,
            resource_id=item.resource_id,
            token_hash=item.token_hash,
            expires_at=item.expires_at,
        )

    def put(self, channel: Channel) -> None:
        ChannelItem(
            channel_pk(channel.channel_id),
            _SK,
            tenant_id=channel.tenant_id,
            user_id=channel.user_id,
            connection_id=channel.connection_id,
            calendar_id=channel.calendar_id,
            resource_id=channel.resource_id,
            token_hash=channel.token_hash,
            expires_at=channel.expires_at,
        ).save()

    def delete(self, channel_id: str) -> None:
        ChannelItem(channel_pk(channel_id), _SK).delete()
