"""Property: whatever the CRM user and the Google user do, in any order, with rate limits,
server errors, invalidated sync tokens and duplicated notifications in between, once the
queue has drained the CRM and the linked Google calendar agree — no duplicates, no loss."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import AppointmentStatus
from crmsync.errors import BookingConflict, Conflict, ProviderError
from tests.integration.conftest import RecordingQueue
from tests.integration.test_two_way_sync import ALICE, START, World, iso

pytestmark = pytest.mark.integration

HOURS = st.integers(min_value=0, max_value=40)
FAULTS = st.sampled_from(["rate_limit_429", "rate_limit_403", "backend_500", "unavailable_503"])
METHODS = st.sampled_from(["calendar.events.insert", "calendar.events.update", "calendar.events.list", "calendar."])


def make_machine(new_world: Callable[[], World]) -> type[RuleBasedStateMachine]:
    class TwoWay(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.world = new_world()
            self.backlog: list[Any] = []  # queue messages waiting for a retry

        # ------------------------------------------------------------ the CRM user
        @rule(hour=HOURS, length=st.integers(min_value=1, max_value=3))
        def crm_books(self, hour: int, length: int) -> None:
            start = START + timedelta(hours=hour)
            with contextlib.suppress(BookingConflict):  # refusing a double booking is correct
                self.world.appointments.create(
                    ALICE, AppointmentFields("crm", start, start + timedelta(hours=length), "UTC")
                )

        @rule(pick=st.integers(min_value=0), hour=HOURS)
        def crm_moves(self, pick: int, hour: int) -> None:
            live = [a for a in self.world.listed() if a.status is AppointmentStatus.CONFIRMED]
            if not live:
                return
            target = live[pick % len(live)]
            start = START + timedelta(hours=hour)
            with contextlib.suppress(BookingConflict, Conflict):
                self.world.appointments.change(
                    ALICE, target.appointment_id, start=start, end=start + timedelta(hours=1)
                )

        @rule(pick=st.integers(min_value=0))
        def crm_cancels(self, pick: int) -> None:
            live = [a for a in self.world.listed() if a.status is AppointmentStatus.CONFIRMED]
            if live:
                self.world.appointments.cancel(ALICE, live[pick % len(live)].appointment_id)

        # ------------------------------------------------------------ the Google user
        @rule(hour=HOURS)
        def google_creates(self, hour: int) -> None:
            start = START + timedelta(hours=hour)
            self.world.google.add(
                summary="google",
                start={"dateTime": iso(start)},
                end={"dateTime": iso(start + timedelta(hours=1))},
            )

        @rule(pick=st.integers(min_value=0), hour=HOURS)
        def google_moves(self, pick: int, hour: int) -> None:
            events = self._google_events()
            if events:
                start = START + timedelta(hours=hour)
                self.world.google.patch(
                    events[pick % len(events)]["id"],
                    start={"dateTime": iso(start)},
                    end={"dateTime": iso(start + timedelta(hours=1))},
                )

        @rule(pick=st.integers(min_value=0))
        def google_deletes(self, pick: int) -> None:
            events = self._google_events()
            if events:
                self.world.google.delete(events[pick % len(events)]["id"])

        # ------------------------------------------------------------ the infrastructure
        @rule(kind=FAULTS, method=METHODS, count=st.integers(min_value=1, max_value=2))
        def google_fails(self, kind: str, method: str, count: int) -> None:
            requests.post(
                f"{self.world.base}/_emulator/faults",
                json={"kind": kind, "method": method, "email": self.world.email, "count": count},
                timeout=10,
            ).raise_for_status()

        @rule()
        def sync_token_expires(self) -> None:
            self.world.google.expire_sync_tokens()

        @rule(duplicate=st.booleans(), interrupt=st.booleans())
        def worker_runs(self, duplicate: bool, interrupt: bool) -> None:
            """One delivery round: pushes (duplicated if asked), then a sync; a failure leaves
            the work queued, an interrupted round stops half-way (a worker killed mid-batch)."""
            messages = self.backlog + self.world.recorded.take()
            self.backlog = []
            if duplicate:
                messages = messages + messages
            for index, message in enumerate(messages):
                if interrupt and index == len(messages) // 2:
                    self.backlog.extend(messages[index:])
                    return
                try:
                    self.world.appointments.push(message)
                except (ProviderError, Conflict):
                    self.backlog.append(message)
            with contextlib.suppress(ProviderError, Conflict):  # the next notification syncs again
                self.world.sync.run(ALICE, self.world.connection, self.world.email)

        # ------------------------------------------------------------ the promise
        def teardown(self) -> None:
            requests.delete(f"{self.world.base}/_emulator/faults", timeout=10)
            for _ in range(6):  # the queue drains: retries until nothing is left
                self.worker_runs(duplicate=False, interrupt=False)
                if not self.backlog and not self.world.recorded.sent:
                    break
            self.world.sync.run(ALICE, self.world.connection, self.world.email)
            for _ in range(3):
                self.worker_runs(duplicate=False, interrupt=False)
            self._assert_converged()

        def _google_events(self) -> list[dict[str, Any]]:
            return self.world.google.events(cancelled=False)

        def _assert_converged(self) -> None:
            events = {e["id"]: e for e in self._google_events()}
            confirmed = [a for a in self.world.listed() if a.status is AppointmentStatus.CONFIRMED]
            linked = [a.link.event_id for a in confirmed if a.link]
            assert len(linked) == len(set(linked)), "two appointments share one event"
            assert all(a.link for a in confirmed), "a confirmed appointment never reached Google"
            assert set(linked) == set(events), "the calendar and the CRM disagree on which events exist"
            for appointment in confirmed:
                event = events[appointment.link.event_id]  # type: ignore[union-attr]
                assert event["start"]["dateTime"].startswith(iso(appointment.start)[:19])
                assert event["end"]["dateTime"].startswith(iso(appointment.end)[:19])

        @invariant()
        def no_appointment_is_linked_twice(self) -> None:
            linked = [a.link.event_id for a in self.world.listed() if a.link]
            assert len(linked) == len(set(linked))

    return TwoWay


def test_crm_and_google_converge(
    stack, service_env, integrations, calendars, make_appointments, recorded: RecordingQueue
) -> None:
    def new_world() -> World:
        recorded.take()
        return World(stack, service_env, integrations, calendars, make_appointments(), recorded)

    run_state_machine_as_test(
        make_machine(new_world),
        settings=settings(
            max_examples=8,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
