"""Queue work: parse each SQS record into a message, run it, report failures per record.

A malformed message can never succeed: it is rejected with a logged reason and a metric
and acknowledged, so it neither crashes the batch nor blocks its FIFO group. A retryable
failure raises, so the record (and the records after it in its group) come back later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

# Every message reads and writes DynamoDB through PynamoDB: its models' base is loaded at cold
# start (as it was through the calendar use cases), not on the first message. The use cases of
# each kind of message (calendar, contacts, mail sync) load on the first message of that kind.
import crmsync.models.base  # noqa: F401
from crmsync.app.wiring import graph
from crmsync.batch import QueueRecord
from crmsync.domain import ConnectionStatus, Principal
from crmsync.errors import ProviderError
from crmsync.messaging.messages import (
    MANUAL_SYNC,
    AppointmentPush,
    CalendarSyncRequest,
    ConnectionCheck,
    ContactImportRequest,
    ContactSyncRequest,
    MailSyncRequest,
    sync_message_adapter,
)
from crmsync.sync.coalesce import settle
from crmsync.sync.mail_requests import MAILBOX_RESOURCE
from crmsync.sync.notifications import SUBSCRIPTION_ACTIONS

if TYPE_CHECKING:
    from crmsync.sync.mail_sync import MailSyncOutcome

log = logging.getLogger(__name__)


def handle_record(record: QueueRecord) -> str:
    try:
        message = sync_message_adapter.validate_json(record.body)
    except ValidationError as exc:
        log.error(
            "rejected malformed sync message",
            extra={"message_id": record.message_id, "reason": _reason(exc)},
        )
        return "rejected"
    return run(message)


def run(
    message: ConnectionCheck
    | AppointmentPush
    | CalendarSyncRequest
    | ContactSyncRequest
    | ContactImportRequest
    | MailSyncRequest,
) -> str:
    if isinstance(message, AppointmentPush):
        outcome = graph().appointments.push(message)
        log.info("appointment pushed", extra={"appointment_id": message.appointment_id, "outcome": outcome})
        return outcome
    if isinstance(message, CalendarSyncRequest):
        return sync_calendar(message)
    if isinstance(message, ContactSyncRequest):
        return sync_contacts(message)
    if isinstance(message, ContactImportRequest):
        return import_contacts(message)
    if isinstance(message, MailSyncRequest):
        return sync_mail(message)
    return check(message)


def import_contacts(message: ContactImportRequest) -> str:
    """Carry out the user's answer to the contact review: decline the rows it declines, import
    the rows the user selected (idempotent: a finished answer is not run again, rows declined
    or imported already are skipped)."""
    record = graph().contact_review.run_answer(Principal(message.tenant_id, message.user_id))
    outcome = (
        "nothing"
        if record is None
        else f"{record.declined or 0} declined, {record.done} imported, {record.failed} left offered"
    )
    log.info("review rows imported", extra={"occasion": message.occasion, "outcome": outcome})
    return outcome


def sync_contacts(message: ContactSyncRequest) -> str:
    """Sync the user's contacts account (F10). Quota and other retryable provider errors
    raise: the record comes back after the queue's visibility timeout (backoff), and the
    failure is recorded on the cursor for the settings page."""
    result = graph().contact_sync.run(Principal(message.tenant_id, message.user_id), message.connection_id)
    # not_synced: the connection is gone, not connected, or no longer the contacts account.
    outcome = "not_synced" if result is None else "full" if result.full else "incremental"
    log.info(
        "contacts synced",
        extra={
            "connection_id": message.connection_id,
            "reason": message.reason,
            "outcome": outcome,
            # Not "created": a LogRecord attribute, which logging refuses to overwrite (KeyError).
            "contacts_created": result.created if result else 0,
            "contacts_updated": result.updated if result else 0,
            "contacts_applied": result.applied if result else 0,
            "candidates_offered": result.offered if result else None,
        },
    )
    return outcome


def sync_mail(message: MailSyncRequest) -> str:
    """Sync the user's Gmail (F8), or forget a mailbox no longer synced. A push waits for its
    burst of notifications to end, then takes the mailbox's mark (coalescing, as calendars)."""
    principal = Principal(message.tenant_id, message.user_id)
    engine = graph().mail_sync
    if message.reason == "forget":
        forgotten = engine.forget(principal, message.connection_id)
        log.info("gmail mailbox forgotten", extra={"connection_id": message.connection_id, "messages": forgotten})
        return "forgotten"
    if message.reason == "push":
        settle(graph().sync_requests, principal, message.connection_id, MAILBOX_RESOURCE)
    result = engine.run(principal, message.connection_id, reason=message.reason, emails=message.emails)
    outcome = "not_synced" if result is None else result.mode + (" (continues)" if result.more else "")
    if result is not None:
        _mail_metrics(result)
    log.info(
        "gmail synced",
        extra={
            "connection_id": message.connection_id,
            "reason": message.reason,
            "outcome": outcome,
            "checked": result.checked if result else 0,
            "logged": result.logged if result else 0,
            "recognised": result.recognised if result else 0,
            "marked": result.marked if result else 0,
        },
    )
    return outcome


