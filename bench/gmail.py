"""Gmail sync figures on the local stack (DynamoDB Local, moto, the Gmail emulator):

- (a) the backfill of a mailbox of ``MESSAGES`` messages (mostly from people who are not CRM
  contacts, one in ten from one of 50 contacts) with the emulator's per-user quota on at
  Google's 250 units/s, on the running clock: ``messages.get`` per second while fetching, as
  a ratio to the quota's ceiling (250 / 5 = 50 messages/s; goal ≥ 0.8), requests the emulator
  refused for the quota (goal 0), and the end-to-end backfill rate (list + fetch + parse +
  store) beside it. The engine is the production one (``Graph.mail_sync``, its ``GoogleMail``
  pacing itself with a ``QuotaPacer``); its continuation steps are run here, in order;
- (b) the requests of a no-op history sync (goal: 1 to Gmail, counted by the emulator; ≤ 2 to
  DynamoDB, counted by wrapping botocore in this process), with the DynamoDB operations named;
- (c) Gmail change → visible: a message from a contact delivered to the emulator, its Pub/Sub
  push (signed, at most 1/s per user) to ``/webhooks/google/gmail``, ``google_webhook``, the
  SQS FIFO queue, ``sync_worker`` in the background, until ``GET
  /v1/contacts/{id}/conversation`` over HTTP shows it. Deliveries are at least 1.1 s apart:
  Gmail drops a user's notifications above 1/s (a dropped one waits for the hourly sweep).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import main_json

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = int(os.environ.get("BENCH_GMAIL_MESSAGES", "10000"))
CONTACTS = 50
FROM_CONTACTS_EVERY = 10
LATENCY_SAMPLES = 30
CEILING = 250 / 5  # messages.get per second within Gmail's per-user quota
GMAIL_METHODS = (
    "gmail.users.getProfile",
    "gmail.users.messages.list",
    "gmail.users.messages.get",
    "gmail.users.history.list",
    "gmail.users.watch",
    "gmail.users.stop",
)


@dataclass(frozen=True)
class GmailFigures:
    messages: int
    logged: int
    backfill_seconds: float
    fetch_seconds: float
    fetched: int
    steps: int
    quota_refused: int
    noop_gmail_requests: int
    noop_dynamodb_requests: int
    noop_dynamodb_operations: str
    latency_samples: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float

    @property
    def fetch_per_second(self) -> float:
        return self.fetched / self.fetch_seconds

    @property
    def ratio(self) -> float:
        return self.fetch_per_second / CEILING

    @property
    def backfill_per_second(self) -> float:
        return self.messages / self.backfill_seconds


class _DynamoCounter:
    """Counts this process's DynamoDB calls by operation (instrumentation of the bench only)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def install(self) -> None:
        import botocore.client

        counter = self
        original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

        def call(self: Any, operation: str, params: Any) -> Any:
            if self.meta.service_model.service_name == "dynamodb":
                counter.calls[operation] += 1
            return original(self, operation, params)

        setattr(botocore.client.BaseClient, "_make_api_call", call)  # noqa: B010


class _TimedFetch:
    """The mail port, with the time spent in ``get_messages`` and what it returned noted."""

    def __init__(self, port: Any, totals: dict[str, float]) -> None:
        self.port = port
        self.totals = totals

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)

    def get_messages(self, ids: Any) -> Any:
        began = time.perf_counter()
        found = self.port.get_messages(ids)
        self.totals["seconds"] += time.perf_counter() - began
        self.totals["fetched"] += len(found)
        return found


def _gmail_calls(base_url: str, email: str) -> int:
    return sum(
        int(
            requests.get(f"{base_url}/_emulator/calls", params={"method": method, "email": email}, timeout=10).json()[
                "count"
            ]
        )
        for method in GMAIL_METHODS
    )


