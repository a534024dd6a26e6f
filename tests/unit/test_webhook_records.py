"""The webhooks read channel records and write "sync requested" marks with the low-level client
(crmsync.dal.notifications), the worker and the channel upkeep with PynamoDB: the two must name
the same table keys and attributes and write dates alike, or they drift apart silently.
(What the conditional writes do is run against DynamoDB Local, crossed with the PynamoDB
side, by tests/integration/test_channels.py.)"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pynamodb.attributes import UTCDateTimeAttribute

from crmsync.dal import channels as pynamodb_channels
from crmsync.dal import notifications as low
from crmsync.models.base import ConnectionsTableItem
from crmsync.models.keys import CHANNEL_SK, channel_pk, sync_request_sk
from crmsync.models.sync import ChannelItem, SyncRequestItem


def attribute_names(model: type[ConnectionsTableItem]) -> set[str]:
    """The names the model stores its attributes under (``attr_name``)."""
    return {attribute.attr_name for attribute in model.get_attributes().values()}


def test_the_key_attributes_are_the_models() -> None:
    assert (ConnectionsTableItem._hash_keyname, ConnectionsTableItem._range_keyname) == (low.PK, low.SK)


def test_the_channel_attributes_are_the_channel_items() -> None:
    assert attribute_names(ChannelItem) - {low.PK, low.SK} == set(low.CHANNEL_ATTRIBUTES)
    fields = [f.name for f in dataclasses.fields(low.Channel)]
    assert fields == ["channel_id", *low.CHANNEL_ATTRIBUTES]


def test_the_mark_attributes_are_the_sync_request_items() -> None:
    assert {low.PENDING, low.REQUESTED_AT, low.NOTIFIED_AT} == attribute_names(SyncRequestItem) - {low.PK, low.SK}


def test_both_sides_address_a_channel_alike() -> None:
    assert pynamodb_channels._SK is CHANNEL_SK
    item = ChannelItem(channel_pk("c-1"), CHANNEL_SK)
    assert (item.pk, item.sk) == ("CHANNEL#c-1", "CHANNEL")
    assert sync_request_sk("g1", "ada@example.com") == "SYNCREQ#g1#ada@example.com"


def test_a_channel_written_by_pynamodb_is_read_by_the_webhook_as_it_was_written() -> None:
    expires = datetime.now(UTC) + timedelta(days=7)
    written = ChannelItem(
        channel_pk("c-1"),
        CHANNEL_SK,
        tenant_id="tenant-a",
        user_id="alice",
        connection_id="g1",
        calendar_id="ada@example.com",
        resource_id="res-1",
        token_hash="ab" * 32,
        expires_at=expires,
    )
    channel = low.channel_from_item("c-1", written.serialize())
    assert channel == low.Channel("c-1", "tenant-a", "alice", "g1", "ada@example.com", "res-1", "ab" * 32, expires)


@pytest.mark.parametrize(
    "moment",
    [
        datetime.now(UTC),
        datetime.now(UTC).replace(microsecond=0),
        datetime.now(timezone(timedelta(hours=-7))),  # an offset: stored in UTC
        datetime.now(UTC).replace(tzinfo=None),  # naive: taken as UTC
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # zero-padded year
    ],
)
def test_dates_are_written_and_read_as_pynamodb_writes_and_reads_them(moment: datetime) -> None:
    pynamodb = UTCDateTimeAttribute()
    text = low.serialize_datetime(moment)
    assert text == pynamodb.serialize(moment)
    assert low.deserialize_datetime(text) == pynamodb.deserialize(text)
