"""Benchmarks. `make bench` runs them and rewrites docs/PERFORMANCE.md."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def in_fresh_process(module: str, figures: type[T]) -> T:
    """Run ``bench.<module>``'s ``measure()`` in a fresh interpreter and rebuild its figures.

    Each benchmark starts its own local stack; a process keeps clients (PynamoDB's, botocore's)
    bound to the first stack's endpoints, so every stack-based benchmark gets its own process.
    """
    answer = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--json"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return figures(**json.loads(answer.stdout.strip().splitlines()[-1]))


def main_json(measure: Callable[[], object]) -> None:
    """The ``__main__`` of a benchmark module: its figures as one JSON line (``--json``)."""
    figures = measure()
    print(json.dumps(dataclasses.asdict(figures)) if "--json" in sys.argv else figures)  # type: ignore[call-overload]
