"""Secrets out of log lines: by key name and by value shape (no logging library here, so the
webhooks' light logger and powertools' formatter share it)."""

from __future__ import annotations

import logging
import re
from typing import Any

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
