"""Outlook change → visible in the CRM on the local stack: from an event the Outlook user
creates (the Graph emulator) to the same event in the CRM's mirror, through the whole path —
Graph's change notification (the emulator's dispatcher thread), API Gateway, `graph_webhook`,
the SQS FIFO queue, `sync_worker`'s delta round, DynamoDB Local. Goal: p95 < 1 s.

The account signs in with Microsoft through the emulator's consent page and links its Outlook
calendar, as a user does; the workers run in the background as under `make dev`; the clock
stops when a consistent read finds the mirrored event (bench/push_latency.py does the same for
Google).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = int(os.environ.get("BENCH_GRAPH_LATENCY_SAMPLES", "40"))


@dataclass(frozen=True)
class GraphLatencyFigures:
    samples: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def _wait(predicate: Any, timeout: float = 30.0) -> float:
    """Poll until ``predicate()`` is truthy; the time it took (s)."""
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout:
            raise TimeoutError("the event never became visible")
        time.sleep(0.002)
    return time.perf_counter() - began


def _when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def measure(samples: int = SAMPLES) -> GraphLatencyFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    with Stack(ROOT, google=False, caldav=False, background=True, prewarm=True, sqs_visibility_timeout=5) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        # This process signs in on the emulator's consent page over TLS, as the functions trust it.
        os.environ.pop("CURL_CA_BUNDLE", None)
        os.environ["REQUESTS_CA_BUNDLE"] = str(stack.microsoft.trust_bundle)
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.dal.mirror import MirrorStore
        from crmsync.domain import CalendarRef, Principal
        from crmsync.models import ExternalEventItem, user_pk
        from crmsync.models.sync import external_prefix
        from tests.support.google_consent import query
        from tests.support.microsoft_consent import consent

        settings = Settings.from_env()
        graph = Graph(settings)
        principal = Principal("bench-tenant", "latency-user")
        email = "latency@contoso.test"
        stack.microsoft.add_user(email, "Latency")
        start = graph.integrations.start_connect("microsoft", principal)
        params = query(consent(start.authorization_url, email))
        connection = graph.integrations.complete_connect(
            "microsoft", state=params["state"], code=params["code"], error=None, binding=start.binding
        ).connection_id
        state = stack.microsoft_graph.state
        _wait(lambda: state.users.get(email) is not None)
        calendar_id = state.default_calendar(email).id
        _wait(lambda: graph.calendars.refresh(principal, connection))
        graph.calendar_settings.link(principal, CalendarRef(connection, calendar_id))
        # The link queues the calendar's first (full) sync, which opens its subscription.
        mirror = MirrorStore()
        _wait(lambda: mirror.cursor(principal, connection, calendar_id).channel_id is not None)

        pk = user_pk(principal.tenant_id, principal.user_id)
        prefix = external_prefix(connection, calendar_id)

        def visible(event_id: str) -> bool:
            try:
                ExternalEventItem.get(pk, prefix + event_id, consistent_read=True)
            except ExternalEventItem.DoesNotExist:
                return False
            return True

        first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        latencies: list[float] = []
        for n in range(samples + 3):
            moment = first + timedelta(hours=n)
            began = time.perf_counter()
            body = {"subject": f"latency {n}", "start": _when(moment), "end": _when(moment + timedelta(minutes=30))}
            event_id = state.user_create_event(email, body, calendar_id).id
            _wait(lambda event_id=event_id: visible(event_id))
            if n >= 3:  # the first rounds warm the worker processes' imports and caches
                latencies.append((time.perf_counter() - began) * 1000)
        latencies.sort()
        return GraphLatencyFigures(
            samples=len(latencies),
            p50_ms=statistics.median(latencies),
            p95_ms=latencies[max(0, round(0.95 * len(latencies)) - 1)],
            max_ms=latencies[-1],
        )


if __name__ == "__main__":
    main_json(measure)
