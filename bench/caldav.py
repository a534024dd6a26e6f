"""CalDAV (iCloud) sync figures on the local stack (DynamoDB Local, moto, Radicale behind the
iCloud fault layer):

- (a) a no-op poll of ``CALENDARS`` linked calendars, one sync after another as one worker
  invocation runs them: requests per calendar (goal 1), counted by the fault layer in front of
  Radicale, and the time per calendar;
- (b) a full sync of ``EVENTS`` events from Radicale into the mirror (DynamoDB Local), as a
  ratio to writing the same number of items of the same shape straight through PynamoDB batch
  writes in the same run (goal ≥ 0.7), as ``bench/sync.py`` measures Google's: a calendar
  that is mirrored, not linked (a linked calendar's first sync also makes an appointment of
  every event; docs/PERFORMANCE.md says what that costs).

Accounts connect through the production iCloud flow (discovery, the KMS-encrypted password);
the engine and the adapter are production's (``Graph.calendar_sync``).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
EVENTS = int(os.environ.get("BENCH_CALDAV_EVENTS", "2000"))
CALENDARS = int(os.environ.get("BENCH_CALDAV_CALENDARS", "50"))


@dataclass(frozen=True)
class CalDavFigures:
    calendars: int
    noop_requests: int
    noop_dynamodb_requests: int
    noop_seconds: float
    events: int
    mirrored: int
    full_sync_seconds: float
    full_sync_requests: int
    raw_write_seconds: float

    @property
    def requests_per_calendar(self) -> float:
        return self.noop_requests / self.calendars

    @property
    def ms_per_calendar(self) -> float:
        return self.noop_seconds * 1000 / self.calendars

    @property
    def ratio(self) -> float:
        """Sync throughput over raw write throughput (1.0 = as fast as writing the items)."""
        return self.raw_write_seconds / self.full_sync_seconds


def ics(uid: str, start: datetime) -> bytes:
    """One event as a calendar app writes it."""
    stamp = f"{start:%Y%m%dT%H%M%SZ}"
    end = f"{start + timedelta(minutes=25):%Y%m%dT%H%M%SZ}"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{stamp}\r\nDTSTART:{stamp}\r\nDTEND:{end}\r\nSUMMARY:event {uid}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


class _DynamoCounter:
    """Counts this process's DynamoDB calls (instrumentation of the benchmark only)."""

    def __init__(self) -> None:
        self.calls = 0

    def install(self) -> None:
        import botocore.client

        counter = self
        original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

        def call(self: Any, operation: str, params: Any) -> Any:
            if self.meta.service_model.service_name == "dynamodb":
                counter.calls += 1
            return original(self, operation, params)

        setattr(botocore.client.BaseClient, "_make_api_call", call)  # noqa: B010


def measure() -> CalDavFigures:
    from devstack.stack import Stack

    dynamodb = _DynamoCounter()
    dynamodb.install()

    # The domain package is the Lambda layer: put it on the path as the runtime does.
    sys.path.insert(0, str(ROOT / "layers"))
    with Stack(ROOT, google=False) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import CalendarRef, Principal
        from crmsync.models import ExternalEventItem, bind_tables
        from tests.support.caldav_user import CalDavUser

        settings = Settings.from_env()
        graph = Graph(settings)
        server = stack.caldav

        def connect(user: CalDavUser, *, link: bool) -> tuple[Principal, str, str]:
            principal = Principal("bench-tenant", user.email)
            connection = graph.integrations.connect_with_password(
                "icloud", principal, username=user.email, password=user.password
            ).connection_id
            graph.calendars.refresh(principal, connection)
            if link:
                graph.calendar_settings.link(principal, CalendarRef(connection, user.calendar_url))
            return principal, connection, user.calendar_url

        # (a) no-op polls: each calendar holds one event and has had its first sync.
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        polled = []
        for n in range(CALENDARS):
            user = CalDavUser(server)
            user.session.put(user.url(f"e{n}.ics"), data=ics(f"e{n}", first), timeout=10).raise_for_status()
            polled.append(connect(user, link=True))
            graph.calendar_sync.run(*polled[-1])
        server.layer.clear_calls()
        dynamodb.calls = 0
        began = time.perf_counter()
        for principal, connection, calendar in polled:
            graph.calendar_sync.run(principal, connection, calendar)
        noop_seconds = time.perf_counter() - began
        noop_requests = server.layer.count()
        noop_dynamodb = dynamodb.calls

        # (b) a full sync of EVENTS events.
        user = CalDavUser(server)
        for n in range(EVENTS):
            uid = uuid.uuid4().hex
            response = user.session.put(user.url(f"{uid}.ics"), data=ics(uid, first + timedelta(minutes=30 * n)))
            response.raise_for_status()
        principal, connection, calendar = connect(user, link=False)
        server.layer.clear_calls()
        began = time.perf_counter()
        graph.calendar_sync.run(principal, connection, calendar)
        full_sync = time.perf_counter() - began
        full_requests = server.layer.count(user.email)
        mirrored = len(graph.mirror_store.events(principal, connection, calendar))

        # The same number of items of the same shape, written straight through PynamoDB.
        bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)
        began = time.perf_counter()
        with ExternalEventItem.batch_write() as batch_writer:
            for n in range(EVENTS):
                batch_writer.save(_raw_item(ExternalEventItem, n, first))
        raw_write = time.perf_counter() - began
        return CalDavFigures(
            CALENDARS, noop_requests, noop_dynamodb, noop_seconds, EVENTS, mirrored, full_sync, full_requests, raw_write
        )


def _raw_item(item: Any, n: int, first: datetime) -> Any:
    uid = uuid.uuid4().hex
    return item(
        "T#raw#U#raw",
        f"EXT#raw#{uid}.ics",
        connection_id="raw",
        calendar_id="https://caldav.example/raw/calendar/",
        event_id=f"{uid}.ics",
        start=first + timedelta(minutes=30 * n),
        end=first + timedelta(minutes=30 * n + 25),
        summary=f"event {uid}",
        etag=f'"{uid}"',
    )


if __name__ == "__main__":
    main_json(measure)
