"""Worker pools: the local Lambda service.

Per function a pool of long-lived worker processes (`worker.py`), reused when idle and spawned
on demand up to a concurrency limit. The parent enforces the function's Timeout by killing the
worker. Every line a worker writes to stderr (all function output) goes to the log sinks.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from devstack.template import Function

WORKER_SCRIPT = Path(__file__).resolve().parent / "worker.py"
END_MARK = "\x00devstack-end "  # written by the worker on stderr before each response
#: Lambda's limit on an execution environment's init phase, apart from the function's Timeout.
INIT_TIMEOUT = 10.0

#: After this long a prewarm reports that the handler is still importing (Lambda's own init limit).
INIT_PATIENCE_SECONDS = 10.0
#: A prewarm gives a worker up only after this long (a hung import, not a busy machine).
PREWARM_LIMIT_SECONDS = 300.0

LogSink = Callable[[str, str], None]
"""Receives `(function_logical_id, line)` for every line a worker writes."""
InvocationObserver = Callable[["InvocationResult"], None]
"""Hears of every finished invocation (its function, duration, init): the cost model's count."""


@dataclass
class InvocationResult:
    """The outcome of one invocation, as Lambda's Invoke API would report it."""

    function: str
    request_id: str
    ok: bool
    payload: Any = None
    error: dict[str, Any] | None = None
    init_ms: float | None = None
    duration_ms: float = 0.0
    timed_out: bool = False

    def response(self) -> Any:
        """What `sam local invoke` prints: the payload, or the error object."""
        return self.payload if self.ok else self.error


