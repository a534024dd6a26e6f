"""Logging for the functions on powertools: JSON logs with secrets redacted (metrics:
:mod:`crmsync.metrics`; the webhooks, the sync worker and the OAuth callback log through
:mod:`crmsync.light_logging`, the same lines without powertools' import).

Redaction is defence in depth. Code never logs a token on purpose; the formatter still
removes anything that looks like one (by key name and by value shape) from every line,
and :func:`install_redaction` guards the root logger's handlers for third-party logs.
"""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from crmsync.metrics import MetricsCounter, build_metrics  # noqa: F401 - re-exported
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