def _mail_metrics(result: MailSyncOutcome) -> None:
    """Backfill progress, lag behind the mailbox (quota refusals are counted by the engine)."""
    from crmsync.metrics import Metrics, MetricUnit

    metrics = Metrics()  # the function's metric set, flushed by its handler
    if result.mode == "backfill":
        metrics.add_metric(name="MailBackfillChecked", unit=MetricUnit.Count, value=result.checked)
    metrics.add_metric(name="MailSyncLogged", unit=MetricUnit.Count, value=result.logged)
    if result.lag is not None:
        metrics.add_metric(name="MailSyncLag", unit=MetricUnit.Seconds, value=max(0.0, result.lag))


def sync_calendar(message: CalendarSyncRequest) -> str:
    principal = Principal(message.tenant_id, message.user_id)
    waited = 0.0
    if message.reason == "push":
        # Coalescing: let a burst of notifications end, then take the calendar's mark, so
        # whatever is notified from now on queues one trailing sync.
        waited = settle(graph().sync_requests, principal, message.connection_id, message.calendar_id)
    # The user's "Sync now" records when it ran even if nothing changed.
    touch = message.reason == MANUAL_SYNC
    # A Graph lifecycle event (reauthorizationRequired, subscriptionRemoved) is acted on by
    # the channel upkeep after the sync, on the subscription it named.
    lifecycle = message.reason if message.reason in SUBSCRIPTION_ACTIONS else ""
    result = graph().calendar_sync.run(
        principal,
        message.connection_id,
        message.calendar_id,
        touch=touch,
        lifecycle=lifecycle,
        notified=message.channel_id if lifecycle else "",
    )
    if result is None:
        outcome = "not_connected"
    elif result.retired:
        outcome = "retired"
    else:
        outcome = "full" if result.full else "incremental"
    log.info(
        "calendar synced",
        extra={
            "connection_id": message.connection_id,
            "reason": message.reason,
            "outcome": outcome,
            "changes": result.changes if result else 0,
            "waited_for_burst_s": round(waited, 3),
        },
    )
    return outcome


def enqueue_calendar_syncs(message: ConnectionCheck) -> int:
    """The connection's calendars to sync, and those to retire (the safety-net sweep: a
    calendar whose notifications were lost is still synced every health-check period)."""
    principal = Principal(message.tenant_id, message.user_id)
    return graph().planner.enqueue(principal, message.connection_id, reason=message.reason, occasion=message.occasion)


def check(message: ConnectionCheck) -> str:
    """Check the grant; when it works, refresh the account's calendar list (F2)."""
    status = graph().integrations.check_connection(message)
    outcome = status.value if status else "gone"
    if status is ConnectionStatus.CONNECTED:
        principal = Principal(message.tenant_id, message.user_id)
        try:
            listed = graph().calendars.refresh(principal, message.connection_id)
        except ProviderError as exc:
            if exc.retryable:
                raise
            # Permanent (e.g. the user unticked the calendar scope): the connection stays
            # usable for what it does allow; the reason is logged, not retried forever.
            log.warning("calendar list refused", extra={"connection_id": message.connection_id, "detail": exc.detail})
        else:
            if listed is not None:
                # Enabling contacts sync may wait for this list to link the primary calendar.
                graph().contacts_sync_settings.calendars_listed(principal, message.connection_id)
                outcome += f", {len(listed)} calendars, {enqueue_calendar_syncs(message)} to sync"
    log.info(
        "connection checked",
        extra={"connection_id": message.connection_id, "reason": message.reason, "outcome": outcome},
    )
    return outcome


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
