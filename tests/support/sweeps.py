"""Firing a scheduled sweep for one account: each tick takes one slot of the accounts
(crmsync.domain.sweeps), so a test fires the schedule as scheduled for its account's tick."""

from __future__ import annotations

from typing import Any

from crmsync.domain.sweeps import Sweep, next_tick_for, sweep_key
from tests.support.clock import now

#: The schedule (template.yaml event) of each sweep.
SCHEDULES = {Sweep.HEALTH: "ConnectionHealth", Sweep.CONTACTS: "ContactsSync", Sweep.MAIL: "MailSync"}


def fire_sweep_for(stack: Any, sweep: Sweep, tenant_id: str, user_id: str, connection_id: str = "") -> Any:
    """Fire ``sweep``'s schedule at the next tick whose slot holds this account; the result."""
    at = next_tick_for(sweep_key(sweep, tenant_id, user_id, connection_id), now())
    result = stack.fire(SCHEDULES[sweep], at=at)
    assert result.ok, result.error
    assert result.payload["enqueued"] >= 1, result.payload
    return result
