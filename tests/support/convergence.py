"""The promise the calendar convergence machines check once the queue has drained (F6), for
any provider: the machines differ in how they act on the calendar, not in what "agree" means."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from crmsync.domain import AppointmentStatus, ExternalDeletion
from crmsync.errors import Conflict, ProviderError


def deliver_round(
    messages: list[Any], deliver: Callable[[Any], None], *, duplicate: bool, reorder: bool, interrupt: bool
) -> list[Any]:
    """One round of the queue as SQS may hand it to the worker: every message twice
    (``duplicate``), in reverse (``reorder``), or stopped half-way (``interrupt``: a worker
    killed mid-batch). What failed or was not reached is returned: the queue keeps it."""
    if duplicate:
        messages = messages + messages
    if reorder:
        messages = list(reversed(messages))
    backlog: list[Any] = []
    for index, message in enumerate(messages):
        if interrupt and index == len(messages) // 2:
            return backlog + messages[index:]
        try:
            deliver(message)
        except (ProviderError, Conflict):
            backlog.append(message)
    return backlog


def assert_converged(
    appointments: Iterable[Any],
    events: Mapping[str, tuple[datetime, datetime]],
    *,
    policy: ExternalDeletion,
    deleted_twins: set[str],
    crm_cancelled: set[str],
) -> None:
    """``events``: the linked calendar's timed events as the test reads them itself (id →
    start, end). Every confirmed appointment is in the calendar once, at its time, and every
    event there is one appointment's; events the calendar's user deleted cancelled or unlinked
    their appointments as the deletion preference says."""
    everything = list(appointments)
    confirmed = [a for a in everything if a.status is AppointmentStatus.CONFIRMED]
    linked = [a.link.event_id for a in confirmed if a.link]
    assert len(linked) == len(set(linked)), "two appointments share one event"
    unlinked = {a.appointment_id for a in confirmed if not a.link}
    if policy is ExternalDeletion.UNLINK:  # kept in the CRM, no longer in the calendar
        assert unlinked <= deleted_twins, "a confirmed appointment never reached the calendar"
        kept = {a.appointment_id for a in confirmed}
        assert deleted_twins - crm_cancelled <= kept, "a deletion in the calendar cancelled an appointment"
    else:
        assert not unlinked, "a confirmed appointment never reached the calendar"
        cancelled = {a.appointment_id for a in everything if a.status is AppointmentStatus.CANCELLED}
        assert deleted_twins <= cancelled, "an event deleted in the calendar left its appointment"
    assert set(linked) == set(events), "the calendar and the CRM disagree on which events exist"
    for appointment in (a for a in confirmed if a.link):
        assert events[appointment.link.event_id] == (appointment.start, appointment.end), "an event is elsewhere"
