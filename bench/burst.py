"""A burst of Calendar push notifications on the local stack: 1,000 authentic notifications
over 10 calendars from 32 concurrent senders, straight at the webhook through the API Gateway
stand-in, while `sync_worker` runs in the background as under `make dev`. The webhook's
workers are started first (a round of `sync` messages, see below).

Figures: 5xx answers (goal 0), acknowledgement latency p50/p99, `events.list` requests per
calendar during and after the burst (goal ≤ 2: one sync plus at most one trailing sync,
counted by the Google emulator), and whether a marker event created in Google just before
each calendar's last notification reached the CRM's mirror afterwards (the last change is
never lost), with the time from the burst's last answer until every marker was visible.

`BENCH_STACK_LOG=path python -m bench.burst` also writes the stack's log lines to ``path``.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
NOTIFICATIONS = 1000
CALENDARS = 10
SENDERS = 32


@dataclass(frozen=True)
class BurstFigures:
    notifications: int
    calendars: int
    senders: int
    server_errors: int
    client_errors: int
    ack_p50_ms: float
    ack_p99_ms: float
    ack_max_ms: float
    handler_p50_ms: float
    handler_p99_ms: float
    events_list_max: int
    events_list_total: int
    markers_visible: int
    markers_visible_after_s: float


def _wait(predicate: Any, timeout: float, what: str) -> float:
    """Poll until ``predicate()`` is truthy, against a deadline; the time it took (s)."""
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout:
            raise TimeoutError(what)
        time.sleep(0.01)
    return time.perf_counter() - began


def measure(notifications: int = NOTIFICATIONS, calendars: int = CALENDARS, senders: int = SENDERS) -> BurstFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    log_path = os.environ.get("BENCH_STACK_LOG")
    log_stream = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed below
    with Stack(
        ROOT,
        background=True,
        prewarm=True,
        sqs_visibility_timeout=30,
        echo_logs=log_stream is not None,
        log_stream=log_stream,
    ) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.dal.mirror import MirrorStore
        from crmsync.domain import Principal
        from crmsync.models import ExternalEventItem, user_pk
        from crmsync.models.sync import external_prefix
        from tests.support.google_consent import consent, query

        google = stack.google.base_url
        integrations = Graph(Settings.from_env()).integrations
        mirror = MirrorStore()
        users: list[tuple[Principal, str, str]] = []  # principal, connection id, calendar (= email)
        for n in range(calendars):
            principal = Principal("bench-tenant", f"burst-user-{n}")
            email = f"burst-{n}@example.com"
            start = integrations.start_connect("google", principal)
            params = query(consent(start.authorization_url, email, typed=True))
            connection = integrations.complete_connect(
                "google", state=params["state"], code=params["code"], error=None, binding=start.binding
            ).connection_id
            users.append((principal, connection, email))
        # Each connect queues a health check; the worker syncs the primary calendar and opens
        # its watch channel.
        for principal, connection, email in users:
            _wait(
                lambda p=principal, c=connection, e=email: mirror.cursor(p, c, e).channel_id is not None,
                120,
                f"no channel for {email}",
            )
        assert stack.sqs is not None
        _wait(lambda: not any(stack.sqs.pending().values()), 120, "the queue never drained")
        stack.google.push.wait_idle()

        channels = {c["email"]: c for c in requests.get(f"{google}/_emulator/calendar/channels", timeout=10).json()}

        def events_lists(email: str) -> int:
            answer = requests.get(
                f"{google}/_emulator/calls",
                params={"method": "calendar.events.list", "email": email, "calendarId": email},
                timeout=10,
            )
            answer.raise_for_status()
            return int(answer.json()["count"])

        before = {email: events_lists(email) for _, _, email in users}
        print(f"burst: {calendars} calendars connected and synced", file=sys.stderr)

        # Round robin over the calendars; each calendar's last notification is preceded by a
        # change in Google (the marker), which must be in the mirror after the burst.
        plan = [users[i % calendars][2] for i in range(notifications)]
        last_index = {email: i for i, email in enumerate(plan)}
        moment = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        markers: dict[str, str] = {}
        local = threading.local()
        numbers = dict.fromkeys(before, 1000)
        lock = threading.Lock()

        def send(index: int) -> tuple[int, float]:
            email = plan[index]
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
            if index == last_index[email]:
                created = session.post(
                    f"{google}/_emulator/calendar/events",
                    json={
                        "email": email,
                        "calendarId": email,
                        "event": {
                            "summary": "burst marker",
                            "start": {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ")},
                            "end": {"dateTime": (moment + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")},
                        },
                    },
                    timeout=30,
                )
                created.raise_for_status()
                markers[email] = created.json()["id"]
            channel = channels[email]
            with lock:
                numbers[email] += 1
                number = numbers[email]
            began = time.perf_counter()
            answer = session.post(
                f"{stack.api_url}/webhooks/google/calendar",
                headers={
                    "X-Goog-Channel-ID": channel["id"],
                    "X-Goog-Channel-Token": channel["token"],
                    "X-Goog-Resource-ID": channel["resourceId"],
                    "X-Goog-Resource-URI": channel["resourceUri"],
                    "X-Goog-Resource-State": "exists",
                    "X-Goog-Message-Number": str(number),
                },
                timeout=60,
            )
            return answer.status_code, (time.perf_counter() - began) * 1000

        # Warm-up: each channel's first message is a `sync` (acknowledged and ignored); as many
        # at once as there are senders, so the webhook's local workers are started before the
        # burst. On 2 cores, 7 parallel cold starts stall every sender for seconds, which splits
        # a burst in two (Lambda starts environments on other hosts).
        def warm(index: int) -> int:
            channel = channels[users[index % calendars][2]]
            return requests.post(
                f"{stack.api_url}/webhooks/google/calendar",
                headers={
                    "X-Goog-Channel-ID": channel["id"],
                    "X-Goog-Channel-Token": channel["token"],
                    "X-Goog-Resource-ID": channel["resourceId"],
                    "X-Goog-Resource-State": "sync",
                    "X-Goog-Message-Number": "1",
                },
                timeout=60,
            ).status_code

        with ThreadPoolExecutor(max_workers=senders) as pool:
            assert set(pool.map(warm, range(senders))) == {200}

        logged_before = len(stack.logs)
        with ThreadPoolExecutor(max_workers=senders) as pool:
            answers = list(pool.map(send, range(notifications)))
        burst_end = time.perf_counter()
        acks = sorted(ms for _, ms in answers)
        print(
            f"burst: {sum(1 for status, _ in answers if status >= 500)} x 5xx,"
            f" p50 {statistics.median(acks):.0f} ms, p99 {acks[round(0.99 * len(acks)) - 1]:.0f} ms",
            file=sys.stderr,
        )
        webhook_lines = [
            line for source, line in stack.logs.snapshot()[logged_before:] if source == "GoogleWebhookFunction"
        ]
        durations = sorted(float(line.split()[4]) for line in webhook_lines if line.startswith("REPORT "))
        print(
            f"webhook: {sum('Task timed out' in line for line in webhook_lines)} timeouts,"
            f" {sum('Init Duration' in line for line in webhook_lines)} cold starts,"
            f" handler p50 {statistics.median(durations):.0f} ms",
            file=sys.stderr,
        )

        def marker_visible(principal: Principal, connection: str, email: str) -> bool:
            try:
                ExternalEventItem.get(
                    user_pk(principal.tenant_id, principal.user_id),
                    external_prefix(connection, email) + markers[email],
                    consistent_read=True,
                )
            except ExternalEventItem.DoesNotExist:
                return False
            return True

        visible = 0
        deadline = time.perf_counter() + 120
        for principal, connection, email in users:
            while not marker_visible(principal, connection, email) and time.perf_counter() < deadline:
                time.sleep(0.01)
            visible += marker_visible(principal, connection, email)
        visible_after = time.perf_counter() - burst_end
        _wait(lambda: not any(stack.sqs.pending().values()), 120, "the queue never drained")
        stack.google.push.wait_idle()
        _wait(lambda: not any(stack.sqs.pending().values()), 120, "the queue never drained")
        lists = [events_lists(email) - before[email] for _, _, email in users]

    if log_stream is not None:
        log_stream.close()
    latencies = sorted(ms for _, ms in answers)
    return BurstFigures(
        notifications=notifications,
        calendars=calendars,
        senders=senders,
        server_errors=sum(1 for status, _ in answers if status >= 500),
        client_errors=sum(1 for status, _ in answers if 400 <= status < 500),
        ack_p50_ms=statistics.median(latencies),
        ack_p99_ms=latencies[max(0, round(0.99 * len(latencies)) - 1)],
        ack_max_ms=latencies[-1],
        handler_p50_ms=statistics.median(durations),
        handler_p99_ms=durations[max(0, round(0.99 * len(durations)) - 1)],
        events_list_max=max(lists),
        events_list_total=sum(lists),
        markers_visible=visible,
        markers_visible_after_s=visible_after,
    )


if __name__ == "__main__":
    main_json(measure)
