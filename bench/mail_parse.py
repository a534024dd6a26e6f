"""Parse-only mail throughput over the public MIME corpus (`make corpus`), in messages/s.

Two figures from the same samples: ``parse_message`` (mail-parser plus our limits, forwards,
attachments and HTML sanitising) and mail-parser alone, the baseline the inbound_mail
figure is compared with. The Outlook .msg sample is included: its refusal is work too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".corpus" / "mail-parser"


def corpus() -> list[bytes]:
    messages = [p.read_bytes() for p in sorted(CORPUS.glob("*")) if p.is_file() and not p.name.startswith(".")]
    if not messages:
        raise FileNotFoundError(f"no MIME corpus in {CORPUS}: run `make corpus`")
    return messages


def _throughput(parse: Callable[[bytes], object], seconds: float) -> float:
    messages = corpus()
    parsed = 0
    began = time.perf_counter()
    while True:
        for raw in messages:
            parse(raw)
        parsed += len(messages)
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            return parsed / elapsed


def parse_throughput(seconds: float) -> float:
    """Messages/s through ``crmsync.mail.parse.parse_message`` for at least ``seconds``."""
    sys.path.insert(0, str(ROOT / "layers"))
    from crmsync.mail.parse import parse_message

    return _throughput(parse_message, seconds)


def mailparser_throughput(seconds: float) -> float:
    """Messages/s through mail-parser alone (``parse_from_bytes``), the same samples."""
    import mailparser

    def parse(raw: bytes) -> object:
        try:
            return mailparser.parse_from_bytes(raw)
        except Exception as exc:  # noqa: BLE001 - a sample it cannot read still counts as work done
            return exc

    return _throughput(parse, seconds)


if __name__ == "__main__":
    print(f"parse_message: {parse_throughput(5):.0f} msg/s; mail-parser alone: {mailparser_throughput(5):.0f} msg/s")
