"""The push sweep schedule through the local stack (issue 10, section 2)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e]


def test_the_push_sweep_schedule_runs_in_the_stack(stack) -> None:
    """The 5-minute schedule reaches the scheduler, which queries the pushes_due index of the
    stack's table (what it enqueues is tested in tests/integration/test_push_sweep.py)."""
    result = stack.fire("PushSweep")
    assert result.ok, result.error
    assert result.payload["job"] == "push_sweep"
    assert result.payload["failed"] == 0
