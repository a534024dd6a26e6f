"""CalDAV (iCloud) sync figures on the local stack (DynamoDB Local, moto, Radicale behind the
iCloud fault layer):

- (a) a no-op poll of ``CALENDARS`` linked calendars, one sync after another as one worker
  invocation runs them: requests per calendar (goal 1), counted by the fault layer in front of
  Radicale, and the time per calendar;
- (b) a full sync of ``EVENTS`` events from Radicale into the mirror (DynamoDB Local), as a
  ratio to writing the same number of items of the same shape straight through PynamoDB batch
  writes in the same run (goal ≥ 0.7; ``ROUNDS`` of each alternately, their medians), as
  ``bench/sync.py`` measures Google's: a calendar
  that is mirrored, not linked (a linked calendar's first sync also makes an appointment of
  every event; docs/PERFORMANCE.md says what that costs).

Accounts connect through the production iCloud flow (discovery, the KMS-encrypted password);
the engine and the adapter are production's (``Graph.calendar_sync``). The CalDAV server runs
in a process of its own (devstack/caldav/remote.py), as iCloud is another machine: in the
benchmark's process, Radicale's Python would compete for the interpreter lock with the sync it
serves, and the figure would charge the server's work to the client.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
EVENTS = int(os.environ.get("BENCH_CALDAV_EVENTS", "2000"))
CALENDARS = int(os.environ.get("BENCH_CALDAV_CALENDARS", "50"))
#: (b) runs this many times, a sync and a raw write alternately: the medians are compared.
ROUNDS = int(os.environ.get("BENCH_CALDAV_ROUNDS", "3"))


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
    #: The full sync with the mirror writing one BatchWriteItem at a time.
    single_writer_seconds: float

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

    @property
    def single_writer_ratio(self) -> float:
        return self.raw_write_seconds / self.single_writer_seconds


def ics(*uids: str, first: datetime) -> bytes:
    """A calendar of one event per uid, 30 minutes apart from ``first``, as a calendar app
    writes them."""
    events = []
    for n, uid in enumerate(uids):
        start = first + timedelta(minutes=30 * n)
        stamp = f"{start:%Y%m%dT%H%M%SZ}"
        end = f"{start + timedelta(minutes=25):%Y%m%dT%H%M%SZ}"
        events.append(
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{stamp}\r\nDTSTART:{stamp}\r\nDTEND:{end}\r\n"
            f"SUMMARY:event {uid}\r\nEND:VEVENT\r\n"
        )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n" + "".join(events) + "END:VCALENDAR\r\n"
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
    from devstack.caldav.remote import RemoteCalDavServer
    from devstack.stack import Stack

    dynamodb = _DynamoCounter()
    dynamodb.install()

    # The domain package is the Lambda layer: put it on the path as the runtime does.
    sys.path.insert(0, str(ROOT / "layers"))
    with (
        RemoteCalDavServer() as server,
        Stack(
            ROOT,
            google=False,
            caldav=False,
            parameter_overrides={"CaldavBaseUrl": server.base_url, "CaldavPrivateServers": "true"},
        ) as stack,
    ):
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import CalendarRef, Principal
        from crmsync.models import ExternalEventItem, bind_tables
        from tests.support.caldav_user import CalDavUser

        settings = Settings.from_env()
        graph = Graph(settings)

        def connect(user: Any, *, link: bool, tenant: str = "bench-tenant") -> tuple[Principal, str, str]:
            principal = Principal(tenant, user.email)
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
            user = CalDavUser(cast(Any, server))  # the parts it uses: add_user, base_url
            user.session.put(user.url(f"e{n}.ics"), data=ics(f"e{n}", first=first), timeout=10).raise_for_status()
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
        user = CalDavUser(cast(Any, server))  # the parts it uses: add_user, base_url
        # One PUT of the whole calendar, as an import does (Radicale stores each VEVENT as a
        # resource of its own, named by its UID): one PUT per event takes minutes there.
        user.session.put(
            user.calendar_url,
            data=ics(*(uuid.uuid4().hex for _ in range(EVENTS)), first=first),
            headers={"Content-Type": "text/calendar"},
            timeout=600,
        ).raise_for_status()
        bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)
        syncs: list[float] = []
        single_writer: list[float] = []
        raws: list[float] = []
        full_requests = mirrored = 0

        def full_sync(tenant: str) -> float:
            nonlocal full_requests, mirrored
            # A new tenant connects the same calendar: a first full sync into an empty
            # mirror, with the same data on the server.
            principal, connection, calendar = connect(user, link=False, tenant=tenant)
            server.layer.clear_calls()
            began = time.perf_counter()
            graph.calendar_sync.run(principal, connection, calendar)
            took = time.perf_counter() - began
            full_requests = server.layer.count(user.email)
            mirrored = len(graph.mirror_store.events(principal, connection, calendar))
            return took

        for round_ in range(ROUNDS):
            syncs.append(full_sync(f"bench-tenant-{round_}"))
            # The mirror's writes one BatchWriteItem at a time, as the raw write below does
            # them: how much of the ratio the concurrent writes make.
            with _writers(1):
                single_writer.append(full_sync(f"bench-single-{round_}"))
            # The same number of items of the same shape, written straight through PynamoDB.
            began = time.perf_counter()
            with ExternalEventItem.batch_write() as batch_writer:
                for n in range(EVENTS):
                    batch_writer.save(_raw_item(ExternalEventItem, n, first))
            raws.append(time.perf_counter() - began)
        return CalDavFigures(
            CALENDARS,
            noop_requests,
            noop_dynamodb,
            noop_seconds,
            EVENTS,
            mirrored,
            statistics.median(syncs),
            full_requests,
            statistics.median(raws),
            statistics.median(single_writer),
        )


@contextlib.contextmanager
def _writers(count: int) -> Iterator[None]:
    """The mirror's concurrent BatchWriteItem calls set to ``count`` for a while."""
    from crmsync.dal import mirror

    kept, mirror.WRITERS = mirror.WRITERS, count
    try:
        yield
    finally:
        mirror.WRITERS = kept


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
