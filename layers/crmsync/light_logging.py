"""The logger of the webhooks, the sync worker and the OAuth callback: the same JSON lines as
the other functions' (powertools' keys, secrets redacted by :mod:`crmsync.redaction`), on the
standard library alone.

Importing powertools costs a function ~70 ms at cold start whatever it uses (its package
imports Logger, Metrics and Tracer); for the two webhooks, whose whole job is one item read
and one queue message, that was a third of their import time (issue 17 §1,
docs/PERFORMANCE.md); likewise the sync worker and the OAuth callback, which use nothing
else of powertools. The API, the scheduler and the inbound mail function keep powertools'
logger (:mod:`crmsync.observability`); tests/unit/test_redaction.py keeps the two formats'
keys the same.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from crmsync.redaction import install_redaction, redact, redact_text

F = TypeVar("F", bound=Callable[..., Any])

#: LogRecord's own attributes: anything else on a record came in ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class LambdaContextFields:
    """What powertools' ``inject_lambda_context`` adds to every line."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.cold_start = True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with powertools' keys, redacted."""

    def __init__(self, service: str, context: LambdaContextFields) -> None:
        super().__init__()
        self._service = service
        self._context = context

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created))
            + f",{int(record.msecs):03d}+0000",
            "service": self._service,
            **self._context.values,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info))
            line["exception_name"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
        trace = os.environ.get("_X_AMZN_TRACE_ID", "")
        if trace.startswith("Root="):
            line["xray_trace_id"] = trace.split(";", 1)[0].removeprefix("Root=")
        return redact_text(json.dumps(redact(line), default=str, separators=(",", ":")))


class LightLogger:
    """A stdlib logger named after the service, with powertools' ``inject_lambda_context``."""

    def __init__(self, service: str | None = None) -> None:
        self.service = service or os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
        self._context = LambdaContextFields()
        level = (os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO").upper()
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter(self.service, self._context))
        self._logger = logging.getLogger(self.service)
        self._logger.handlers = [handler]
        self._logger.setLevel(level)
        self._logger.propagate = False
        # The domain package logs through "crmsync.*" loggers: the same handler, as
        # crmsync.observability.build_logger does with powertools'.
        domain = logging.getLogger("crmsync")
        domain.handlers = [handler]
        domain.setLevel(level)
        domain.propagate = False
        install_redaction()

    def __getattr__(self, name: str) -> Any:  # info, warning, error, exception, debug …
        return getattr(self._logger, name)

    def inject_lambda_context(self, handler: F | None = None, *, correlation_id_path: str | None = None) -> Any:
        """Powertools' decorator: the invocation's context on every line, and with
        ``correlation_id_path`` (dotted, e.g. ``requestContext.requestId``) the event's
        ``correlation_id``."""
        if handler is None:
            return functools.partial(self.inject_lambda_context, correlation_id_path=correlation_id_path)

        @functools.wraps(handler)
        def decorate(event: Any, context: Any) -> Any:
            self._context.values = {
                "cold_start": self._context.cold_start,
                "function_name": getattr(context, "function_name", ""),
                "function_memory_size": getattr(context, "memory_limit_in_mb", ""),
                "function_arn": getattr(context, "invoked_function_arn", ""),
                "function_request_id": getattr(context, "aws_request_id", ""),
            }
            if correlation_id_path:
                self._context.values["correlation_id"] = _at_path(event, correlation_id_path)
            self._context.cold_start = False
            return handler(event, context)

        return decorate


def _at_path(event: Any, path: str) -> Any:
    """The value at a dotted path of the event (None when any step is missing)."""
    for step in path.split("."):
        if not isinstance(event, dict):
            return None
        event = event.get(step)
    return event


def build_light_logger(service: str | None = None) -> LightLogger:
    return LightLogger(service)
