"""The public MIME corpus (mail-parser's tests/mails/, fetched by `make corpus`) for mail tests."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / ".corpus" / "mail-parser"


def corpus_messages() -> dict[str, bytes]:
    """Every sample by file name. Fails (never skips) when the corpus was not fetched: tests
    over real-world mail must not silently disappear."""
    files = sorted(p for p in CORPUS.glob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        pytest.fail(f"the MIME corpus is missing in {CORPUS}: run `make corpus` (or `make pytest`) first")
    return {p.name: p.read_bytes() for p in files}
