"""The Lambda execution environment stand-in: one long-lived process per concurrent execution.

Started by the pool as `python <abs path>/worker.py` with the function's complete environment
and the `DEVSTACK_WORKER_CONFIG` variable (JSON: code_uri, layers, handler, timeout...). It
must not import anything from `devstack` (function code must never be able to), so this file
stands alone and blocks that import for the code it runs.

Protocol: JSON lines. Requests arrive on the original stdin, responses leave on a duplicate of
the original stdout. fd 0 is then pointed at /dev/null and fd 1 at stderr, so whatever the
function prints or logs reaches the parent on the child's stderr, never on the protocol pipe.

Requests:  {"op": "init"} | {"op": "invoke", "id", "event", "request_id", "deadline_ms"}
Responses: {"id", "ok": true, "result", "init_ms", "duration_ms"}
           {"id", "ok": false, "error": {errorType, errorMessage, stackTrace}, "fatal": bool, ...}
Before each response the worker writes `END_MARK + id` on stderr, so the parent can wait
until every log line of that invocation reached the sinks before it returns the result.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, BinaryIO

_BLOCKED_PACKAGES = ("devstack",)
END_MARK = "\x00devstack-end "


class _BlockDevstack(importlib.abc.MetaPathFinder):
    """Makes `import devstack` fail inside a function, as it would in Lambda."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] in _BLOCKED_PACKAGES:
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        return None


class LambdaContext:
    """The context object Lambda passes to a Python handler."""

    def __init__(self, config: dict[str, Any], request_id: str, deadline_ms: int) -> None:
        self.function_name: str = config["function_name"]
        self.function_version: str = "$LATEST"
        self.invoked_function_arn: str = config["function_arn"]
        self.memory_limit_in_mb: int = int(config["memory_size"])
        self.aws_request_id: str = request_id
        self.log_group_name: str = config["log_group_name"]
        self.log_stream_name: str = config["log_stream_name"]
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function times out."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None, skip_frames: int = 0) -> dict[str, Any]:
    tb = exc.__traceback__
    for _ in range(skip_frames):  # the runtime's own frames are not the function's
        tb = tb.tb_next if tb is not None else None
    frames = traceback.extract_tb(tb)
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_list(frames),
    }


class Worker:
    """Holds the imported handler between invocations (warm starts)."""

    def __init__(self, config: dict[str, Any], out: BinaryIO) -> None:
        self.config = config
        self.out = out
        self.handler: Callable[[Any, LambdaContext], Any] | None = None

    def send(self, message: dict[str, Any]) -> None:
        """Write one protocol line, after marking the end of this request's output on stderr."""
        sys.stdout.flush()
        sys.stderr.write(f"{END_MARK}{message.get('id')}\n")
        sys.stderr.flush()
        self.out.write(json.dumps(message).encode() + b"\n")
        self.out.flush()

    def init(self) -> tuple[float | None, dict[str, Any] | None]:
        """Import the handler module (the cold start). Returns (init_ms, error)."""
        if self.handler is not None:
            return None, None
        started = time.perf_counter()
        module_name, _, attribute = self.config["handler"].rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import-time failure is Runtime.ImportModuleError
            error = _error(exc, "Runtime.ImportModuleError")
            error["errorMessage"] = f"Unable to import module '{module_name}': {exc}"
            return None, error
        handler = getattr(module, attribute, None)
        if not callable(handler):
            message = f"Handler '{attribute}' missing on module '{module_name}'"
            return None, {"errorType": "Runtime.HandlerNotFound", "errorMessage": message, "stackTrace": []}
        self.handler = handler
        return (time.perf_counter() - started) * 1000, None

    def invoke(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one invocation and build the response line."""
        init_ms, init_error = self.init()
        if init_error is not None:
            return {"ok": False, "error": init_error, "fatal": True}
        assert self.handler is not None
        context = LambdaContext(self.config, request["request_id"], int(request["deadline_ms"]))
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id", "")
        started = time.perf_counter()
        try:
            result = self.handler(request["event"], context)
        except Exception as exc:  # noqa: BLE001 - the handler's error is the invocation's result
            error = _error(exc, skip_frames=1)
            # One record like Lambda's: [ERROR] Type: message, then the function's frames.
            sys.stderr.write(
                f"[ERROR] {error['errorType']}: {error['errorMessage']}\n"
                "Traceback (most recent call last):\n" + "".join(error["stackTrace"])
            )
            sys.stderr.flush()
            return {"ok": False, "error": error, "init_ms": init_ms, "duration_ms": _ms(started)}
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            error = _error(exc, "Runtime.MarshalError")
            error["errorMessage"] = f"Unable to marshal response: {exc}"
            return {"ok": False, "error": error, "init_ms": init_ms, "duration_ms": _ms(started)}
        return {"ok": True, "result": result, "init_ms": init_ms, "duration_ms": _ms(started)}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _setup_sys_path(config: dict[str, Any]) -> None:
    own_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != own_dir]
    front = [config["code_uri"]]
    for layer in config.get("layers", []):
        front.append(layer)
        python_dir = os.path.join(layer, "python")
        if os.path.isdir(python_dir):
            front.append(python_dir)
    sys.path[:0] = front
    sys.meta_path.insert(0, _BlockDevstack())


def main() -> None:
    """Serve invocations until stdin closes."""
    config = json.loads(os.environ.pop("DEVSTACK_WORKER_CONFIG"))
    # Keep the protocol off fd 0/1: function output goes to stderr.
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)
    _setup_sys_path(config)
    os.chdir(config["code_uri"]) if os.path.isdir(config["code_uri"]) else None

    worker = Worker(config, protocol_out)
    for line in protocol_in:
        request = json.loads(line)
        if request.get("op") == "init":
            init_ms, error = worker.init()
            worker.send({"id": request.get("id"), "ok": error is None, "error": error, "init_ms": init_ms})
            if error is not None:
                return
            continue
        response = worker.invoke(request)
        response["id"] = request.get("id")
        worker.send(response)
        if response.get("fatal"):
            return  # like Lambda: a failed init discards the execution environment


if __name__ == "__main__":
    main()
