"""The cost of polling CalDAV (iCloud) calendars on the local stack (Radicale behind the iCloud
fault layer, DynamoDB Local, moto's SQS): one account with a linked calendar and N conflict
calendars, every calendar synced once, then

- the scheduler's tick for the account, with and without its conflict calendars due: DynamoDB
  requests and SQS messages sent;
- the worker's no-op poll of each calendar: requests to the CalDAV server (the fault layer's
  counter) and to DynamoDB.

DynamoDB and SQS requests are counted by wrapping botocore inside this benchmark process only.
The scheduler reads the polled connections from the sparse ``polled_connections`` index, one
Query per shard shared by every account; it is reported apart.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
CONFLICT_CALENDARS = 3


@dataclass(frozen=True)
class PollFigures:
    conflict_calendars: int
    tick_dynamodb_linked_only: int
    tick_dynamodb_with_conflicts: int
    tick_index_queries: int
    noop_caldav_requests_per_calendar: float
    noop_dynamodb_requests_per_calendar: float
    noop_dynamodb_writes: int


class _Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def install(self) -> None:
        import botocore.client

        counter = self
        original_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

        def call(self: Any, operation: str, params: Any) -> Any:
            index = params.get("IndexName", "") if isinstance(params, dict) else ""
            counter.calls.append((self.meta.service_model.service_name, operation, index))
            return original_call(self, operation, params)

        setattr(botocore.client.BaseClient, "_make_api_call", call)  # noqa: B010 - this process only

    def dynamodb(self, operation: str | None = None, index: str | None = None) -> int:
        return sum(
            1
            for service, op, idx in self.calls
            if service == "dynamodb" and operation in (None, op) and index in (None, idx)
        )


def _calendar(user: Any, name: str) -> str:
    url = f"{user.home_url}{name}/"
    body = (
        '<?xml version="1.0"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        f"<d:set><d:prop><d:displayname>{name}</d:displayname>"
        '<c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>'
        "</d:prop></d:set></c:mkcalendar>"
    )
    user.session.request("MKCALENDAR", url, data=body, timeout=10).raise_for_status()
    return url


def measure(conflicts: int = CONFLICT_CALENDARS) -> PollFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    counter = _Counter()
    counter.install()
    with Stack(ROOT, sqs_visibility_timeout=1) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import CalendarRef, Principal
        from crmsync.messaging.messages import CalendarSyncRequest
        from crmsync.sync.polling import CONFLICT_TICKS, TICK, conflict_slot, tick_of
        from tests.support.caldav_user import CalDavUser

        settings = Settings.from_env()
        principal = Principal("bench-tenant", "bench-poll")
        user = CalDavUser(stack.caldav)
        others = [_calendar(user, f"conflict-{n}") for n in range(1, conflicts)]
        graph = Graph(settings)
        connection = graph.integrations.connect_with_password(
            "icloud", principal, username=user.email, password=user.password
        ).connection_id
        graph.calendars.refresh(principal, connection)
        graph.calendar_settings.link(principal, CalendarRef(connection, user.calendar_url))
        graph.calendar_settings.set_conflict_calendars(
            principal, [CalendarRef(connection, c) for c in [user.calendar_url, *others]]
        )
        calendars = [user.calendar_url, *others]
        for calendar_id in calendars:  # the first (full) syncs
            graph.calendar_sync.run(principal, connection, calendar_id)

        class Recording:
            def __init__(self) -> None:
                self.sent: list[CalendarSyncRequest] = []

            def send(self, message: Any) -> None:
                self.sent.append(message)

        from datetime import UTC, datetime, timedelta

        from crmsync.sync.polling import CalendarPoller

        def tick(conflicts_due: bool) -> tuple[int, int, int]:
            now = datetime.now(UTC)
            base = tick_of(now)
            wanted = next(
                t
                for t in range(base, base + CONFLICT_TICKS)
                if ((t + conflict_slot(principal, connection)) % CONFLICT_TICKS == 0) == conflicts_due
            )
            moment = datetime.fromtimestamp(wanted * TICK.total_seconds(), UTC) + timedelta(seconds=1)
            queue = Recording()
            poller = CalendarPoller(
                connections=graph.connection_store,
                calendars=graph.calendar_store,
                settings=graph.settings_store,
                queue=queue,
                polled=graph.connectors.polled_providers,
                clock=lambda: moment,
            )
            counter.calls.clear()
            poller.poll_due()
            return counter.dynamodb(), counter.dynamodb("Query", "polled_connections"), len(queue.sent)

        linked_only, scans, sent_linked = tick(False)
        with_conflicts, _, sent_all = tick(True)
        assert (sent_linked, sent_all) == (1, conflicts), (sent_linked, sent_all)

        stack.caldav.layer.clear_calls()
        counter.calls.clear()
        for calendar_id in calendars:
            graph.calendar_sync.run(principal, connection, calendar_id)  # nothing changed since
        writes = sum(
            counter.dynamodb(op)
            for op in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
        )
        return PollFigures(
            conflict_calendars=conflicts,
            tick_dynamodb_linked_only=linked_only - scans,
            tick_dynamodb_with_conflicts=with_conflicts - scans,
            tick_index_queries=scans,
            noop_caldav_requests_per_calendar=stack.caldav.layer.count(user.email) / len(calendars),
            noop_dynamodb_requests_per_calendar=counter.dynamodb() / len(calendars),
            noop_dynamodb_writes=writes,
        )


if __name__ == "__main__":
    main_json(measure)
