"""Every ``extra=`` a log call passes must be loggable.

``logging.Logger.makeRecord`` raises ``KeyError`` for an ``extra`` key that names a
``LogRecord`` attribute (``created``, ``module``, ``name``...), and only when the level is
enabled: a log line added after the work is done then fails the whole invocation at INFO and
not at WARNING. The contacts sync once logged ``created`` this way: every run failed after
its writes, the queue retried it into the DLQ, and held deletions were never recorded. The
scan reads the code (literal keys of ``extra={...}``); the second test shows the failure is
real, so the list of names stays honest.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for part in ("functions", "layers", "devstack") for p in ROOT.joinpath(part).rglob("*.py"))

#: The attributes every LogRecord has (and ``message``/``asctime``, which formatting sets).
RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def reserved_extras(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                found += [
                    (node.lineno, key.value)
                    for key in keyword.value.keys
                    if isinstance(key, ast.Constant) and key.value in RESERVED
                ]
    return found


def test_no_log_call_passes_a_logrecord_attribute_as_extra() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {key!r}"
        for path in SOURCES
        for line, key in reserved_extras(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == []


def test_the_scan_finds_a_reserved_key_and_logging_refuses_it() -> None:
    sample = 'log.info("synced", extra={"outcome": "full", "created": 3})'
    assert reserved_extras(ast.parse(sample)) == [(1, "created")]
    logger = logging.getLogger("tests.log_extras")
    logger.setLevel(logging.INFO)
    with pytest.raises(KeyError, match="created"):
        logger.info("synced", extra={"created": 3})
