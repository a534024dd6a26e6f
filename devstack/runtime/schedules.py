"""Schedule and ScheduleV2 events: fire on demand, and rate() timers for make dev.

`fire` invokes the function with the event's `Input` (parsed JSON) when given, as EventBridge
does — with EventBridge Scheduler's context attributes (`<aws.scheduler.scheduled-time>`, …)
filled in — else with EventBridge's "Scheduled Event" payload. Timers run `rate(...)` schedules at
their period times a scale factor; cron() schedules are fire-on-demand only.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.runtime.pool import InvocationResult
from devstack.template import Schedule

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """The period of a `rate(...)` expression in seconds; None for cron()/at() expressions."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def scheduled_event(schedule: Schedule, region: str, account_id: str, at: datetime | None = None) -> dict[str, Any]:
    """The payload EventBridge sends for `schedule`, scheduled for `at` (default now)."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    if schedule.kind == "ScheduleV2":
        resource = f"arn:aws:scheduler:{region}:{account_id}:schedule/default/{schedule.name}"
    else:
        resource = f"arn:aws:events:{region}:{account_id}:rule/{schedule.name}"
    if schedule.input is not None:
        text = schedule.input
        if schedule.kind == "ScheduleV2":
            # Scheduler replaces its context keywords in the Input text (managing-schedule-context-attributes).
            for keyword, value in {
                "<aws.scheduler.scheduled-time>": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "<aws.scheduler.execution-id>": uuid.uuid4().hex[:16],
                "<aws.scheduler.attempt-number>": "1",
                "<aws.scheduler.schedule-arn>": resource,
            }.items():
                text = text.replace(keyword, value)
        payload: Any = json.loads(text)
        return payload
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler" if schedule.kind == "ScheduleV2" else "aws.events",
        "account": account_id,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [resource],
        "detail": {},
    }


class Schedules:
    """The schedules of a stack."""

    def __init__(
        self,
        schedules: Sequence[Schedule],
        invoke: Callable[[str, Any], InvocationResult],
        log: Callable[[str], None],
        region: str,
        account_id: str,
    ) -> None:
        self.schedules = list(schedules)
        self.invoke = invoke
        self.log = log
        self.region = region
        self.account_id = account_id
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def find(self, name: str) -> Schedule:
        """A schedule by its name, its event logical id, `Function.Event`, or its function's id."""
        candidates = [s for s in self.schedules if name in (s.name, s.event, f"{s.function}.{s.event}")] or [
            s for s in self.schedules if s.function == name
        ]
        if len(candidates) != 1:
            known = ", ".join(f"{s.name} ({s.function}.{s.event})" for s in self.schedules)
            problem = "ambiguous" if candidates else "unknown"
            raise KeyError(f"{problem} schedule {name!r}; known: {known or 'none'}")
        return candidates[0]

    def fire(self, name: str, at: datetime | None = None) -> InvocationResult:
        """Invoke the schedule's function now with its payload, as scheduled for `at` (default
        now: a test fires the tick it needs)."""
        schedule = self.find(name)
        self.log(f"firing schedule {schedule.name} -> {schedule.function}")
        return self.invoke(schedule.function, scheduled_event(schedule, self.region, self.account_id, at))

    def start(self, scale: float = 1.0) -> None:
        """Fire enabled rate() schedules every period * scale seconds (make dev)."""
        self._stop.clear()
        for schedule in self.schedules:
            period = rate_seconds(schedule.expression)
            if not schedule.enabled:
                continue
            if period is None:
                self.log(f"schedule {schedule.name} ({schedule.expression}) is fire-on-demand only locally")
                continue
            interval = max(period * scale, 1.0)
            self.log(f"schedule {schedule.name} fires every {interval:g}s ({schedule.expression})")
            thread = threading.Thread(
                target=self._run, args=(schedule, interval), name=f"devstack-schedule-{schedule.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, schedule: Schedule, interval: float) -> None:
        # The scheduled time runs at the schedule's own rate from the start: sped up (scale < 1),
        # the jobs still see one period between firings, so sweeps that take one slot of their
        # accounts per tick go round all of them `1 / scale` times faster.
        period = timedelta(seconds=rate_seconds(schedule.expression) or interval)
        start = datetime.now(UTC)
        fired = 0
        while not self._stop.wait(interval):
            fired += 1
            try:
                result = self.fire(schedule.name, start + fired * period)
            except Exception as exc:  # noqa: BLE001 - a failing timer must not stop the others
                self.log(f"schedule {schedule.name} failed: {exc!r}")
                continue
            if not result.ok:
                self.log(f"schedule {schedule.name}: {(result.error or {}).get('errorType')}")

    def stop(self) -> None:
        """Stop the timers."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