def _raw(sender: str, to: str, n: int) -> str:
    import base64
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = f"Message {n}"
    mail["Date"] = formatdate(time.time() - n * 60, usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    mail.set_content(f"Body of message {n}.\n" + "Some words of the conversation. " * 20)
    return base64.urlsafe_b64encode(bytes(mail)).decode().rstrip("=")


def measure(messages: int = MESSAGES) -> GmailFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    dynamo = _DynamoCounter()
    dynamo.install()
    with Stack(ROOT, background=True, prewarm=True, sqs_visibility_timeout=5) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import Principal
        from crmsync.logic.contacts import ContactInput
        from crmsync.sync.mail_sync import MailSyncEngine
        from tests.fakes.world import RecordingQueue
        from tests.support.google_consent import consent, query

        google = stack.google.base_url
        settings = Settings.from_env()

        def connect(graph: Graph, principal: Principal, email: str) -> str:
            requests.post(f"{google}/_emulator/accounts", json={"email": email}, timeout=10).raise_for_status()
            start = graph.integrations.start_connect("google", principal, features=["calendar", "email"])
            params = query(consent(start.authorization_url, email, typed=True))
            connection = graph.integrations.complete_connect(
                "google", state=params["state"], code=params["code"], error=None, binding=start.binding
            )
            graph.mail_sync_settings.complete(principal, connection)
            return connection.connection_id

        # (a) The backfill, in-process: no watch (no topic), the queue recorded (this is the worker).
        graph = Graph(settings.model_copy(update={"gmail_topic": ""}))
        graph.__dict__["queue"] = RecordingQueue()
        alice, email = Principal("bench-tenant", "alice"), "alice-gmail@example.com"
        connection_id = connect(graph, alice, email)
        contacts = [f"contact{n}@clients.example" for n in range(CONTACTS)]
        for address in contacts:
            graph.contacts.create(alice, ContactInput(given_name="Client", emails=[address]))

        def deliver(n: int) -> None:
            sender = contacts[n % CONTACTS] if n % FROM_CONTACTS_EVERY == 0 else f"sender{n}@newsletters.example"
            answer = requests.post(
                f"{google}/_emulator/gmail/messages",
                json={"email": email, "raw": _raw(sender, email, n)},
                timeout=30,
            )
            answer.raise_for_status()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(deliver, range(messages)))
        requests.post(
            f"{google}/_emulator/gmail/quota",
            json={"enabled": True, "units_per_second": 250, "email": email},
            timeout=10,
        ).raise_for_status()

        totals = {"seconds": 0.0, "fetched": 0.0}
        base = graph.mail_sync

        class Timed:
            def mail(self, stored: Any) -> Any:
                return _TimedFetch(graph.connectors.mail(stored), totals)

        engine = MailSyncEngine(
            store=graph.mail_sync_store,
            connections=graph.connection_store,
            senders=graph.sender_addresses,
            access=Timed(),
            contacts=graph.contact_store,
            log_store=graph.mail_log,
            bucket=graph.mail_bucket,
            parse=base._parse,
            publisher=graph.events,
            queue=graph.queue,
            logging_domain=settings.logging_domain,
            never_log=graph.never_log,
            scope_granted=base._scope_granted,
            clock=graph.clock,
        )
        graph.queue.take()  # type: ignore[attr-defined]
        began = time.perf_counter()
        steps = 0
        logged = 0
        reason = "enabled"
        while True:
            outcome = engine.run(alice, connection_id, reason=reason)
            steps += 1
            if outcome is None:
                raise RuntimeError("the mailbox is not synced")
            logged += outcome.logged
            if not outcome.more:
                break
            reason = "backfill"
        backfill_seconds = time.perf_counter() - began
        quota = requests.get(f"{google}/_emulator/gmail/quota", params={"email": email}, timeout=10).json()
        if logged != messages // FROM_CONTACTS_EVERY:
            raise RuntimeError(f"the backfill logged {logged} of {messages // FROM_CONTACTS_EVERY}")

        # (b) A no-op history sync, warm (the production engine; the first run after the backfill
        # is already a history sync).
        graph.mail_sync.run(alice, connection_id)
        before_gmail = _gmail_calls(google, email)
        dynamo.calls.clear()
        outcome = graph.mail_sync.run(alice, connection_id)
        if outcome is None or outcome.mode != "incremental" or outcome.checked:
            raise RuntimeError(f"not a no-op history sync: {outcome}")
        noop_gmail = _gmail_calls(google, email) - before_gmail
        noop_dynamo = sum(dynamo.calls.values())
        operations = ", ".join(f"{op} × {n}" for op, n in sorted(dynamo.calls.items()))

        # (c) Change → visible, through the stack's workers (production graph: its queue is SQS).
        live = Graph(settings)
        bob, bob_email = Principal("bench-tenant", "bob"), "bob-gmail@example.com"
        bob_connection = connect(live, bob, bob_email)
        client = live.contacts.create(bob, ContactInput(given_name="Marie", emails=["marie@clients.example"]))
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.issue_token(bob.tenant_id, bob.user_id)}"
        url = f"{stack.api_url}/v1/contacts/{client.contact_id}/conversation"

        def shown() -> int:
            answer = session.get(url, params={"limit": "100"}, timeout=30)
            answer.raise_for_status()
            return len(answer.json()["items"])

        deadline = time.monotonic() + 60
        while (
            live.mail_sync_store.get(bob).history_cursor is None
            or live.mail_sync_store.get(bob).watch_renewed_at is None
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("bob's mailbox never became live")
            time.sleep(0.05)
        del bob_connection
        latencies: list[float] = []
        last_delivery = 0.0
        for n in range(LATENCY_SAMPLES + 3):
            time.sleep(max(0.0, last_delivery + 1.1 - time.monotonic()))  # Gmail: 1 push/s per user
            last_delivery = time.monotonic()
            began = time.perf_counter()
            requests.post(
                f"{google}/_emulator/gmail/messages",
                json={"email": bob_email, "raw": _raw("Marie <marie@clients.example>", bob_email, n)},
                timeout=30,
            ).raise_for_status()
            while shown() < n + 1:
                if time.perf_counter() - began > 30:
                    raise TimeoutError(f"message {n} never became visible")
                time.sleep(0.005)
            if n >= 3:  # the first rounds warm the workers' imports and caches
                latencies.append((time.perf_counter() - began) * 1000)
        latencies.sort()
        return GmailFigures(
            messages=messages,
            logged=logged,
            backfill_seconds=backfill_seconds,
            fetch_seconds=totals["seconds"],
            fetched=int(totals["fetched"]),
            steps=steps,
            quota_refused=int(quota["refused"]),
            noop_gmail_requests=noop_gmail,
            noop_dynamodb_requests=noop_dynamo,
            noop_dynamodb_operations=operations,
            latency_samples=len(latencies),
            latency_p50_ms=statistics.median(latencies),
            latency_p95_ms=latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)],
            latency_max_ms=latencies[-1],
        )


if __name__ == "__main__":
    main_json(measure)
