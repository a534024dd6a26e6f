"""The sync worker's FIFO partial batch response (crmsync.batch) is the one powertools'
SqsFifoPartialProcessor(skip_group_on_error=True) gives: a property test over random batches
(message groups, failing records) against powertools itself."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.batch import EntireBatchFailed, QueueRecord, process_fifo_batch


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(record.getMessage() for record in self.records)


@pytest.fixture
def logged() -> Any:
    """What crmsync.batch logs, kept by a handler on its own logger (whatever the functions'
    loggers did to "crmsync" propagation in earlier tests)."""
    logger = logging.getLogger("crmsync.batch")
    kept = _Kept()
    logger.addHandler(kept)
    try:
        yield kept
    finally:
        logger.removeHandler(kept)


def _record(i: int, group: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"ApproximateReceiveCount": "1", "SequenceNumber": str(18849496460467696128 + i)}
    if group is not None:
        attributes["MessageGroupId"] = group
    return {
        "messageId": f"059f36b4-87a3-44ab-83d2-{i:012d}",
        "receiptHandle": f"AQEB{i}",
        "body": f'{{"n": {i}}}',
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:SyncQueue.fifo",
        "awsRegion": "us-east-1",
    }


BATCHES = st.lists(
    st.tuples(st.sampled_from(["tenant-a#g1", "tenant-a#g2", "tenant-b#g1", None]), st.booleans()),
    min_size=1,
    max_size=10,
)


def _powertools(event: dict[str, Any], handler: Any) -> Any:
    try:
        return process_partial_response(
            event=event, record_handler=handler, processor=SqsFifoPartialProcessor(skip_group_on_error=True)
        )
    except BatchProcessingError:
        return "raised"


def _ours(event: dict[str, Any], handler: Any) -> Any:
    try:
        return process_fifo_batch(event, handler)
    except EntireBatchFailed:
        return "raised"


def _outcome(process: Any, event: dict[str, Any], failing: set[str]) -> tuple[Any, list[str]]:
    """(the answer, or "raised" when the whole batch failed; the bodies run, in order)."""
    run: list[str] = []

    def handler(record: Any) -> None:
        run.append(record.body)
        if record.message_id in failing:
            raise RuntimeError("provider unavailable")

    return process(event, handler), run


@settings(max_examples=200, deadline=None)
@given(batch=BATCHES)
def test_the_partial_batch_response_is_powertools(batch: list[tuple[str | None, bool]]) -> None:
    """Given a batch whose records fail or not, the same records are run in the same order,
    the same are reported failed (a failed record's later group-mates unrun), and the whole
    batch fails alike when every record did."""
    records = [_record(i, group) for i, (group, _) in enumerate(batch)]
    failing = {r["messageId"] for r, (_, fails) in zip(records, batch, strict=True) if fails}
    event = {"Records": records}
    assert _outcome(_ours, event, failing) == _outcome(_powertools, event, failing)


def test_a_failed_record_is_logged_with_its_group_and_its_group_mates_wait(logged: _Kept) -> None:
    records = [_record(0, "g1"), _record(1, "g2"), _record(2, "g1"), _record(3, "g2")]
    seen: list[str] = []

    def handler(record: QueueRecord) -> None:
        seen.append(record.message_id)
        if record.message_id == records[0]["messageId"]:
            raise RuntimeError("Google answered 503")

    answer = process_fifo_batch({"Records": records}, handler)
    assert seen == [
        records[0]["messageId"],
        records[1]["messageId"],
        records[3]["messageId"],
    ]
    assert answer == {"batchItemFailures": [{"itemIdentifier": records[i]["messageId"]} for i in (0, 2)]}
    (line,) = logged.records
    assert (line.levelname, line.message_group, line.error) == ("WARNING", "g1", "RuntimeError")  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", [{"Records": []}, {}, {"Records": {"a": 1}}, ["Records"], None])
def test_an_event_without_records_is_logged_and_runs_nothing(event: Any, logged: _Kept) -> None:
    """Only SQS invokes the worker; a hand-made event is refused with a logged reason, not a
    crash (powertools raises here: a difference), and there is nothing to lose."""
    ran: list[QueueRecord] = []
    assert process_fifo_batch(event, ran.append) == {"batchItemFailures": []}
    assert ran == []
    assert "not an SQS batch" in logged.text


@pytest.mark.parametrize("odd", [{"body": "x"}, "a record", {"messageId": "", "body": "x"}])
def test_a_batch_with_a_record_it_cannot_name_goes_back_whole(odd: Any, logged: _Kept) -> None:
    """Acknowledging would delete every message of the batch, the odd one included: the
    invocation fails instead, so SQS delivers the batch again (and in the end dead-letters it)."""
    ran: list[QueueRecord] = []
    with pytest.raises(ValueError, match="messageId"):
        process_fifo_batch({"Records": [_record(0, "g1"), odd]}, ran.append)
    assert ran == []
    assert "without a messageId" in logged.text


class _Retryable(Exception):
    retryable = True


@pytest.mark.parametrize(("error", "traceback"), [(_Retryable("Google answered 429"), False), (KeyError("x"), True)])
def test_a_retryable_failure_is_one_line_and_a_bug_keeps_its_traceback(
    error: Exception, traceback: bool, logged: _Kept
) -> None:
    def handler(record: QueueRecord) -> None:
        raise error

    with pytest.raises(EntireBatchFailed):
        process_fifo_batch({"Records": [_record(0, "g1"), _record(1, "g2")]}, handler)
    assert [bool(r.exc_info) for r in logged.records] == [traceback, traceback]
    assert {r.detail for r in logged.records} == {str(error)}  # type: ignore[attr-defined]
