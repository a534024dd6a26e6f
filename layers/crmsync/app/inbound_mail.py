"""The inbound_mail function's work: an SES receipt event in, one outcome per user out."""

from __future__ import annotations

from typing import Any

from crmsync.app.wiring import graph


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Refusals are answered (SES's retries would only repeat them); transient errors raise."""
    outcomes = graph().inbound_mail.handle(event if isinstance(event, dict) else {})
    return {"outcomes": [o.summary() for o in outcomes]}
