"""Lambda's asynchronous invocation (InvocationType `Event`), as SES, S3 or SNS use it.

`submit` queues an event and returns at once; worker threads invoke the function. A function
error or timeout is retried up to the function's `MaximumRetryAttempts` (SAM
`EventInvokeConfig`, default 2); after the last failure the invocation record goes to the
`OnFailure` SQS destination in Lambda's documented shape, or is dropped (and logged) when there
is none. Lambda waits about 1 and 2 minutes between attempts; locally retries are immediate
unless `retry_delay` asks for a pause before each (the load test's: an outage of a few seconds,
such as a restarted DynamoDB Local, would otherwise use up every attempt at once).

`drain` waits until nothing is queued or running and returns what finished since the previous
drain, so tests observe asynchronous deliveries without sleeping.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.runtime.pool import InvocationResult
from devstack.template import AsyncInvokeConfig, Queue

__all__ = ["AsyncDelivery", "AsyncInvoker", "invocation_record"]


@dataclass(frozen=True)
class AsyncDelivery:
    """One asynchronous invocation, finished: succeeded, or failed every attempt."""

    function: str
    #: What caused it, e.g. the SES message id.
    source_id: str
    event: Any
    attempts: int
    #: The last attempt's result.
    result: InvocationResult
    dead_lettered: bool = False

    @property
    def ok(self) -> bool:
        """True when an attempt succeeded."""
        return self.result.ok


def invocation_record(
    event: Any, result: InvocationResult, function_arn: str, attempts: int, request_id: str
) -> dict[str, Any]:
    """What Lambda sends to an OnFailure destination once retries are exhausted."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": result.error,
    }


@dataclass(frozen=True)
class _Job:
    function: str
    event: Any
    source_id: str
    request_id: str


class AsyncInvoker:
    """The asynchronous invocation queue of a stack's functions."""

    def __init__(
        self,
        invoke: Callable[[str, Any], InvocationResult],
        configs: Mapping[str, AsyncInvokeConfig],
        function_arns: Mapping[str, str],
        queues: Mapping[str, Queue],
        sqs_client: Any,
        log: Callable[[str], None],
        workers: int = 2,
        retry_delay: float = 0.0,
    ) -> None:
        self.invoke = invoke
        self.configs = dict(configs)
        self.function_arns = dict(function_arns)
        self.queues = dict(queues)
        self.sqs = sqs_client
        self.log = log
        self.workers = workers
        self.retry_delay = retry_delay
        self._stopping = threading.Event()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._finished: list[AsyncDelivery] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> AsyncInvoker:
        """Start the worker threads."""
        for index in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"devstack-async-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the workers after their current invocation; queued events are dropped."""
        self._stopping.set()
        while True:
            try:
                dropped = self._jobs.get_nowait()
            except queue.Empty:
                break
            if dropped is not None:
                self.log(f"stopping: dropped the queued invocation of {dropped.function} ({dropped.source_id})")
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def submit(self, function: str, event: Any, source_id: str = "") -> str:
        """Queue one invocation (like Invoke with InvocationType=Event). Returns its request id."""
        if function not in self.configs:
            raise KeyError(f"unknown function {function!r}")
        job = _Job(function, event, source_id, str(uuid.uuid4()))
        with self._cond:
            self._pending += 1
        self._jobs.put(job)
        return job.request_id

    def drain(self, timeout: float = 30.0) -> list[AsyncDelivery]:
        """Wait until nothing is queued or running; return what finished since the last drain."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending == 0, timeout):
                raise TimeoutError(f"asynchronous invocations still running after {timeout}s: {self._pending}")
            finished, self._finished = self._finished, []
            return finished

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                delivery = self._deliver(job)
            except Exception as exc:  # noqa: BLE001 - a broken destination must not kill the worker
                self.log(f"async invocation of {job.function} ({job.source_id}) failed in the stack: {exc!r}")
                error = {"errorType": "Devstack.AsyncError", "errorMessage": repr(exc)}
                delivery = AsyncDelivery(
                    job.function, job.source_id, job.event, 0, InvocationResult(job.function, "", False, error=error)
                )
            with self._cond:
                self._finished.append(delivery)
                self._pending -= 1
                self._cond.notify_all()

    def _deliver(self, job: _Job) -> AsyncDelivery:
        config = self.configs[job.function]
        attempts = 0
        while True:
            attempts += 1
            result = self.invoke(job.function, job.event)
            if result.ok or attempts > config.maximum_retry_attempts:
                break
            self.log(f"{job.function} failed attempt {attempts} of {job.source_id or job.request_id}; retrying")
            if self.retry_delay and self._stopping.wait(self.retry_delay):
                break
        if result.ok:
            return AsyncDelivery(job.function, job.source_id, job.event, attempts, result)
        if config.on_failure_queue is None:
            self.log(f"{job.function} failed {attempts} times on {job.source_id or job.request_id}: event dropped")
            return AsyncDelivery(job.function, job.source_id, job.event, attempts, result)
        record = invocation_record(job.event, result, self.function_arns[job.function], attempts, job.request_id)
        destination = self.queues[config.on_failure_queue]
        self.sqs.send_message(QueueUrl=destination.url, MessageBody=json.dumps(record))
        cause = job.source_id or job.request_id
        self.log(f"{job.function} failed {attempts} times on {cause}: invocation record sent to {destination.name}")
        return AsyncDelivery(job.function, job.source_id, job.event, attempts, result, dead_lettered=True)
