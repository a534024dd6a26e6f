"""Publishing work to the sync queue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from concurrent.futures import Future

    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

#: SQS takes at most 10 messages per SendMessageBatch.
BATCH = 10


@dataclass
class BatchReport:
    """What a batching block sent: messages accepted by SQS, and refused (each logged)."""

    sent: int = 0
    failed: int = 0


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
        self._batch: _Batcher | None = None

    @property
    def sqs(self) -> SQSClient:
        if self._sqs is None:
            import boto3

            self._sqs = boto3.client("sqs")
        return self._sqs

    def send(self, message: Message) -> None:
        if self._batch is not None:
            self._batch.add(_entry(message))
            return
        self.sqs.send_message(QueueUrl=self._url, **_entry(message))

    @contextmanager
    def batching(self, senders: int = 8) -> Iterator[BatchReport]:
        """Within the block, :meth:`send` buffers messages and sends them 10 per
        SendMessageBatch, ``senders`` batches at a time: a scheduled sweep's fan-out costs a
        tenth of the requests and a fraction of the time (at scale, the time of one scheduler
        invocation is what bounds a tick's fan-out: docs/SCALE.md). A refused message or batch
        is logged and counted in the report, never raised: a sweep goes on, and the item's
        next tick asks again. Everything is sent when the block ends."""
        if self._batch is not None:
            yield self._batch.report
            return
        sqs = self.sqs  # created once, before the threads share it (boto3 clients are thread-safe)
        batcher = _Batcher(sqs, self._url, senders)
        self._batch = batcher
        try:
            yield batcher.report
        finally:
            self._batch = None
            batcher.close()


def _entry(message: Message) -> dict[str, Any]:
    return {
        "MessageBody": message.model_dump_json(),
        "MessageGroupId": message.group_id,
        "MessageDeduplicationId": message.deduplication_id,
    }


class _Batcher:
    def __init__(self, sqs: SQSClient, url: str, senders: int) -> None:
        from concurrent.futures import ThreadPoolExecutor  # the scheduler's only: not at cold start

        self._sqs = sqs
        self._url = url
        self._senders = max(1, senders)
        self._pool = ThreadPoolExecutor(max_workers=self._senders, thread_name_prefix="sqs-batch")
        self._pending: list[dict[str, Any]] = []
        self._inflight: list[Future[None]] = []
        self._lock = threading.Lock()
        self.report = BatchReport()

    def add(self, entry: dict[str, Any]) -> None:
        self._pending.append(entry)
        if len(self._pending) == BATCH:
            self._submit()

    def _submit(self) -> None:
        entries, self._pending = self._pending, []
        # Bounded: at most two batches per sender wait, so memory stays flat however many
        # items a sweep visits.
        while len(self._inflight) >= 2 * self._senders:
            self._inflight.pop(0).result()
        self._inflight.append(self._pool.submit(self._send, entries))

    def _send(self, entries: list[dict[str, Any]]) -> None:
        try:
            answer = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), **entry} for i, entry in enumerate(entries)],  # type: ignore[typeddict-item]
            )
        except Exception:
            log.exception("a batch of queue messages was refused", extra={"messages": len(entries)})
            with self._lock:
                self.report.failed += len(entries)
            return
        failed = answer.get("Failed", [])
        for refusal in failed:
            log.error(
                "a queue message was refused",
                extra={
                    "group": entries[int(refusal["Id"])]["MessageGroupId"],
                    "code": refusal.get("Code"),
                    "sender_fault": refusal.get("SenderFault"),
                },
            )
        with self._lock:
            self.report.sent += len(answer.get("Successful", []))
            self.report.failed += len(failed)

    def close(self) -> None:
        if self._pending:
            self._submit()
        for future in self._inflight:
            future.result()
        self._pool.shutdown(wait=True)
