"""Microsoft Graph (Outlook) calendar sync figures on the local stack (DynamoDB Local, moto, the
Graph emulator):

- (a) a no-op delta round of ``CALENDARS`` linked calendars (one mailbox each, one event each,
  first sync done), one sync after another as one worker invocation runs them: Graph requests
  per calendar (goal 1), counted by the emulator, and DynamoDB requests per calendar (goal ≤ 2),
  counted by wrapping botocore in this process;
- (b) a full sync of ``EVENTS`` events from the emulator into the mirror (DynamoDB Local), as a
  ratio to writing the same number of items of the same shape straight through PynamoDB batch
  writes in the same run (goal ≥ 0.7; ``ROUNDS`` of each alternately, their medians), as
  ``bench/caldav.py`` measures iCloud's: a calendar that is mirrored, not linked.

The engine, the adapter (``GraphCalendar``, its default page size) and the stores are
production's (``Graph.calendar_sync``); only the Microsoft connections' calendar factory is the
benchmark's, with the emulator's base URL and a bearer token the benchmark server maps to the
mailbox (devstack/microsoft/graph/remote.py): signing in with MSAL is not what is measured. The
emulator runs in a process of its own (Graph is another machine; in the benchmark's process its
Python would share the interpreter lock with the sync it serves).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import main_json
from bench.caldav import _DynamoCounter

ROOT = Path(__file__).resolve().parents[1]
EVENTS = int(os.environ.get("BENCH_GRAPH_EVENTS", "10000"))
CALENDARS = int(os.environ.get("BENCH_GRAPH_CALENDARS", "50"))
#: (b) runs this many times, a sync and a raw write alternately: the medians are compared.
ROUNDS = int(os.environ.get("BENCH_GRAPH_ROUNDS", "3"))
#: ``Prefer: odata.maxpagesize`` of the delta pages; 0: the adapter's default (1,000).
PAGE_SIZE = int(os.environ.get("BENCH_GRAPH_PAGE_SIZE", "0"))


@dataclass(frozen=True)
class GraphFigures:
    calendars: int
    noop_requests: int
    noop_dynamodb_requests: int
    noop_seconds: float
    events: int
    mirrored: int
    full_sync_seconds: float
    full_sync_requests: int
    raw_write_seconds: float
    page_size: int

    @property
    def requests_per_calendar(self) -> float:
        return self.noop_requests / self.calendars

    @property
    def dynamodb_per_calendar(self) -> float:
        return self.noop_dynamodb_requests / self.calendars

    @property
    def ms_per_calendar(self) -> float:
        return self.noop_seconds * 1000 / self.calendars

    @property
    def ratio(self) -> float:
        """Sync throughput over raw write throughput (1.0 = as fast as writing the items)."""
        return self.raw_write_seconds / self.full_sync_seconds


def event(start: datetime, n: int) -> dict[str, Any]:
    return {
        "subject": f"event {n}",
        "start": {"dateTime": start.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=25)).replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
    }


def measure() -> GraphFigures:
    from devstack.microsoft.graph.remote import RemoteGraphServer
    from devstack.stack import Stack

    dynamodb = _DynamoCounter()
    dynamodb.install()

    # The domain package is the Lambda layer: put it on the path as the runtime does.
    sys.path.insert(0, str(ROOT / "layers"))
    with RemoteGraphServer() as server, Stack(ROOT, google=False, caldav=False, microsoft=False) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.connectors import Connectors, ProviderKit
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import CalendarRef, Connection, CredentialKind, Principal, StoredConnection
        from crmsync.models import ExternalEventItem, bind_tables
        from crmsync.providers.graph.calendar import PAGE_SIZE as DEFAULT_PAGE_SIZE
        from crmsync.providers.graph.calendar import GraphCalendar
        from crmsync.security.tokens import TokenContext

        settings = Settings.from_env()
        graph = Graph(settings)

        def calendar(secret: str, stored: StoredConnection) -> GraphCalendar:
            return GraphCalendar(
                server.base_url,
                lambda: stored.connection.email,
                tenant_id=stored.connection.tenant_id,
                page_size=PAGE_SIZE or DEFAULT_PAGE_SIZE,
            )

        def no_credential(secret: str, connection: Connection) -> Any:
            raise AssertionError("the benchmark never checks a connection's health")

        kit = ProviderKit(
            credential_kinds=frozenset({CredentialKind.OAUTH_TOKENS}), credential=no_credential, calendar=calendar
        )
        # The composition root's other parts are production's; its Microsoft calendars are ours.
        graph.__dict__["connectors"] = Connectors(graph.cipher, {"microsoft": kit})

        def connect(email: str, calendar_id: str, *, link: bool, tenant: str) -> tuple[Principal, str, str]:
            principal = Principal(tenant, "bench-user")
            connection = f"microsoft-{uuid.uuid4().hex[:12]}"
            secret = graph.cipher.encrypt("{}", TokenContext(tenant, principal.user_id, connection))
            graph.connection_store.upsert(
                principal,
                connection_id=connection,
                provider="microsoft",
                subject=f"bench.{uuid.uuid4().hex[:8]}",
                email=email,
                display_name=None,
                scopes=("Calendars.ReadWrite",),
                credential_ciphertext=secret,
            )
            graph.calendars.refresh(principal, connection)
            if link:
                graph.calendar_settings.link(principal, CalendarRef(connection, calendar_id))
            return principal, connection, calendar_id

        # (a) no-op delta rounds: each calendar holds one event and has had its first sync.
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        polled = []
        for n in range(CALENDARS):
            email = f"bench-{n}-{uuid.uuid4().hex[:6]}@contoso.test"
            calendar_id = server.add_user(email)
            server.add_event(email, event(first, n))
            polled.append(connect(email, calendar_id, link=True, tenant=f"bench-noop-{n}"))
            graph.calendar_sync.run(*polled[-1])
        server.clear_calls()
        dynamodb.calls = 0
        began = time.perf_counter()
        for principal, connection, calendar_id in polled:
            graph.calendar_sync.run(principal, connection, calendar_id)
        noop_seconds = time.perf_counter() - began
        noop_requests = server.calls()
        noop_dynamodb = dynamodb.calls

        # (b) a full sync of EVENTS events.
        email = f"bench-full-{uuid.uuid4().hex[:6]}@contoso.test"
        calendar_id = server.add_user(email)
        for n in range(EVENTS):
            server.add_event(email, event(first + timedelta(minutes=30 * n), n))
        bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)
        syncs: list[float] = []
        raws: list[float] = []
        full_requests = mirrored = 0

        def full_sync(tenant: str) -> float:
            nonlocal full_requests, mirrored
            # A new tenant connects the same mailbox: a first full sync into an empty mirror,
            # with the same data on the server.
            principal, connection, calendar = connect(email, calendar_id, link=False, tenant=tenant)
            server.clear_calls()
            began = time.perf_counter()
            graph.calendar_sync.run(principal, connection, calendar)
            took = time.perf_counter() - began
            full_requests = server.calls(email)
            mirrored = len(graph.mirror_store.events(principal, connection, calendar))
            return took

        for round_ in range(ROUNDS):
            syncs.append(full_sync(f"bench-tenant-{round_}"))
            # The same number of items of the same shape, written straight through PynamoDB.
            began = time.perf_counter()
            with ExternalEventItem.batch_write() as batch_writer:
                for n in range(EVENTS):
                    batch_writer.save(_raw_item(ExternalEventItem, n, first, calendar_id))
            raws.append(time.perf_counter() - began)
        return GraphFigures(
            CALENDARS,
            noop_requests,
            noop_dynamodb,
            noop_seconds,
            EVENTS,
            mirrored,
            statistics.median(syncs),
            full_requests,
            statistics.median(raws),
            PAGE_SIZE or DEFAULT_PAGE_SIZE,
        )


def _raw_item(item: Any, n: int, first: datetime, calendar_id: str) -> Any:
    """An item of the mirror's shape: the same key (connection, calendar and event ids of
    the same lengths) and attributes as the sync writes for a Graph event."""
    from crmsync.models.sync import external_prefix

    event_id = "AAMkAG" + uuid.uuid4().hex + uuid.uuid4().hex[:16]
    connection_id = f"microsoft-{uuid.uuid4().hex[:12]}"
    return item(
        "T#raw#U#raw",
        external_prefix(connection_id, calendar_id) + event_id,
        connection_id=connection_id,
        calendar_id=calendar_id,
        event_id=event_id,
        start=first + timedelta(minutes=30 * n),
        end=first + timedelta(minutes=30 * n + 25),
        all_day=False,
        transparent=False,
        declined=False,
        summary=f"event {n}",
        etag=f'W/"{uuid.uuid4().hex[:20]}"',
    )


if __name__ == "__main__":
    main_json(measure)
