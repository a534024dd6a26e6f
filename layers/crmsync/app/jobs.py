"""Scheduled jobs. The schedule's Input names the job: ``{"job": "connection_health"}``,
``{"job": "push_sweep"}``, ``{"job": "contacts_sync"}``, ``{"job": "mail_sync"}``,
``{"job": "calendar_poll"}``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from crmsync.app.wiring import graph

log = logging.getLogger(__name__)


def connection_health(metrics: Metrics) -> dict[str, Any]:
    """Enqueue a health check for every connection. The occasion (the hour) makes a repeated
    firing within the same hour a no-op at the queue."""
    occasion = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    sent = graph().integrations.enqueue_health_checks(occasion)
    metrics.add_metric(name="HealthChecksEnqueued", unit=MetricUnit.Count, value=sent)
    return {"job": "connection_health", "enqueued": sent}


def push_sweep(metrics: Metrics) -> dict[str, Any]:
    """Enqueue again the appointment pushes due for over 2 minutes (their message was lost,
    e.g. the queue refused it). Each sweep's occasion is its 5-minute bucket."""
    swept = graph().appointments.sweep_pushes()
    metrics.add_metric(name="PushesSwept", unit=MetricUnit.Count, value=swept.enqueued)
    metrics.add_metric(name="PushMarksCleaned", unit=MetricUnit.Count, value=swept.cleaned)
    if swept.failed:
        metrics.add_metric(name="PushSweepSendFailures", unit=MetricUnit.Count, value=swept.failed)
    return {"job": "push_sweep", "enqueued": swept.enqueued, "cleaned": swept.cleaned, "failed": swept.failed}


def contacts_sync(metrics: Metrics) -> dict[str, Any]:
    """Enqueue a contacts sync for every user with contacts sync on (People has no push). The
    occasion is the 15-minute bucket: a repeated firing within it is a no-op at the queue."""
    moment = datetime.now(UTC)
    occasion = f"scheduled@{moment.strftime('%Y-%m-%dT%H')}:{moment.minute // 15 * 15:02d}"
    sent = graph().contact_sync_requests.enqueue_all(occasion)
    metrics.add_metric(name="ContactSyncsEnqueued", unit=MetricUnit.Count, value=sent)
    return {"job": "contacts_sync", "enqueued": sent}


def mail_sync(metrics: Metrics) -> dict[str, Any]:
    """The safety net of two-way mail sync (F8): every hour, a history sync of every synced
    mailbox — Gmail's pushes "may be delayed or dropped" — which also renews each watch once
    a day and resumes a backfill whose next step was lost. A no-op costs one Gmail request.
    The occasion is the hour: a repeated firing within it is a no-op at the queue."""
    occasion = f"scheduled@{datetime.now(UTC):%Y-%m-%dT%H}"
    root = graph()
    sent = 0
    for principal, state in root.mail_sync_store.enabled():
        if state.connection_id:
            root.mail_sync_requests.request(principal, state.connection_id, "scheduled", occasion)
            sent += 1
    metrics.add_metric(name="MailSyncsEnqueued", unit=MetricUnit.Count, value=sent)
    return {"job": "mail_sync", "enqueued": sent}


def calendar_poll(metrics: Metrics) -> dict[str, Any]:
    """Every 5 minutes: poll the calendars that send no change notifications (CalDAV,
    iCloud) — linked calendars at each tick, conflict calendars every third tick
    (:mod:`crmsync.sync.polling`). A repeated firing within the tick is a no-op at the queue."""
    swept = graph().calendar_poller.poll_due()
    metrics.add_metric(name="CalendarPollsEnqueued", unit=MetricUnit.Count, value=swept.calendars)
    if swept.failed:
        metrics.add_metric(name="CalendarPollSendFailures", unit=MetricUnit.Count, value=swept.failed)
    return {"job": "calendar_poll", "accounts": swept.accounts, "enqueued": swept.calendars, "failed": swept.failed}


JOBS = {
    "connection_health": connection_health,
    "push_sweep": push_sweep,
    "contacts_sync": contacts_sync,
    "mail_sync": mail_sync,
    "calendar_poll": calendar_poll,
}


def run_job(event: Any, metrics: Metrics) -> dict[str, Any]:
    name = event.get("job") if isinstance(event, dict) else None
    job = JOBS.get(name) if isinstance(name, str) else None
    if job is None:
        log.error("rejected scheduled event: unknown job", extra={"job": str(name)[:64]})
        return {"job": name, "error": "unknown job"}
    return job(metrics)
