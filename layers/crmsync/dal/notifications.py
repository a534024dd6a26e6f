"""The webhooks' reads and writes, with botocore's low-level DynamoDB client instead of PynamoDB.

The one documented exception to "PynamoDB for every access" (docs/ARCHITECTURE.md, "Data
access"): a push notification costs a webhook one read (its channel record) and at most two
conditional writes (its calendar's "sync requested" mark). PynamoDB's import (its models, and
the models of every other item) would cost the webhooks a third of their cold start; botocore,
which PynamoDB is built on, is all they need. What the records look like is not defined here:
the keys come from :mod:`crmsync.models.keys` (which the models use too), the attribute names
and the date format are the models' own, checked against them by
tests/unit/test_webhook_records.py, and the semantics are those of
:class:`crmsync.dal.channels.ChannelStore` and :class:`crmsync.dal.sync_requests.SyncRequestStore`
(the integration suites run :func:`crmsync.sync.notifications.on_notification` over both).

botocore is imported here, at import time (every notification needs it); the client, with its
service model, is made on the first request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from pynamodb.settings import get_settings_value  # PynamoDB's settings alone: not its models

from crmsync.domain import Principal
from crmsync.models.keys import CHANNEL_SK, channel_pk, sync_request_sk, user_pk

#: The key attributes of the connections table (ConnectionsTableItem.pk/sk).
PK, SK = "pk", "sk"
#: ChannelItem's attributes, in the order :class:`Channel` names them.
CHANNEL_ATTRIBUTES = (
    "tenant_id",
    "user_id",
    "connection_id",
    "calendar_id",
    "resource_id",
    "token_hash",
    "expires_at",
)
#: SyncRequestItem's attributes.
PENDING, REQUESTED_AT, NOTIFIED_AT = "pending", "requested_at", "notified_at"
#: pynamodb.attributes.UTCDateTimeAttribute's format (pynamodb.constants.DATETIME_FORMAT).
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+0000"


@dataclass(frozen=True)
class Channel:
    """A push channel (Google) or subscription (Graph), found by the id its notifications name."""

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


def serialize_datetime(value: datetime) -> str:
    """As UTCDateTimeAttribute stores it (naive values are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(DATETIME_FORMAT).zfill(31)


def deserialize_datetime(value: str) -> datetime:
    return datetime.strptime(value.zfill(31), DATETIME_FORMAT).replace(tzinfo=UTC)


def channel_from_item(channel_id: str, item: dict[str, Any]) -> Channel:
    """A channel record as DynamoDB answers it (attribute values typed: ``{"S": …}``)."""
    values = {name: item[name]["S"] for name in CHANNEL_ATTRIBUTES}
    return Channel(
        channel_id=channel_id,
        **{k: v for k, v in values.items() if k != "expires_at"},
        expires_at=deserialize_datetime(values["expires_at"]),
    )


class Table:
    """The connections table through one botocore client per process, configured as PynamoDB
    configures its own (same timeouts, pool and retries; the endpoint from the environment,
    ``AWS_ENDPOINT_URL_DYNAMODB`` locally), made on first use."""

    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _dynamodb_client()
        return self._client


def _dynamodb_client() -> Any:
    """What ``pynamodb.connection.base.Connection.client`` makes, from PynamoDB's settings."""
    retries = get_settings_value("retry_configuration")
    if retries == "LEGACY":
        retries = {"total_max_attempts": 1 + get_settings_value("max_retry_attempts"), "mode": "standard"}
    config = Config(
        parameter_validation=False,
        connect_timeout=get_settings_value("connect_timeout_seconds"),
        read_timeout=get_settings_value("read_timeout_seconds"),
        max_pool_connections=get_settings_value("max_pool_connections"),
        retries=retries,
    )
    return botocore.session.get_session().create_client(
        "dynamodb", region_name=get_settings_value("region"), config=config
    )


def _condition_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class ChannelReader:
    """:meth:`crmsync.dal.channels.ChannelStore.get`, and nothing else."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, channel_id: str) -> Channel | None:
        if not channel_id or len(channel_id) > 64:
            return None
        answer = self._table.client.get_item(
            TableName=self._table.name,
            Key={PK: {"S": channel_pk(channel_id)}, SK: {"S": CHANNEL_SK}},
        )
        item = answer.get("Item")
        return None if item is None else channel_from_item(channel_id, item)


class SyncMarks:
    """:meth:`crmsync.dal.sync_requests.SyncRequestStore.note` and ``withdraw``: the same
    conditional updates, the same answers."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def _update(self, principal: Principal, connection_id: str, calendar_id: str, **kwargs: Any) -> bool:
        """True if written, False if its condition failed."""
        try:
            self._table.client.update_item(
                TableName=self._table.name,
                Key={
                    PK: {"S": user_pk(principal.tenant_id, principal.user_id)},
                    SK: {"S": sync_request_sk(connection_id, calendar_id)},
                },
                **kwargs,
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    def note(
        self, principal: Principal, connection_id: str, calendar_id: str, now: datetime, stale_before: datetime
    ) -> bool:
        """True when the notification opened a request (the caller queues a sync), False when
        a pending request (opened since ``stale_before``) covers it."""
        names = {"#p": PENDING, "#r": REQUESTED_AT, "#n": NOTIFIED_AT}
        at, stale = {"S": serialize_datetime(now)}, {"S": serialize_datetime(stale_before)}
        joined = "(#p = :true AND #r >= :stale)"
        if self._update(
            principal,
            connection_id,
            calendar_id,
            UpdateExpression="SET #n = :now",
            ConditionExpression=joined,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":now": at, ":true": {"BOOL": True}, ":stale": stale},
        ):
            return False
        # Not pending (or lost): open a request, unless another notification did in between.
        return self._update(
            principal,
            connection_id,
            calendar_id,
            UpdateExpression="SET #p = :true, #r = :now, #n = :now",
            ConditionExpression=f"NOT {joined}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":now": at, ":true": {"BOOL": True}, ":stale": stale},
        )

    def withdraw(self, principal: Principal, connection_id: str, calendar_id: str, requested_at: datetime) -> None:
        """Undo the request opened at ``requested_at`` whose sync could not be queued (only if
        it is still pending: a worker may have taken it meanwhile)."""
        self._update(
            principal,
            connection_id,
            calendar_id,
            UpdateExpression="SET #p = :false",
            ConditionExpression="#p = :true AND #r = :at",
            ExpressionAttributeNames={"#p": PENDING, "#r": REQUESTED_AT},
            ExpressionAttributeValues={
                ":false": {"BOOL": False},
                ":true": {"BOOL": True},
                ":at": {"S": serialize_datetime(requested_at)},
            },
        )
