"""The Gmail adapter's quota pacer, on a fake clock: it keeps a moving one-second window
under its budget, pausing (never sleeping) until units fit, and dates a call at its end."""

from __future__ import annotations

import pytest

from crmsync.providers.google.gmail import QuotaPacer


class FakeTime:
    """A clock that moves only when paused on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def window_max(spends: list[tuple[float, float]], window: float = 1.0) -> float:
    """The most units spent in any window of ``window`` seconds (ending at a spend)."""
    return max(sum(u for t, u in spends if end - window < t <= end) for end, _ in spends)


def test_calls_within_the_budget_go_out_without_pausing() -> None:
    fake = FakeTime()
    pacer = QuotaPacer(240, clock=fake.clock, pause=fake.pause)

    for _ in range(48):
        pacer.acquire(5)

    assert fake.pauses == []


def test_a_call_over_the_budget_waits_until_the_window_has_room() -> None:
    fake = FakeTime()
    pacer = QuotaPacer(240, clock=fake.clock, pause=fake.pause)
    pacer.acquire(200)
    fake.now += 0.25

    pacer.acquire(100)

    assert fake.pauses == [pytest.approx(0.75)]


def test_a_long_run_never_spends_more_than_the_budget_in_any_second_and_keeps_its_pace() -> None:
    fake = FakeTime()
    pacer = QuotaPacer(240, clock=fake.clock, pause=fake.pause)
    spends: list[tuple[float, float]] = []
    started = fake.now

    for n in range(2000):
        units = (5, 2, 100, 5, 1)[n % 5]
        pacer.acquire(units)
        spends.append((fake.now, units))
        fake.now += 0.001  # the call itself takes a moment

    assert window_max(spends) <= 240
    rate = sum(u for _, u in spends) / (fake.now - started)
    assert rate >= 0.8 * 240


def test_a_backfill_of_full_batches_runs_at_the_budget() -> None:
    fake = FakeTime()
    pacer = QuotaPacer(240, clock=fake.clock, pause=fake.pause)
    started = fake.now

    for _ in range(100):  # 100 batches of 48 messages.get (5 units each)
        with pacer.spending(240):
            fake.now += 0.05

    assert 100 * 48 / (fake.now - started) >= 0.8 * 50


def test_spending_dates_the_units_at_the_end_of_the_call() -> None:
    fake = FakeTime()
    pacer = QuotaPacer(100, clock=fake.clock, pause=fake.pause)

    with pacer.spending(100):
        fake.now += 0.5  # a slow batch: Gmail may count it as late as its end
    pacer.acquire(1)

    assert fake.pauses == [pytest.approx(1.0)]


def test_units_that_can_never_fit_are_refused_at_once() -> None:
    fake = FakeTime()
    pacer = QuotaPacer(50, clock=fake.clock, pause=fake.pause)

    with pytest.raises(ValueError, match="never fit"):
        pacer.acquire(51)
    with pytest.raises(ValueError, match="at least 1 unit"):
        QuotaPacer(0)
    assert fake.pauses == []
