"""Queue work: parse each SQS record into a message, run it, report failures per record.

A malformed message can never succeed: it is rejected with a logged reason and a metric
and acknowledged, so it neither crashes the batch nor blocks its FIFO group. A retryable
failure raises, so the record (and the records after it in its group) come back later.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from crmsync.config import get_settings
from crmsync.dal.sync_requests import SyncRequestStore
from crmsync.domain import ConnectionStatus, Principal
from crmsync.errors import ProviderError
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendars import MANUAL_SYNC, Calendars
from crmsync.logic.integrations import Integrations
from crmsync.logic.wiring import (
    build_appointments,
    build_calendar_sync,
    build_calendars,
    build_integrations,
    build_sync_planner,
)
from crmsync.messaging.messages import AppointmentPush, CalendarSyncRequest, ConnectionCheck, sync_message_adapter
from crmsync.observability import MetricsCounter
from crmsync.sync.calendar_sync import CalendarSync
from crmsync.sync.coalesce import settle
from crmsync.sync.planner import SyncPlanner

log = logging.getLogger(__name__)


def make_processor() -> SqsFifoPartialProcessor:
    # One failing resource must not hold up the others: skip only its group.
    return SqsFifoPartialProcessor(skip_group_on_error=True)


@lru_cache(maxsize=1)
def integrations() -> Integrations:
    return build_integrations(get_settings())


def handle_record(record: SQSRecord) -> str:
    try:
        message = sync_message_adapter.validate_json(record.body)
    except ValidationError as exc:
        log.error(
            "rejected malformed sync message",
            extra={"message_id": record.message_id, "reason": _reason(exc)},
        )
        return "rejected"
    return run(message)


@lru_cache(maxsize=1)
def appointments() -> Appointments:
    return build_appointments(get_settings())


@lru_cache(maxsize=1)
def calendars() -> Calendars:
    return build_calendars(get_settings())


@lru_cache(maxsize=1)
def calendar_sync() -> CalendarSync:
    from aws_lambda_powertools import Metrics

    # Metrics instances share their metric set: the handler's ``log_metrics`` flushes these.
    return build_calendar_sync(get_settings(), counter=MetricsCounter(Metrics()))


@lru_cache(maxsize=1)
def planner() -> SyncPlanner:
    return build_sync_planner(get_settings())


def run(message: ConnectionCheck | AppointmentPush | CalendarSyncRequest) -> str:
    if isinstance(message, AppointmentPush):
        outcome = appointments().push(message)
        log.info("appointment pushed", extra={"appointment_id": message.appointment_id, "outcome": outcome})
        return outcome
    if isinstance(message, CalendarSyncRequest):
        return sync_calendar(message)
    return check(message)


@lru_cache(maxsize=1)
def sync_requests() -> SyncRequestStore:
    calendar_sync()  # binds the tables
    return SyncRequestStore()


def sync_calendar(message: CalendarSyncRequest) -> str:
    principal = Principal(message.tenant_id, message.user_id)
    waited = 0.0
    if message.reason == "push":
        # Coalescing: let a burst of notifications end, then take the calendar's mark, so
        # whatever is notified from now on queues one trailing sync.
        waited = settle(sync_requests(), principal, message.connection_id, message.calendar_id)
    # The user's "Sync now" records when it ran even if nothing changed.
    touch = message.reason == MANUAL_SYNC
    result = calendar_sync().run(principal, message.connection_id, message.calendar_id, touch=touch)
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
    return planner().enqueue(principal, message.connection_id, reason=message.reason, occasion=message.occasion)


def check(message: ConnectionCheck) -> str:
    """Check the grant; when it works, refresh the account's calendar list (F2)."""
    status = integrations().check_connection(message)
    outcome = status.value if status else "gone"
    if status is ConnectionStatus.CONNECTED:
        principal = Principal(message.tenant_id, message.user_id)
        try:
            listed = calendars().refresh(principal, message.connection_id)
        except ProviderError as exc:
            if exc.retryable:
                raise
            # Permanent (e.g. the user unticked the calendar scope): the connection stays
            # usable for what it does allow; the reason is logged, not retried forever.
            log.warning("calendar list refused", extra={"connection_id": message.connection_id, "detail": exc.detail})
        else:
            if listed is not None:
                outcome += f", {len(listed)} calendars, {enqueue_calendar_syncs(message)} to sync"
    log.info(
        "connection checked",
        extra={"connection_id": message.connection_id, "reason": message.reason, "outcome": outcome},
    )
    return outcome


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