class _WorkerProcess:
    """One child process and the parent's side of its protocol pipe."""

    _counter = itertools.count(1)

    def __init__(self, pool: FunctionPool) -> None:
        self.pool = pool
        self.number = next(self._counter)
        fn = pool.function
        config = {
            "code_uri": str(fn.code_uri),
            "layers": [str(layer) for layer in fn.layers],
            "handler": fn.handler,
            "function_name": fn.name,
            "function_arn": pool.function_arn,
            "memory_size": fn.memory_size,
            "log_group_name": f"/aws/lambda/{fn.name}",
            "log_stream_name": pool.env["AWS_LAMBDA_LOG_STREAM_NAME"],
        }
        env = dict(pool.env)
        env["DEVSTACK_WORKER_CONFIG"] = json.dumps(config)
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(fn.code_uri) if fn.code_uri.is_dir() else None,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        self._buffer = b""
        #: The handler was imported (init ran) in this process.
        self.initialised = False
        self._marks: set[str] = set()
        self._marks_cond = threading.Condition()
        self._stderr_thread = threading.Thread(
            target=self._pump_stderr,
            args=(self.process.stderr,),
            name=f"devstack-log-{fn.logical_id}-{self.number}",
            daemon=True,
        )
        self._stderr_thread.start()

    def _pump_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(END_MARK):
                with self._marks_cond:
                    self._marks.add(line[len(END_MARK) :])
                    self._marks_cond.notify_all()
                continue
            self.pool.emit(line)
        stream.close()

    def wait_output(self, request_id: str, timeout: float = 2.0) -> None:
        """Wait until everything the worker wrote for `request_id` reached the sinks."""
        with self._marks_cond:
            self._marks_cond.wait_for(lambda: request_id in self._marks, timeout)
            self._marks.discard(request_id)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, message: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        """Send one request, wait for its response until `deadline` (monotonic). None = timeout."""
        self.send(message)
        return self.receive(deadline)

    def send(self, message: dict[str, Any]) -> None:
        """Send one request."""
        self.stdin.write(json.dumps(message).encode() + b"\n")
        self.stdin.flush()

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The response to the request sent, if it arrives by `deadline` (monotonic); None
        otherwise, and then a later call may still receive it."""
        fd = self.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError("worker exited")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        response: dict[str, Any] = json.loads(line)
        return response

    def kill(self, force: bool = False) -> None:
        """Stop the process (closing stdin first lets an idle worker exit by itself)."""
        if force and self.alive:
            self.process.kill()
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        self._stderr_thread.join(timeout=2)


class FunctionPool:
    """The execution environments of one function."""

    def __init__(
        self,
        function: Function,
        env: Mapping[str, str],
        function_arn: str,
        emit: Callable[[str], None],
        concurrency: int = 8,
    ) -> None:
        self.function = function
        self.function_arn = function_arn
        self.emit = emit
        self.concurrency = concurrency
        self.env = dict(env)
        self._idle: list[_WorkerProcess] = []
        #: Workers running an invocation now (a fault test kills one mid-batch: `busy_pids`).
        self._busy: set[_WorkerProcess] = set()
        self._count = 0
        #: Invocations waiting for a worker, in arrival order.
        self._waiting: collections.deque[object] = collections.deque()
        self._closed = False
        self._cond = threading.Condition()

    def _acquire(self) -> _WorkerProcess:
        """An idle worker, or a new one below the concurrency limit; when every worker is busy,
        invocations wait their turn in arrival order (first come, first served: without it, a
        waiter woken by a release loses the freed worker to newcomers again and again, and a
        burst's slowest answers take seconds)."""
        with self._cond:
            turn = object()
            self._waiting.append(turn)
            try:
                while True:
                    if self._closed:
                        raise RuntimeError(f"{self.function.logical_id}: the stack is stopping")
                    if self._waiting[0] is turn:
                        while self._idle:
                            worker = self._idle.pop()
                            if worker.alive:
                                self._busy.add(worker)
                                return worker
                            self._count -= 1
                            worker.kill()
                        if self._count < self.concurrency:
                            self._count += 1
                            break
                    self._cond.wait()
            finally:
                self._waiting.remove(turn)
                self._cond.notify_all()  # the next in line may proceed
        try:
            worker = _WorkerProcess(self)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._busy.add(worker)
        return worker

    def _release(self, worker: _WorkerProcess, keep: bool) -> None:
        if not keep:
            worker.kill()
        with self._cond:
            self._busy.discard(worker)
            if keep and not self._closed:
                self._idle.append(worker)
            else:
                self._count -= 1
                if keep:
                    worker.kill()
            self._cond.notify_all()

    def prewarm(
        self,
        patience: float = INIT_PATIENCE_SECONDS,
        limit: float = PREWARM_LIMIT_SECONDS,
        on_slow: Callable[[float], None] | None = None,
    ) -> dict[str, Any] | None:
        """Start one worker and import the handler now. Returns the init error, if any.

        This is the stack getting ready, not an invocation: it is bounded by neither the
        function's Timeout nor Lambda's 10 s init limit, which a busy machine (every handler
        importing at once on few cores) overruns. After ``patience`` seconds ``on_slow`` hears
        that it is still starting; only after ``limit`` is the worker given up (its first
        invocation then starts another)."""
        worker = self._acquire()
        started = time.monotonic()
        try:
            worker.send({"op": "init", "id": "init"})
            response = worker.receive(started + patience)
            if response is None:
                if on_slow is not None:
                    on_slow(time.monotonic() - started)
                response = worker.receive(started + limit)
        except (EOFError, BrokenPipeError):
            response = {"ok": False, "error": {"errorType": "Runtime.ExitError", "errorMessage": "worker exited"}}
        ok = response is not None and bool(response.get("ok"))
        worker.initialised = ok
        if response is not None:
            worker.wait_output("init")
        elif worker.alive:
            worker.kill(force=True)
        self._release(worker, keep=ok)
        if ok:
            return None
        timed_out = {"errorType": "Sandbox.Timedout", "errorMessage": f"init did not finish within {limit:.0f} s"}
        return (response or {}).get("error") or timed_out

    def invoke(self, event: Any) -> InvocationResult:
        """Run one invocation on an idle or new worker; enforce the function's Timeout.

        As in Lambda, a new execution environment's init (the handler's import) runs first,
        against its own limit (INIT_TIMEOUT), not the function's Timeout: on a busy machine a
        cold start under load must not turn into a timeout, a killed worker and another cold
        start."""
        request_id = str(uuid.uuid4())
        timeout = self.function.timeout
        worker = self._acquire()
        init_ms: float | None = None
        if not worker.initialised:
            failed, init_ms = self._init(worker, request_id)
            if failed is not None:
                return failed
        deadline_ms = int(time.time() * 1000) + timeout * 1000
        deadline = time.monotonic() + timeout
        message = {
            "op": "invoke",
            "id": request_id,
            "event": event,
            "request_id": request_id,
            "deadline_ms": deadline_ms,
            "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]}",
        }
        started = time.perf_counter()
        keep = False
        try:
            response = worker.request(message, deadline)
        except (EOFError, BrokenPipeError, ValueError) as exc:
            worker.process.wait(timeout=2)
            status = worker.process.returncode
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited ({exc}, status {status})",
            }
            self.emit(f"[devstack] {error['errorMessage']}")
            self._release(worker, keep=False)
            return InvocationResult(self.function.logical_id, request_id, False, error=error, duration_ms=_ms(started))
        if response is None:
            message_text = (
                f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {request_id} Task timed out after {timeout:.2f} seconds"
            )
            self.emit(f"[devstack] {message_text}")
            worker.kill(force=True)
            self._release(worker, keep=False)
            error = {"errorType": "Sandbox.Timedout", "errorMessage": message_text}
            return InvocationResult(
                self.function.logical_id, request_id, False, error=error, duration_ms=_ms(started), timed_out=True
            )
        worker.wait_output(request_id)
        keep = not response.get("fatal")
        self._release(worker, keep=keep)
        result = InvocationResult(
            self.function.logical_id,
            request_id,
            bool(response.get("ok")),
            payload=response.get("result"),
            error=response.get("error"),
            init_ms=init_ms or response.get("init_ms"),
            duration_ms=float(response.get("duration_ms") or _ms(started)),
        )
        init = f" Init Duration: {result.init_ms:.2f} ms" if result.init_ms else ""
        self.emit(f"REPORT RequestId: {request_id} Duration: {result.duration_ms:.2f} ms{init}")
        if result.error:
            self.emit(f"[devstack] {result.error.get('errorType')}: {result.error.get('errorMessage')}")
        return result

    def _init(self, worker: _WorkerProcess, request_id: str) -> tuple[InvocationResult | None, float | None]:
        """Import the handler in a new worker: (the failed invocation, or None; init ms)."""
        started = time.perf_counter()
        mark = f"init-{request_id}"
        try:
            response = worker.request({"op": "init", "id": mark}, time.monotonic() + INIT_TIMEOUT)
        except (EOFError, BrokenPipeError, ValueError):
            response = {"ok": False, "error": {"errorType": "Runtime.ExitError", "errorMessage": "worker exited"}}
        if response is not None and response.get("ok"):
            worker.wait_output(mark)
            worker.initialised = True
            return None, response.get("init_ms")
        if response is None:
            error = {"errorType": "Sandbox.Timedout", "errorMessage": f"init timed out after {INIT_TIMEOUT:.0f} s"}
            worker.kill(force=True)
        else:
            error = response.get("error") or {"errorType": "Runtime.Unknown", "errorMessage": "init failed"}
            worker.wait_output(mark, timeout=0.5)
        self.emit(f"[devstack] {error.get('errorType')}: {error.get('errorMessage')}")
        self._release(worker, keep=False)
        failed = InvocationResult(self.function.logical_id, request_id, False, error=error, duration_ms=_ms(started))
        return failed, None

    def worker_pids(self) -> list[int]:
        """Pids of the idle workers (for tests and diagnostics)."""
        with self._cond:
            return [w.process.pid for w in self._idle if w.alive]

    def busy_pids(self) -> list[int]:
        """Pids of the workers running an invocation now: killing one is a function instance
        dying mid-invocation (the load test's worker killed mid-batch)."""
        with self._cond:
            return [w.process.pid for w in self._busy if w.alive]

    def close(self) -> None:
        """Stop every idle worker; busy ones stop when they are released."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.kill()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


@dataclass
class LambdaService:
    """All pools of a stack, keyed by function logical id, plus the log sinks."""

    sinks: list[LogSink] = field(default_factory=list)
    pools: dict[str, FunctionPool] = field(default_factory=dict)
    #: Called with each invocation's result once it is over (bench/cost.py counts them).
    observers: list[InvocationObserver] = field(default_factory=list)

    def add_function(self, function: Function, env: Mapping[str, str], function_arn: str, concurrency: int = 8) -> None:
        """Register a function with the complete environment its workers get."""
        logical_id = function.logical_id
        self.pools[logical_id] = FunctionPool(
            function, env, function_arn, lambda line: self.emit(logical_id, line), concurrency
        )

    def emit(self, function: str, line: str) -> None:
        """Send one log line to every sink."""
        for sink in list(self.sinks):
            sink(function, line)

    def pool(self, function: str) -> FunctionPool:
        """The pool of a function (KeyError names the known ones)."""
        try:
            return self.pools[function]
        except KeyError:
            raise KeyError(f"unknown function {function!r}; known: {', '.join(sorted(self.pools))}") from None

    def invoke(self, function: str, event: Any) -> InvocationResult:
        """Invoke a function synchronously (RequestResponse)."""
        result = self.pool(function).invoke(event)
        for observer in list(self.observers):
            observer(result)
        return result

    def prewarm(
        self, on_slow: Callable[[str, float], None] | None = None, patience: float = INIT_PATIENCE_SECONDS
    ) -> dict[str, dict[str, Any]]:
        """Import every handler in a worker now, as many at once as there are cores (more
        only make each slower). Returns init errors by function; ``on_slow(function,
        seconds)`` hears of a handler still importing after ``patience`` seconds."""
        errors: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        cores = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))

        def warm(name: str, pool: FunctionPool) -> None:
            with cores:
                error = pool.prewarm(patience, on_slow=(lambda waited: on_slow(name, waited)) if on_slow else None)
            if error is not None:
                with lock:
                    errors[name] = error

        threads = [threading.Thread(target=warm, args=item, daemon=True) for item in self.pools.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors

    def close(self) -> None:
        """Stop every worker."""
        for pool in self.pools.values():
            pool.close()
