"""CloudWatch metrics for every function: Embedded Metric Format lines on stdout, which Lambda's
log stream turns into metrics, written with the standard library alone.

The same document powertools' ``Metrics`` writes (namespace from
``POWERTOOLS_METRICS_NAMESPACE``, the ``service`` dimension from ``POWERTOOLS_SERVICE_NAME``, a
list of values per metric, at most 100 metrics and 100 values a metric per document), kept in
step by tests/unit/test_metrics.py. Not powertools' own: importing any part of powertools runs
its package's ``__init__`` (Logger, Metrics and Tracer, ~60 ms at cold start), and the sync
worker and the OAuth callback use nothing else of it (issue 17 §1, docs/PERFORMANCE.md).

As powertools' instances do, every :class:`Metrics` of a process adds to one metric set, which
the handler's :meth:`Metrics.log_metrics` writes when the invocation ends (returned or raised).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: CloudWatch's limits on one EMF document.
MAX_METRICS = 100
MAX_VALUES = 100


class MetricUnit(StrEnum):
    """The units the functions use (CloudWatch's names)."""

    Count = "Count"
    Seconds = "Seconds"
    Milliseconds = "Milliseconds"
    Bytes = "Bytes"


class _MetricSet:
    """The process's metrics not yet written: name → (unit, values)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.metrics: dict[str, tuple[str, list[float]]] = {}


_SET = _MetricSet()


class Metrics:
    """Adds to the process's one metric set; ``log_metrics`` writes it after each invocation."""

    def __init__(self, namespace: str | None = None, service: str | None = None) -> None:
        self.namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "crmsync"
        self.service = service or os.environ.get("POWERTOOLS_SERVICE_NAME") or ""

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("a metric needs a name")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"metric {name}: {value!r} is not a finite number")
        unit_name = MetricUnit(unit).value
        full: list[dict[str, tuple[str, list[float]]]] = []  # sets written out, in order
        with _SET.lock:
            if name not in _SET.metrics and len(_SET.metrics) >= MAX_METRICS:
                full.append(_SET.metrics)
                _SET.metrics = {}
            _, values = _SET.metrics.setdefault(name, (unit_name, []))
            values.append(float(value))
            if len(values) >= MAX_VALUES:
                full.append(_SET.metrics)
                _SET.metrics = {}
        for metrics in full:
            self._write(metrics)

    def serialize_metric_set(self) -> dict[str, Any] | None:
        """The EMF document of what is pending (None when nothing is)."""
        with _SET.lock:
            return self._document(dict(_SET.metrics))

    def flush_metrics(self) -> None:
        with _SET.lock:
            pending, _SET.metrics = _SET.metrics, {}
        if pending:
            self._write(pending)

    def log_metrics(self, handler: F) -> F:
        @functools.wraps(handler)
        def decorate(event: Any, context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                self.flush_metrics()

        return decorate  # type: ignore[return-value]

    def _document(self, metrics: dict[str, tuple[str, list[float]]]) -> dict[str, Any] | None:
        if not metrics:
            return None
        dimensions = [["service"]] if self.service else []
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": dimensions,
                        "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()],
                    }
                ],
            }
        }
        if self.service:
            document["service"] = self.service
        document.update({name: list(values) for name, (_, values) in metrics.items()})
        return document

    def _write(self, metrics: dict[str, tuple[str, list[float]]]) -> None:
        document = self._document(metrics)
        if document is not None:
            sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
            sys.stdout.flush()


def clear_metrics() -> None:
    """Forget what is pending (tests)."""
    with _SET.lock:
        _SET.metrics = {}


def build_metrics(service: str | None = None) -> Metrics:
    """The function's metrics (its handler wraps itself in ``log_metrics``)."""
    return Metrics(service=service)


class MetricsCounter:
    """Adapts :class:`Metrics` to the use cases' ``Counter`` port."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(self, name: str) -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
