"""SQS event source mappings: poll queues, invoke functions with Lambda's SQS event, delete.

Deletion follows Lambda: success without ReportBatchItemFailures deletes the batch; with it,
everything but the reported `batchItemFailures` (an invalid report fails the whole batch); a
function error deletes nothing. Undeleted messages come back after the visibility timeout, and
the queue's redrive policy (enforced by moto) moves them to the DLQ after maxReceiveCount.

Two modes: background poller threads (`start`/`stop`, for make dev) and `drain`, which
delivers until every source queue is empty and nothing is in flight (for tests).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.runtime.pool import InvocationResult
from devstack.template import Queue, SqsEventSource

RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS message attributes in the shape Lambda puts in `Records[].messageAttributes`."""
    converted: dict[str, Any] = {}
    for name, attr in attributes.items():
        item: dict[str, Any] = {}
        if "StringValue" in attr:
            item["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            item["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode()
        item["stringListValues"] = list(attr.get("StringListValues") or [])
        item["binaryListValues"] = [base64.b64encode(v).decode() for v in attr.get("BinaryListValues") or []]
        item["dataType"] = attr["DataType"]
        converted[name] = item
    return converted


def build_sqs_event(messages: Sequence[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SQS event for messages as boto3's ReceiveMessage returns them."""
    records = []
    for message in messages:
        attributes = message.get("Attributes") or {}
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {name: str(attributes[name]) for name in RECORD_ATTRIBUTES if name in attributes},
            "messageAttributes": lambda_message_attributes(message.get("MessageAttributes") or {}),
            "md5OfBody": message["MD5OfBody"],
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
        records.append(record)
    return {"Records": records}


def failed_message_ids(payload: Any, batch_ids: set[str]) -> set[str]:
    """The messages to keep after a ReportBatchItemFailures response (all of them if invalid)."""
    if payload is None or payload == {}:
        return set()
    if not isinstance(payload, dict):
        return set(batch_ids)
    failures = payload.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids)
        failed.add(identifier)
    return failed


@dataclass
class DrainReport:
    """What a `drain` delivered."""

    batches: int = 0
    messages: int = 0
    deleted: int = 0
    failures: list[str] = field(default_factory=list)


class SqsEventSources:
    """The SQS event source mappings of a stack."""

    def __init__(
        self,
        sources: Sequence[SqsEventSource],
        queues: dict[str, Queue],
        client: Any,
        invoke: Callable[[str, Any], InvocationResult],
        log: Callable[[str], None],
        region: str,
    ) -> None:
        self.sources = [s for s in sources if s.enabled]
        self.queues = queues
        self.client = client
        self.invoke = invoke
        self.log = log
        self.region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def poll_once(self, source: SqsEventSource, wait_seconds: int = 0, report: DrainReport | None = None) -> int:
        """Receive one batch and deliver it. Returns the number of messages received."""
        queue = self.queues[source.queue]
        response = self.client.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=max(1, min(source.batch_size, 10)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        )
        messages = response.get("Messages") or []
        if not messages:
            return 0
        event = build_sqs_event(messages, queue.arn, self.region)
        result = self.invoke(source.function, event)
        batch_ids = {m["MessageId"] for m in messages}
        if not result.ok:
            keep = set(batch_ids)
            error = result.error or {}
            self.log(f"{source.function} failed a batch of {len(messages)} from {queue.name}: {error.get('errorType')}")
        elif source.report_batch_item_failures:
            keep = failed_message_ids(result.payload, batch_ids)
        else:
            keep = set()
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in keep
        ]
        if entries:
            self.client.delete_message_batch(QueueUrl=queue.url, Entries=entries)
        if report is not None:
            with self._lock:
                report.batches += 1
                report.messages += len(messages)
                report.deleted += len(entries)
                if not result.ok:
                    report.failures.append(f"{source.function}: {(result.error or {}).get('errorType')}")
        return len(messages)

    def pending(self) -> dict[str, int]:
        """Per source queue, messages visible + in flight + delayed (0 everywhere = drained)."""
        counts: dict[str, int] = {}
        for source in self.sources:
            queue = self.queues[source.queue]
            attrs = self.client.get_queue_attributes(
                QueueUrl=queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            counts[queue.name] = sum(int(value) for value in attrs.values())
        return counts

    def drain(self, timeout: float = 30.0, poll_interval: float = 0.05) -> DrainReport:
        """Deliver until every source queue is empty with nothing in flight, or raise TimeoutError.

        Messages a function failed become visible again after the visibility timeout; drain
        keeps polling (against the deadline) until they succeed or reach the DLQ.
        """
        deadline = time.monotonic() + timeout
        report = DrainReport()
        background = bool(self._threads)
        while True:
            delivered = 0
            if not background:
                for source in self.sources:
                    delivered += self.poll_once(source, report=report)
            if delivered:
                continue
            left = self.pending()
            if not any(left.values()):
                return report
            if time.monotonic() > deadline:
                raise TimeoutError(f"SQS drain timed out after {timeout}s; still pending: {left}")
            # Retried messages are invisible until their visibility timeout ends: poll again
            # shortly, against the deadline (stop() also ends the wait).
            self._stop.wait(poll_interval)

    def start(self, pollers_per_source: int = 1) -> None:
        """Background polling (make dev)."""
        self._stop.clear()
        for source in self.sources:
            for index in range(pollers_per_source):
                thread = threading.Thread(
                    target=self._run, args=(source,), name=f"devstack-sqs-{source.function}-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _run(self, source: SqsEventSource) -> None:
        while not self._stop.is_set():
            try:
                received = self.poll_once(source)
            except Exception as exc:  # noqa: BLE001 - keep polling through transient errors, as Lambda does
                self.log(f"poller for {source.function} failed: {exc!r}")
                received = 0
            if not received:
                self._stop.wait(0.2)

    def stop(self) -> None:
        """Stop the background pollers."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
