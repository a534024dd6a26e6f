"""Publishing work to the sync queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class Message(Protocol):
    """A message of :mod:`crmsync.messaging.messages` (or its plain twin,
    :mod:`crmsync.messaging.plain`): pydantic is not imported here, so the webhooks need not."""

    @property
    def group_id(self) -> str: ...

    @property
    def deduplication_id(self) -> str: ...

    def model_dump_json(self) -> str: ...


class SyncQueue:
    def __init__(self, queue_url: str, sqs_client: SQSClient | None = None) -> None:
        self._url = queue_url
        self._sqs = sqs_client

    @property
    def sqs(self) -> SQSClient:
        if self._sqs is None:
            import boto3

            self._sqs = boto3.client("sqs")
        return self._sqs

    def send(self, message: Message) -> None:
        self.sqs.send_message(
            QueueUrl=self._url,
            MessageBody=message.model_dump_json(),
            MessageGroupId=message.group_id,
            MessageDeduplicationId=message.deduplication_id,
        )
