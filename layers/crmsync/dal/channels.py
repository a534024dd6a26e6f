"""Push channels, found by the channel id a notification names."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist

from crmsync.dal.notifications import Channel
from crmsync.models.keys import CHANNEL_SK as _SK
from crmsync.models.sync import ChannelItem, channel_pk

__all__ = ["Channel", "ChannelStore"]


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
