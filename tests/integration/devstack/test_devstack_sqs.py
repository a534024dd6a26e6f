"""SQS event source mappings: the Lambda event, partial batch failures, retries, DLQ."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from devstack.stack import Stack

pytestmark = pytest.mark.integration


def send(stack: Stack, body: str, group: str | None = None, **kwargs: Any) -> str:
    sqs = stack.aws_client("sqs")
    response = sqs.send_message(
        QueueUrl=stack.template.queues["WorkQueue"].url, MessageBody=body, MessageGroupId=group or body, **kwargs
    )
    message_id: str = response["MessageId"]
    return message_id


def receive_count(stack: Stack, body: str) -> int:
    return sum(1 for line in stack.logs.lines("QueueFunction") if line.startswith(f"processing {body} "))


def dead_letters(stack: Stack, expect: str | None = None, within: float = 20.0) -> list[str]:
    """Read (and delete: a FIFO group stays locked while a message is in flight) the DLQ.
    ``expect``: keep reading (long polls, up to ``within`` seconds) until that body came. moto
    moves a message to the DLQ only when the source queue is received from once more after
    its last failure, which the runtime's poller does a moment after ``drain`` returns."""
    sqs = stack.aws_client("sqs")
    url = stack.template.queues["WorkDeadLetterQueue"].url
    bodies: list[str] = []
    deadline = time.monotonic() + within
    while True:
        wait = 1 if expect is not None and expect not in bodies and time.monotonic() < deadline else 0
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages")
        if not messages:
            if wait:
                continue
            return bodies
        bodies += [m["Body"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )


def test_lambda_sqs_event_shape(runtime_stack: Stack) -> None:
    body = f"ok-shape-{uuid.uuid4().hex[:8]}"
    message_id = send(
        runtime_stack,
        body,
        # moto gives FIFO messages a SequenceNumber only with an explicit deduplication id.
        MessageDeduplicationId=f"dedup-{body}",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "check"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
        },
    )
    runtime_stack.drain(timeout=20)
    events = [
        json.loads(line[len("EVENT ") :])
        for line in runtime_stack.logs.lines("QueueFunction")
        if line.startswith("EVENT ") and body in line
    ]
    assert len(events) == 1
    (record,) = [r for r in events[0]["Records"] if r["body"] == body]
    queue = runtime_stack.template.queues["WorkQueue"]
    assert record["messageId"] == message_id
    assert record["receiptHandle"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == "us-east-1"
    assert len(record["md5OfBody"]) == 32
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    for name in ("SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp", "SequenceNumber"):
        assert attributes[name]
    assert attributes["MessageGroupId"] == body
    assert attributes["MessageDeduplicationId"] == f"dedup-{body}"
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "check", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {"binaryValue": "AQI=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }


def test_partial_batch_failure_redelivers_only_the_failed_until_the_dlq(runtime_stack: Stack) -> None:
    run = uuid.uuid4().hex[:8]
    ok_one, failing, ok_two = f"ok-a-{run}", f"fail-{run}", f"ok-b-{run}"
    for body in (ok_one, failing, ok_two):
        send(runtime_stack, body)
    report = runtime_stack.drain(timeout=30)
    assert report.messages >= 4
    assert receive_count(runtime_stack, ok_one) == 1
    assert receive_count(runtime_stack, ok_two) == 1
    assert receive_count(runtime_stack, failing) == 2  # maxReceiveCount of the redrive policy
    assert failing in dead_letters(runtime_stack, expect=failing)


def test_crash_retries_the_whole_batch(runtime_stack: Stack) -> None:
    run = uuid.uuid4().hex[:8]
    group = f"group-{run}"
    crashing, innocent = f"crash-{run}", f"ok-c-{run}"
    send(runtime_stack, crashing, group=group)
    send(runtime_stack, innocent, group=group)
    runtime_stack.drain(timeout=30)
    assert receive_count(runtime_stack, crashing) == 2
    # It shared the crashing batch, so it was not deleted and came back. (moto then redelivers
    # it alone, ahead of the crashing message: it does not keep FIFO group order on retries.)
    assert receive_count(runtime_stack, innocent) >= 2
    assert f"RuntimeError: crashing on {crashing}" in runtime_stack.logs.text()
    assert crashing in dead_letters(runtime_stack, expect=crashing)
