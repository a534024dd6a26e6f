"""The scheduled sweeps' slots (crmsync.domain.sweeps): each item is visited once per period,
the items are spread evenly over a period's ticks, and a job reads the tick it was scheduled
for (not the clock)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.app.jobs import scheduled_time
from crmsync.domain.sweeps import PERIODS, TICK, Sweep, due_key, next_tick_for, slots, sweep_key, tick_start
from devstack.runtime.schedules import scheduled_event
from devstack.template import Schedule
from tests.support.clock import now

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=24)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def test_the_periods_are_whole_numbers_of_ticks() -> None:
    assert {sweep: slots(sweep) for sweep in Sweep} == {Sweep.HEALTH: 72, Sweep.CONTACTS: 3, Sweep.MAIL: 12}
    assert all(slots(sweep) * TICK == period for sweep, period in PERIODS.items())


@given(sweep=st.sampled_from(list(Sweep)), tenant=ids, user=ids, connection=ids, start=moments)
def test_every_item_is_due_exactly_once_in_any_period(
    sweep: Sweep, tenant: str, user: str, connection: str, start: datetime
) -> None:
    key = sweep_key(sweep, tenant, user, connection)
    ticks = [start + i * TICK for i in range(slots(sweep))]
    assert sum(due_key(sweep, t) == key for t in ticks) == 1


@given(sweep=st.sampled_from(list(Sweep)), tenant=ids, user=ids, after=moments)
def test_next_tick_for_is_the_first_due_tick(sweep: Sweep, tenant: str, user: str, after: datetime) -> None:
    key = sweep_key(sweep, tenant, user)
    tick = next_tick_for(key, after)
    assert due_key(sweep, tick) == key
    assert tick_start(after) <= tick < tick_start(after) + PERIODS[sweep]
    assert tick == tick_start(tick)


def test_a_period_s_work_is_spread_evenly_over_its_ticks() -> None:
    """10,000 users of one tenant (ids as the CRM makes them): no tick takes much more than its
    share, so no tick of the hour carries a spike."""
    for sweep in Sweep:
        counts = Counter(sweep_key(sweep, "acme", f"user-{i:05d}", f"conn-{i % 3}") for i in range(10_000))
        assert len(counts) == slots(sweep)
        share = 10_000 / slots(sweep)
        assert max(counts.values()) < 1.25 * share, (sweep, max(counts.values()), share)


def test_a_job_reads_the_time_it_was_scheduled_for() -> None:
    assert scheduled_time({"job": "x", "at": "2031-05-06T07:08:09Z"}) == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    for unreadable in ({"job": "x"}, {"job": "x", "at": "soon"}, {"job": "x", "at": "2031-05-06T07:08:09"}, None):
        before = now()
        assert before <= scheduled_time(unreadable) <= now()


@pytest.mark.parametrize("kind", ["ScheduleV2", "Schedule"])
def test_the_local_scheduler_fills_in_the_scheduled_time(kind: str) -> None:
    schedule = Schedule(
        function="SchedulerFunction",
        event="Tick",
        name="tick",
        kind=kind,
        expression="rate(5 minutes)",
        input='{"job": "x", "at": "<aws.scheduler.scheduled-time>"}',
        enabled=True,
    )
    at = now().replace(microsecond=0) + timedelta(minutes=7)
    payload = scheduled_event(schedule, "us-east-1", "123456789012", at)
    # Only Scheduler (ScheduleV2) knows the keywords; an EventBridge rule passes its Input as is.
    expected = at.strftime("%Y-%m-%dT%H:%M:%SZ") if kind == "ScheduleV2" else "<aws.scheduler.scheduled-time>"
    assert payload == {"job": "x", "at": expected}
    assert json.dumps(payload)
