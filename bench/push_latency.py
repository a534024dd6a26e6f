"""Push-to-visible latency on the local stack: from an event created in Google (the emulator)
to the same event in the CRM's mirror, through the whole path — the emulator's push
notification, API Gateway, `google_webhook`, the SQS FIFO queue, `sync_worker`'s incremental
sync, DynamoDB Local. Goal: p95 < 1 s.

The workers run in the background as they do under `make dev`; the clock stops when a
consistent read finds the mirrored event.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 40


@dataclass(frozen=True)
class LatencyFigures:
    samples: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def _wait(predicate: object, timeout: float = 30.0) -> float:
    """Poll until ``predicate()`` is truthy; the time it took (s)."""
    began = time.perf_counter()
    while not predicate():  # type: ignore[operator]
        if time.perf_counter() - began > timeout:
            raise TimeoutError("the event never became visible")
        time.sleep(0.002)
    return time.perf_counter() - began


def measure(samples: int = SAMPLES) -> LatencyFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    with Stack(ROOT, background=True, prewarm=True, sqs_visibility_timeout=5) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.dal.mirror import MirrorStore
        from crmsync.domain import Principal
        from crmsync.models import ExternalEventItem, user_pk
        from crmsync.models.sync import external_prefix
        from tests.support.google_consent import consent, query

        settings = Settings.from_env()
        principal = Principal("bench-tenant", "latency-user")
        email = "latency@example.com"
        integrations = Graph(settings).integrations
        start = integrations.start_connect("google", principal)
        params = query(consent(start.authorization_url, email, typed=True))
        connection = integrations.complete_connect(
            "google", state=params["state"], code=params["code"], error=None, binding=start.binding
        ).connection_id
        # The connect queues a health check; the worker then syncs the primary calendar and
        # opens its watch channel.
        mirror = MirrorStore()
        _wait(lambda: mirror.cursor(principal, connection, email).channel_id is not None)

        pk = user_pk(principal.tenant_id, principal.user_id)
        prefix = external_prefix(connection, email)

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
            created = requests.post(
                f"{stack.google.base_url}/_emulator/calendar/events",
                json={
                    "email": email,
                    "calendarId": email,
                    "event": {
                        "summary": f"latency {n}",
                        "start": {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ")},
                        "end": {"dateTime": (moment + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")},
                    },
                },
                timeout=10,
            )
            created.raise_for_status()
            event_id = created.json()["id"]
            _wait(lambda event_id=event_id: visible(event_id))
            if n >= 3:  # the first rounds warm the worker processes' imports and caches
                latencies.append((time.perf_counter() - began) * 1000)
        latencies.sort()
        return LatencyFigures(
            samples=len(latencies),
            p50_ms=statistics.median(latencies),
            p95_ms=latencies[max(0, round(0.95 * len(latencies)) - 1)],
            max_ms=latencies[-1],
        )


if __name__ == "__main__":
    main_json(measure)
