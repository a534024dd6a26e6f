"""Scheduled jobs. The schedule's Input names the job and passes the time it was scheduled
for: ``{"job": "connection_health", "at": "<aws.scheduler.scheduled-time>"}`` (EventBridge
Scheduler fills the placeholder), and likewise ``push_sweep``, ``contacts_sync``,
``mail_sync`` and ``calendar_poll``. Every schedule fires every 5 minutes; the health check,
the contacts sync and the mail safety net each read the one slot of their items due at that
tick (:mod:`crmsync.domain.sweeps`), so each item keeps its period (6 hours, 15 minutes, an
hour) and a period's work is spread evenly over its ticks. Reading the scheduled time rather
than the clock keeps a retried or late invocation on its own tick's slot."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from crmsync.app.wiring import graph
from crmsync.domain.sweeps import Sweep, due_key, tick_start
from crmsync.messaging.queue import BatchReport
from crmsync.metrics import Metrics, MetricUnit

log = logging.getLogger(__name__)


def scheduled_time(event: Any) -> datetime:
    """The time the schedule was due (``at``), else now (an invocation by hand)."""
    raw = event.get("at") if isinstance(event, dict) else None
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            log.warning("scheduled time unreadable; using the clock", extra={"at": raw[:40]})
        else:
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
            log.warning("scheduled time without a zone; using the clock", extra={"at": raw[:40]})
    return datetime.now(UTC)


def _sweep(
    metrics: Metrics, job: str, sweep: Sweep, at: datetime, counted: str, enqueue: Callable[[str, str], int]
) -> dict[str, Any]:
    """One tick of a sweep: ``enqueue(slot, occasion)`` queues the slot due at ``at`` (batched,
    :meth:`SyncQueue.batching`) and says how many; the occasion (the tick) makes a repeated
    firing of the tick a no-op at the queue."""
    due = due_key(sweep, at)
    with graph().queue.batching() as batch:
        sent = enqueue(due, f"{tick_start(at):%Y-%m-%dT%H:%M}")
    metrics.add_metric(name=counted, unit=MetricUnit.Count, value=sent - batch.failed)
    _failures(metrics, batch)
    return {"job": job, "slot": due, "enqueued": sent - batch.failed, "failed": batch.failed}


def connection_health(metrics: Metrics, at: datetime) -> dict[str, Any]:
    """Enqueue a health check for every connection of the tick's slot (each connection every
    6 hours)."""
    return _sweep(
        metrics,
        "connection_health",
        Sweep.HEALTH,
        at,
        "HealthChecksEnqueued",
        lambda due, tick: graph().integrations.enqueue_health_checks(tick, due),
    )


def push_sweep(metrics: Metrics, at: datetime) -> dict[str, Any]:
    """Enqueue again the appointment pushes due for over 2 minutes (their message was lost,
    e.g. the queue refused it). Each sweep's occasion is its 5-minute bucket."""
    swept = graph().appointments.sweep_pushes()
    metrics.add_metric(name="PushesSwept", unit=MetricUnit.Count, value=swept.enqueued)
    metrics.add_metric(name="PushMarksCleaned", unit=MetricUnit.Count, value=swept.cleaned)
    if swept.failed:
        metrics.add_metric(name="PushSweepSendFailures", unit=MetricUnit.Count, value=swept.failed)
    return {"job": "push_sweep", "enqueued": swept.enqueued, "cleaned": swept.cleaned, "failed": swept.failed}


def contacts_sync(metrics: Metrics, at: datetime) -> dict[str, Any]:
    """Enqueue a contacts sync for every user with contacts sync on in the tick's slot (People
    has no push: each user every 15 minutes)."""
    return _sweep(
        metrics,
        "contacts_sync",
        Sweep.CONTACTS,
        at,
        "ContactSyncsEnqueued",
        lambda due, tick: graph().contact_sync_requests.enqueue_all(f"scheduled@{tick}", due),
    )


def mail_sync(metrics: Metrics, at: datetime) -> dict[str, Any]:
    """The safety net of two-way mail sync (F8): every hour, a history sync of every synced
    mailbox — Gmail's pushes "may be delayed or dropped" — which also renews each watch once
    a day and resumes a backfill whose next step was lost. A no-op costs one Gmail request.
    Each tick takes its slot's mailboxes."""

    def enqueue(due: str, tick: str) -> int:
        root = graph()
        sent = 0
        for principal, connection_id in root.mail_sync_store.due(due):
            root.mail_sync_requests.request(principal, connection_id, "scheduled", f"scheduled@{tick}")
            sent += 1
        return sent

    return _sweep(metrics, "mail_sync", Sweep.MAIL, at, "MailSyncsEnqueued", enqueue)


def calendar_poll(metrics: Metrics, at: datetime) -> dict[str, Any]:
    """Every 5 minutes: poll the calendars that send no change notifications (CalDAV,
    iCloud) — linked calendars at each tick, conflict calendars every third tick
    (:mod:`crmsync.sync.polling`). A repeated firing within the tick is a no-op at the queue."""
    root = graph()
    with root.queue.batching() as batch:
        swept = root.calendar_poller.poll_due(at)
    metrics.add_metric(name="CalendarPollsEnqueued", unit=MetricUnit.Count, value=swept.calendars - batch.failed)
    if swept.failed:
        metrics.add_metric(name="CalendarPollSendFailures", unit=MetricUnit.Count, value=swept.failed)
    _failures(metrics, batch)
    return {
        "job": "calendar_poll",
        "accounts": swept.accounts,
        "enqueued": swept.calendars - batch.failed,
        "failed": swept.failed + batch.failed,
    }


def backfill_sweeps(metrics: Metrics, at: datetime) -> dict[str, Any]:
    """Not scheduled: run once by hand after deploying the ``sweeps`` index, so items stored
    before it get their slot (:mod:`crmsync.dal.sweeps`)."""
    from crmsync.dal.sweeps import backfill_sweep_slots

    given = backfill_sweep_slots()
    metrics.add_metric(name="SweepSlotsBackfilled", unit=MetricUnit.Count, value=given)
    return {"job": "backfill_sweeps", "given": given}


def _failures(metrics: Metrics, batch: BatchReport) -> None:
    """Messages of a sweep the queue refused (each logged where it was refused)."""
    if batch.failed:
        metrics.add_metric(name="SweepSendFailures", unit=MetricUnit.Count, value=batch.failed)


JOBS = {
    "connection_health": connection_health,
    "push_sweep": push_sweep,
    "contacts_sync": contacts_sync,
    "mail_sync": mail_sync,
    "calendar_poll": calendar_poll,
    "backfill_sweeps": backfill_sweeps,
}


def run_job(event: Any, metrics: Metrics) -> dict[str, Any]:
    name = event.get("job") if isinstance(event, dict) else None
    job = JOBS.get(name) if isinstance(name, str) else None
    if job is None:
        log.error("rejected scheduled event: unknown job", extra={"job": str(name)[:64]})
        return {"job": name, "error": "unknown job"}
    return job(metrics, scheduled_time(event))
