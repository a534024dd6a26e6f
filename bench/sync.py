"""Calendar sync figures on the local stack (DynamoDB Local, moto, the Google emulator):

- a full sync of 10,000 events, as a ratio to raw DynamoDB Local batch-write throughput of
  the same number of items in the same run (the goal is ≥ 0.7);
- the requests a no-op incremental sync makes (goal: 1 to Google, ≤ 2 to DynamoDB).

The requests are counted by wrapping the two HTTP clients inside this benchmark process only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 10_000


@dataclass(frozen=True)
class SyncFigures:
    events: int
    full_sync_seconds: float
    raw_write_seconds: float
    noop_google_requests: int
    noop_dynamodb_requests: int

    @property
    def ratio(self) -> float:
        """Sync throughput over raw write throughput (1.0 = as fast as writing the items)."""
        return self.raw_write_seconds / self.full_sync_seconds


class _Counter:
    def __init__(self) -> None:
        self.google = 0
        self.dynamodb = 0

    def install(self) -> None:
        import botocore.client
        import httplib2

        counter = self
        original_request = httplib2.Http.request
        original_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

        def request(self: Any, *args: Any, **kwargs: Any) -> Any:
            counter.google += 1
            return original_request(self, *args, **kwargs)

        def call(self: Any, operation: str, params: Any) -> Any:
            if self.meta.service_model.service_name == "dynamodb":
                counter.dynamodb += 1
            return original_call(self, operation, params)

        setattr(httplib2.Http, "request", request)  # noqa: B010 - instrumentation of this process only
        setattr(botocore.client.BaseClient, "_make_api_call", call)  # noqa: B010


def measure(events: int = EVENTS) -> SyncFigures:
    import sys

    from devstack.stack import Stack

    # The domain package is the Lambda layer: put it on the path as the runtime does.
    sys.path.insert(0, str(ROOT / "layers"))
    counter = _Counter()
    counter.install()
    with Stack(ROOT, sqs_visibility_timeout=1) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import Principal
        from crmsync.models import ExternalEventItem, bind_tables
        from tests.support.google_consent import consent, query

        settings = Settings.from_env()
        principal = Principal("bench-tenant", "bench-user")
        email = "bench@example.com"
        integrations = Graph(settings).integrations
        start = integrations.start_connect("google", principal)
        params = query(consent(start.authorization_url, email, typed=True))
        connection = integrations.complete_connect(
            "google", state=params["state"], code=params["code"], error=None, binding=start.binding
        )
        Graph(settings).calendars.refresh(principal, connection.connection_id)

        first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        for offset in range(0, events, 1000):
            batch = [
                {
                    "summary": f"event {n}",
                    "start": {"dateTime": (first + timedelta(minutes=30 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")},
                    "end": {"dateTime": (first + timedelta(minutes=30 * n + 25)).strftime("%Y-%m-%dT%H:%M:%SZ")},
                }
                for n in range(offset, min(offset + 1000, events))
            ]
            requests.post(
                f"{stack.google.base_url}/_emulator/calendar/events",
                json={"email": email, "calendarId": email, "events": batch},
                timeout=120,
            ).raise_for_status()

        sync = Graph(settings).calendar_sync
        began = time.perf_counter()
        sync.run(principal, connection.connection_id, email)
        full_sync = time.perf_counter() - began

        # The same number of items of the same shape, written straight through PynamoDB.
        bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)
        began = time.perf_counter()
        with ExternalEventItem.batch_write() as batch_writer:
            for n in range(events):
                batch_writer.save(
                    ExternalEventItem(
                        "T#raw#U#raw",
                        f"EXT#raw#{n}",
                        connection_id="raw",
                        calendar_id="raw",
                        event_id=str(n),
                        start=first,
                        end=first,
                        summary=f"event {n}",
                        etag='"1"',
                    )
                )
        raw_write = time.perf_counter() - began

        counter.google = counter.dynamodb = 0
        sync.run(principal, connection.connection_id, email)  # nothing changed since
        return SyncFigures(events, full_sync, raw_write, counter.google, counter.dynamodb)


if __name__ == "__main__":
    main_json(measure)
