"""The sync queue's batching mode (scheduled sweeps) against SQS (moto server): every message
arrives once with its FIFO group and deduplication id, 10 per SendMessageBatch; a refused
batch is counted, not raised."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crmsync.messaging.messages import ConnectionCheck
from crmsync.messaging.queue import SyncQueue

pytestmark = pytest.mark.integration


def check(i: int, occasion: str = "tick") -> ConnectionCheck:
    return ConnectionCheck(
        tenant_id="acme", user_id=f"u{i:03d}", connection_id=f"c{i}", reason="scheduled", occasion=occasion
    )


@pytest.fixture
def fifo(stack: Any) -> tuple[Any, str]:
    sqs = stack.aws_client("sqs")
    url = sqs.create_queue(
        QueueName=f"batching-{uuid.uuid4().hex[:12]}.fifo",
        Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"},
    )["QueueUrl"]
    yield sqs, url
    sqs.delete_queue(QueueUrl=url)


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId", "MessageDeduplicationId"]
        ).get("Messages", [])
        if not batch:
            return got
        got += batch
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )


def test_a_sweep_s_messages_arrive_once_each_in_batches(fifo: tuple[Any, str]) -> None:
    sqs, url = fifo
    queue = SyncQueue(url, sqs)
    sent = [check(i) for i in range(23)]
    with queue.batching(senders=3) as report:
        for message in sent:
            queue.send(message)
        queue.send(sent[0])  # the same message again: the FIFO queue drops it (same dedup id)
    assert (report.sent, report.failed) == (24, 0)

    got = receive_all(sqs, url)
    assert sorted(m["Body"] for m in got) == sorted(m.model_dump_json() for m in sent)
    assert {m["Attributes"]["MessageGroupId"] for m in got} == {m.group_id for m in sent}
    assert {m["Attributes"]["MessageDeduplicationId"] for m in got} == {m.deduplication_id for m in sent}


def test_outside_the_block_a_send_is_sent_at_once(fifo: tuple[Any, str]) -> None:
    sqs, url = fifo
    queue = SyncQueue(url, sqs)
    with queue.batching():
        pass
    queue.send(check(1))
    assert [m["Body"] for m in receive_all(sqs, url)] == [check(1).model_dump_json()]


def test_a_refused_batch_is_counted_and_the_sweep_goes_on(stack: Any) -> None:
    sqs = stack.aws_client("sqs")
    gone = sqs.create_queue(QueueName=f"gone-{uuid.uuid4().hex[:12]}.fifo", Attributes={"FifoQueue": "true"})
    sqs.delete_queue(QueueUrl=gone["QueueUrl"])
    queue = SyncQueue(gone["QueueUrl"], sqs)
    with queue.batching(senders=2) as report:
        for i in range(12):
            queue.send(check(i))
    assert (report.sent, report.failed) == (0, 12)
