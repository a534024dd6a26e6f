"""The inbound_mail function's work: an SES receipt event in, one outcome per user out."""

from __future__ import annotations

from typing import Any

from crmsync.config import get_settings
from crmsync.logic.wiring import build_inbound_mail
from crmsync.mail.inbound import Counter, InboundMail
from crmsync.mail.parse import parse_message

_built: list[InboundMail] = []


def _inbound(counter: Counter) -> InboundMail:
    """Built once per execution environment, on first use (not at import)."""
    if not _built:
        _built.append(build_inbound_mail(get_settings(), parse_message, counter))
    return _built[0]


def handle(event: dict[str, Any], counter: Counter) -> dict[str, Any]:
    """Refusals are answered (SES's retries would only repeat them); transient errors raise."""
    outcomes = _inbound(counter).handle(event if isinstance(event, dict) else {})
    return {"outcomes": [o.summary() for o in outcomes]}
