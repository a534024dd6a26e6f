"""Logging and metrics for every function: powertools JSON logs with secrets redacted.

Redaction is defence in depth. Code never logs a token on purpose; the formatter still
removes anything that looks like one (by key name and by value shape) from every line,
and :func:`install_redaction` guards the root logger's handlers for third-party logs.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

REDACTED = "[REDACTED]"

# Keys whose values are secrets wherever they appear in a structured log record.
_SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "code",
        "code_verifier",
        "client_secret",
        "secret",
        "password",
        "authorization",
        "cookie",
        "cookies",
        "set-cookie",
        "state",
        "assertion",
        "ciphertext",
        "refresh_token_ciphertext",
    }
)
_SECRET_PARAMS = "|".join(sorted(_SECRET_KEYS - {"ciphertext", "refresh_token_ciphertext"}))
# Value shapes: Google access tokens, refresh tokens, authorization codes, JWTs, bearer
# headers, secrets in query strings and in JSON text.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[^\s\"',]+"), f"Bearer {REDACTED}"),
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), REDACTED),
    (re.compile(r"\bya29\.[\w.\-]+"), REDACTED),
    (re.compile(r"\b1//[\w.\-]+"), REDACTED),
    (re.compile(r"\b4/0[\w.\-]+"), REDACTED),
    (re.compile(rf"(?i)\b({_SECRET_PARAMS})=[^&\s\"']+"), rf"\1={REDACTED}"),
    (re.compile(rf"(?i)(\"(?:{_SECRET_PARAMS})\"\s*:\s*\")[^\"]*\""), rf'\1{REDACTED}"'),
    (re.compile(rf"(?i)('(?:{_SECRET_PARAMS})'\s*:\s*')[^']*'"), rf"\1{REDACTED}'"),
)


def redact_text(text: str) -> str:
    """Remove token-shaped substrings from free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """Redact a structured value: secret keys lose their values, strings are scrubbed."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in _SECRET_KEYS and v is not None else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return REDACTED
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with every record passed through :func:`redact`."""

    def serialize(self, log: Any) -> str:
        return redact_text(super().serialize(redact(log)))


class RedactingFilter(logging.Filter):
    """For handlers we do not format ourselves (the Lambda runtime's root handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not break logging
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def install_redaction(root: logging.Logger | None = None) -> None:
    """Attach :class:`RedactingFilter` to every handler of the root logger (idempotent)."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


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
