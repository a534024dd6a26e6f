"""Logging and metrics for every function: powertools JSON logs with secrets redacted.

Redaction is defence in depth. Code never logs a token on purpose; the formatter still
removes anything that looks like one (by key name and by value shape) from every line,
and :func:`install_redaction` guards the root logger's handlers for third-party logs.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from crmsync.redaction import (  # noqa: F401 - re-exported
    REDACTED,
    RedactingFilter,
    install_redaction,
    redact,
    redact_text,
)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with every record passed through :func:`redact`."""

    def serialize(self, log: Any) -> str:
        return redact_text(super().serialize(redact(log)))


def build_logger(service: str | None = None) -> Logger:
    """The function's logger: JSON, correlation ids, secrets redacted."""
    logger = Logger(service=service, logger_formatter=RedactingFormatter())
    # The domain package logs through stdlib loggers ("crmsync.*"); send them through the
    # same JSON handler and formatter, so they carry the correlation id and are redacted.
    domain = logging.getLogger("crmsync")
    domain.handlers = list(logger.handlers)
    domain.setLevel(logger.log_level)
    domain.propagate = False
    install_redaction()
    return logger


def build_metrics(service: str | None = None) -> Metrics:
    # Many invocations (reads, pages) have nothing to count; that is not worth a warning.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    return Metrics(service=service)


class MetricsCounter:
    """Adapts powertools Metrics to the use cases' ``Counter`` port."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(self, name: str) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
