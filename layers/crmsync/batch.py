"""SQS FIFO batches with partial failures: each record run in order; when one fails, it and the
records after it in its message group are reported failed (they come back, in order, after
the visibility timeout) while the other groups go on.

The response powertools' ``SqsFifoPartialProcessor(skip_group_on_error=True)`` with
``process_partial_response`` gives, kept in step by tests/unit/test_batch.py (a property test
over random batches against powertools itself): ``{"batchItemFailures": [{"itemIdentifier":
<messageId>}, …]}``, and an exception when every record failed (Lambda then retries the whole
batch and counts an error); an event without records is logged and answered with no failures
rather than raised, and a batch with a record it cannot name is raised (retried whole, as a
response could not report that record). Not powertools' own: importing any part of powertools runs its
package's ``__init__`` (Logger, Metrics and Tracer), which was a fifth of the sync worker's
cold start (issue 17 §1, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueRecord:
    """What the record handler reads of an SQS record."""

    message_id: str
    body: str
    group_id: str | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> QueueRecord:
        attributes = raw.get("attributes") or {}
        group = attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None
        return cls(str(raw["messageId"]), str(raw.get("body") or ""), str(group) if group else None)


class EntireBatchFailed(Exception):
    """Every record of the batch failed: the invocation fails and SQS retries the batch."""

    def __init__(self, failures: list[BaseException]) -> None:
        super().__init__(f"All {len(failures)} records failed processing.")
        self.failures = failures


class _Skipped(Exception):
    """A record not run because an earlier record of its message group failed."""


def process_fifo_batch(event: Mapping[str, Any], handler: Callable[[QueueRecord], object]) -> dict[str, Any]:
    """Run ``handler`` on each record of an SQS FIFO event; the partial batch response."""
    found = event.get("Records") if isinstance(event, Mapping) else None
    raws: list[Mapping[str, Any]] = found if isinstance(found, list) else []
    if not raws:
        # Only SQS invokes the worker, so this is a hand-made invocation: nothing to run, and
        # nothing to retry or lose (powertools raises here).
        log.error("rejected an event that is not an SQS batch", extra={"event_type": type(event).__name__})
        return {"batchItemFailures": []}
    if not all(isinstance(raw, Mapping) and raw.get("messageId") for raw in raws):
        # A record that cannot be named cannot be reported failed, and acknowledging the batch
        # would delete its messages: the whole batch goes back to the queue instead.
        log.error("rejected a batch with a record without a messageId; the batch is retried")
        raise ValueError("an SQS record without a messageId")
    failed_groups: set[str] = set()
    failures: list[tuple[str, BaseException]] = []
    for raw in raws:
        record = QueueRecord.of(raw)
        if record.group_id is not None and record.group_id in failed_groups:
            failures.append((record.message_id, _Skipped("a previous record from this message group failed")))
            continue
        try:
            handler(record)
        except Exception as exc:  # any failure is this record's, reported for a retry
            # An error that says it is retryable (a provider's 429/5xx) is expected: one line.
            # Anything else may be a bug: its traceback too.
            expected = getattr(exc, "retryable", False) is True
            log.warning(
                "record failed; it and the rest of its message group come back later",
                extra={
                    "message_id": record.message_id,
                    "message_group": record.group_id,
                    "error": type(exc).__name__,
                    "detail": str(exc)[:300],
                },
                exc_info=None if expected else exc,
            )
            failures.append((record.message_id, exc))
            if record.group_id is not None:
                failed_groups.add(record.group_id)
    if failures and len(failures) == len(raws):
        raise EntireBatchFailed([exc for _, exc in failures])
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id, _ in failures]}
