"""`make load`: a load and fault test of the whole local stack (issue 17 §4).

A population of connected accounts (``LOAD_ACCOUNTS``, default 200), each a Google account of
the emulator with its primary calendar linked (two-way) and a second calendar as a conflict
calendar, connected and configured through the product's own flow (consent page, callback,
`/v1/settings`), push channels opened by the sync worker. Then, for ``LOAD_MINUTES`` (default
10), at steady rates: the Google users create, move and delete events in both calendars (the
emulator's control API, which pushes notifications to our webhook like Google does), the CRM
books appointments through the API (each with an `Idempotency-Key`; the client retries 5xx,
503 and timeouts with the same key), and mail arrives at the users' BCC logging addresses
through the local SES. Faults are injected at known times: Google 429s and 5xx, dropped push
notifications, a `sync_worker` process killed while it holds an SQS batch, DynamoDB Local
restarted (on its data directory, so it keeps its data).

Then the load stops, everything drains, the schedules that catch up are fired (the push sweep,
the 6-hourly connection health check that syncs every calendar), and the CRM is compared with
Google and with what was sent: every event exactly once in the mirror (and, on the linked
calendar, exactly once as a confirmed appointment at its time), every booking exactly once in
the CRM and in Google, every mail logged exactly once; dead-letter queues listed. The run
fails (exit 1) when anything diverged, and prints what.

Settings (environment): ``LOAD_ACCOUNTS``, ``LOAD_MINUTES``, ``LOAD_CHANGES_PER_S`` (Google
changes a second, over all accounts), ``LOAD_BOOKINGS_PER_S``, ``LOAD_MAILS_PER_S``,
``LOAD_VISIBILITY_TIMEOUT`` (the sync queue's, see ``VISIBILITY_TIMEOUT``), ``LOAD_SEED``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

ACCOUNTS = 200
MINUTES = 10.0
#: Rates the shared 2-core machine sustains beside the stack's own work (see docs/PERFORMANCE.md).
CHANGES_PER_S = 1.0
BOOKINGS_PER_S = 0.5
MAILS_PER_S = 0.5
#: The sync queue's visibility timeout for this test: the template's 360 s (six times the
#: worker's 60 s Timeout, as AWS recommends) would hold a killed worker's batch past the end
#: of the run; 60 s is the least AWS accepts for a 60 s function. Nothing in the product changes.
VISIBILITY_TIMEOUT = 60
#: Seconds before each retry of an asynchronous invocation (SES → inbound_mail). Lambda waits
#: about 60 and 120 s; the local stack retries at once unless told, which a DynamoDB restart of a
#: few seconds would turn into dead-lettered mail that Lambda would have delivered.
ASYNC_RETRY_DELAY = 15.0
#: Where the fault schedule puts each fault, as a share of the load's duration.
FAULT_AT = {
    "google_429": 0.15,
    "google_5xx": 0.30,
    "worker_killed": 0.45,
    "dynamodb_restart": 0.60,
    # Late, so that few of the calendars whose notification is lost change again before the
    # load ends: their change must then come with the safety net (the health check's syncs).
    "dropped_pushes": 0.90,
}
GOOGLE_429 = 10
GOOGLE_5XX = 10
DROPPED_PUSHES = 10
#: After the load: how long the stack may take to converge before the run fails.
CONVERGE_LIMIT_S = 600.0
SLOT = timedelta(minutes=30)

Span = tuple[datetime, datetime]


# ---------------------------------------------------------------------------------- pure parts


def percentile(values: Iterable[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p ≤ 100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Expected:
    """What the simulation did to one account."""

    account: str
    #: The simulation's live events in the linked calendar (id → span) and those it deleted.
    linked: dict[str, Span] = field(default_factory=dict)
    linked_deleted: set[str] = field(default_factory=set)
    conflict: dict[str, Span] = field(default_factory=dict)
    conflict_deleted: set[str] = field(default_factory=set)
    #: Bookings the API accepted (201): appointment id → span.
    bookings: dict[str, Span] = field(default_factory=dict)
    #: Subjects of the mails handed to SES for this user.
    mails: list[str] = field(default_factory=list)


@dataclass
class Observed:
    """What Google and the CRM hold for one account once the stack has drained."""

    #: Live (not cancelled) events of the linked calendar in Google: id → (span, crmAppointmentId).
    google_linked: dict[str, tuple[Span, str | None]] = field(default_factory=dict)
    google_conflict: dict[str, Span] = field(default_factory=dict)
    #: The CRM's mirror of each calendar: id → span.
    mirror_linked: dict[str, Span] = field(default_factory=dict)
    mirror_conflict: dict[str, Span] = field(default_factory=dict)
    #: Every appointment: (id, status, linked event id or None, span).
    appointments: list[tuple[str, str, str | None, Span]] = field(default_factory=list)
    #: Subjects of the messages in the user's logged conversations, as often as logged.
    mails: list[str] = field(default_factory=list)


def divergences(expected: Expected, observed: Observed) -> list[str]:
    """Every way the account's CRM disagrees with Google and with what was sent (empty: converged)."""
    name = expected.account
    found: list[str] = []

    def note(text: str) -> None:
        found.append(f"{name}: {text}")

    # The emulator must hold what the simulation did (else the simulation lost track, not the CRM).
    google_linked_spans = {i: span for i, (span, _) in observed.google_linked.items()}
    for event_id, span in expected.linked.items():
        if google_linked_spans.get(event_id) != span:
            note(f"Google's linked calendar lacks the simulation's event {event_id} at {span[0]:%d %H:%M}")
    for event_id, span in expected.conflict.items():
        if observed.google_conflict.get(event_id) != span:
            note(f"Google's conflict calendar lacks the simulation's event {event_id} at {span[0]:%d %H:%M}")

    # The mirror of each calendar is Google's calendar, event for event, at the same times.
    for label, google, mirror in (
        ("linked", google_linked_spans, observed.mirror_linked),
        ("conflict", observed.google_conflict, observed.mirror_conflict),
    ):
        for event_id in sorted(google.keys() - mirror.keys()):
            note(f"lost: {label} event {event_id} is in Google but not in the CRM's mirror")
        for event_id in sorted(mirror.keys() - google.keys()):
            note(f"stale: {label} event {event_id} is in the CRM's mirror but not (any more) in Google")
        for event_id in sorted(google.keys() & mirror.keys()):
            if google[event_id] != mirror[event_id]:
                note(
                    f"moved wrong: {label} event {event_id} is at {mirror[event_id][0]:%d %H:%M} in the mirror,"
                    f" {google[event_id][0]:%d %H:%M} in Google"
                )

    # Appointments: each live event of the linked calendar is exactly one confirmed appointment.
    confirmed = [a for a in observed.appointments if a[1] == "confirmed"]
    by_event = Counter(a[2] for a in confirmed if a[2] is not None)
    by_id = Counter(a[0] for a in observed.appointments)
    for appointment_id, count in by_id.items():
        if count > 1:
            note(f"duplicated: appointment {appointment_id} listed {count} times")
    for event_id, count in by_event.items():
        if count > 1:
            note(f"duplicated: {count} confirmed appointments share the linked event {event_id}")
    for event_id in observed.google_linked:
        if by_event[event_id] == 0:
            note(f"lost: linked event {event_id} is in Google but no confirmed appointment has it")
    for appointment_id, _, linked_to, span in confirmed:
        if linked_to is None:
            note(f"stranded: confirmed appointment {appointment_id} never reached Google")
        elif linked_to not in observed.google_linked:
            note(f"stale: confirmed appointment {appointment_id} is linked to {linked_to}, which Google no longer has")
        elif observed.google_linked[linked_to][0] != span:
            note(
                f"moved wrong: appointment {appointment_id} is at {span[0]:%d %H:%M},"
                f" its event at {observed.google_linked[linked_to][0][0]:%d %H:%M}"
            )
    for event_id in sorted(expected.linked_deleted & set(by_event)):
        note(f"stale: the event {event_id} deleted in Google still has a confirmed appointment")

    # Bookings: exactly once in the CRM, exactly once in Google, at their time.
    status_of = {a[0]: a[1] for a in observed.appointments}
    in_google = Counter(crm_id for _, crm_id in observed.google_linked.values() if crm_id)
    for appointment_id, span in expected.bookings.items():
        if status_of.get(appointment_id) != "confirmed":
            note(f"lost: booking {appointment_id} is {status_of.get(appointment_id, 'missing')} in the CRM")
        if in_google[appointment_id] != 1:
            note(f"booking {appointment_id} is in Google {in_google[appointment_id]} times (once expected)")
        else:
            span_in_google = next(s for s, crm in observed.google_linked.values() if crm == appointment_id)
            if span_in_google != span:
                note(f"moved wrong: booking {appointment_id} is at {span_in_google[0]:%d %H:%M} in Google")
    from_sim = set(expected.linked) | set(expected.bookings)
    for event_id, (_, crm_id) in observed.google_linked.items():
        if event_id not in from_sim and (crm_id is None or crm_id not in expected.bookings):
            note(f"unexpected: Google's linked calendar has {event_id} (crmAppointmentId {crm_id}) nobody made")
    made = len(expected.linked) + len(expected.bookings)
    if len(confirmed) != made:
        note(f"{len(confirmed)} confirmed appointments, {made} expected (live Google events + bookings)")

    # Mail: each delivered message logged exactly once.
    logged = Counter(observed.mails)
    for subject in expected.mails:
        if logged[subject] != 1:
            note(f"mail {subject!r} logged {logged[subject]} times")
    for subject in sorted(set(logged) - set(expected.mails)):
        note(f"unexpected: mail {subject!r} logged {logged[subject]} times, never sent")
    return found


# ---------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class LoadFigures:
    accounts: int
    minutes: float
    changes_per_s: float
    bookings_per_s: float
    mails_per_s: float
    visibility_timeout_s: int
    setup_s: float
    operations: dict[str, int]
    google_lag_ms: list[float]
    booking_lag_ms: list[float]
    lag_after_load: int
    lag_after_safety_net: int
    never_visible: int
    superseded: int
    api_5xx: int
    webhook_5xx: int
    webhook_unreachable: int
    client_retries: int
    client_statuses: dict[str, int]
    sqs_redeliveries: int
    failed_batches: int
    faults: dict[str, str]
    converge_s: float
    converged: bool
    divergences: list[str]
    dead_letters: list[str]
    mail_outcomes: dict[str, int]
    cpu_load: str


# ---------------------------------------------------------------------------------- the run


def _env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00")).astimezone(UTC)


def log(text: str) -> None:
    print(f"load [{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


@dataclass
class Account:
    index: int
    tenant: str
    user: str
    token: str
    email: str
    conflict_id: str = ""
    connection_id: str = ""
    bcc: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    slots: itertools.count[int] = field(default_factory=itertools.count)
    expected: Expected = field(default_factory=lambda: Expected(""))

    def slot(self, base: datetime) -> Span:
        """A half hour of this account's own, never used before: nothing the simulation makes
        overlaps anything else (a booking over busy time would rightly be refused)."""
        with self.lock:
            n = next(self.slots)
        start = base + timedelta(hours=n)
        return start, start + SLOT


class Watcher:
    """Measures change-to-visible lag: polls each pending change until it is visible."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, ...], tuple[float, Callable[[], bool], str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.lags: dict[str, list[float]] = {"google": [], "booking": []}
        self.superseded = 0
        self.after_load = 0
        self.after_safety_net = 0
        self.load_end: float | None = None
        #: When the schedules that catch up (push sweep, connection health) were first fired.
        self.safety_net_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="load-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, key: tuple[str, ...], kind: str, began: float, visible: Callable[[], bool]) -> None:
        with self._lock:
            if key in self._pending:
                self.superseded += 1  # a newer change of the same event replaces it
            self._pending[key] = (began, visible, kind)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                items = list(self._pending.items())
            for key, (began, visible, kind) in items:
                try:
                    seen = visible()
                except Exception:  # noqa: BLE001 - DynamoDB Local restarting: look again later
                    seen = False
                if seen:
                    now = time.monotonic()
                    with self._lock:
                        if self._pending.get(key, (None,))[0] == began:
                            del self._pending[key]
                            self.lags[kind].append((now - began) * 1000)
                            if self.load_end is not None and now > self.load_end:
                                self.after_load += 1
                            if self.safety_net_at is not None and now > self.safety_net_at:
                                self.after_safety_net += 1
            self._stop.wait(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.pending()


class Load:
    """One run: the stack, the population, the load, the faults, the check."""

    def __init__(self) -> None:
        self.accounts_n = int(_env("LOAD_ACCOUNTS", ACCOUNTS))
        self.minutes = _env("LOAD_MINUTES", MINUTES)
        self.changes_per_s = _env("LOAD_CHANGES_PER_S", CHANGES_PER_S)
        self.bookings_per_s = _env("LOAD_BOOKINGS_PER_S", BOOKINGS_PER_S)
        self.mails_per_s = _env("LOAD_MAILS_PER_S", MAILS_PER_S)
        self.visibility = int(_env("LOAD_VISIBILITY_TIMEOUT", VISIBILITY_TIMEOUT))
        self.random = random.Random(int(_env("LOAD_SEED", 17)))
        self.random_lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.ops_lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.client_retries = 0
        self.api_5xx = 0
        self.faults: dict[str, str] = {}
        self.batches: list[tuple[float, list[tuple[str, int]], bool, str]] = []
        self.batches_lock = threading.Lock()
        self.local = threading.local()
        self.watcher = Watcher()
        self.accounts: list[Account] = []
        self.base = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.run = uuid.uuid4().hex[:8]
        self._mail_deliveries: list[Any] = []
        #: When the batch of the killed worker failed, and its messages' receive counts then.
        self.killed_batch: tuple[float, dict[str, int]] | None = None

    # -------------------------------------------------------------- helpers

    def session(self) -> Any:
        import requests

        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session

    def count(self, kind: str, n: int = 1) -> None:
        with self.ops_lock:
            self.ops[kind] += n

    def choice(self, items: list[Any]) -> Any:
        with self.random_lock:
            return self.random.choice(items)

    def roll(self) -> float:
        with self.random_lock:
            return self.random.random()

    def api(self, account: Account, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {account.token}", **kw.pop("headers", {})}
        return self.session().request(method, self.stack.api_url + path, headers=headers, timeout=30, **kw)

    # -------------------------------------------------------------- the run

    def measure(self) -> LoadFigures:
        from devstack.dynamodb_local import DynamoDBLocal
        from devstack.stack import Stack

        sys.path.insert(0, str(ROOT / "layers"))
        folder = Path(tempfile.mkdtemp(prefix="crmsync-load-"))
        self.dynamodb = DynamoDBLocal(ROOT, persist_dir=folder / "dynamodb")
        log_stream = None
        try:
            self.dynamodb.start()
            log(f"DynamoDB Local on {self.dynamodb.endpoint}, data in {folder}")
            log_path = os.environ.get("LOAD_STACK_LOG")
            log_stream = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed below
            with Stack(
                ROOT,
                echo_logs=log_stream is not None,
                log_stream=log_stream,
                caldav=False,
                microsoft=False,
                dynamodb_endpoint=self.dynamodb.endpoint,
                sqs_visibility_timeout=self.visibility,
                prewarm=True,
                async_retry_delay=ASYNC_RETRY_DELAY,
            ) as stack:
                self.stack = stack
                return self._measure()
        finally:
            if log_stream is not None:
                log_stream.close()
            self.dynamodb.stop()
            shutil.rmtree(folder, ignore_errors=True)

    def _measure(self) -> LoadFigures:
        stack = self.stack
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.config import Settings
        from crmsync.models import bind_tables

        settings = Settings.from_env()
        bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)
        assert stack.sqs is not None
        assert stack.schedules is not None
        deliver = stack.sqs.invoke

        def invoke(function: str, event: Any) -> Any:
            """The SQS event source's invocations, recorded: receive counts (redeliveries) and
            whether the batch failed as a whole (a killed worker)."""
            result = deliver(function, event)
            records = [
                (r["messageId"], int(r["attributes"].get("ApproximateReceiveCount", "1"))) for r in event["Records"]
            ]
            with self.batches_lock:
                self.batches.append((time.monotonic(), records, result.ok, (result.error or {}).get("errorType", "")))
            return result

        stack.sqs.invoke = invoke
        stack.sqs.start(pollers_per_source=3)
        stack.schedules.start()

        began = time.monotonic()
        self.populate()
        setup_s = time.monotonic() - began
        log(f"{len(self.accounts)} accounts connected, linked and watched in {setup_s:.0f} s")
        load_s = self.minutes * 60
        self.watcher.start()
        loadavg_before = os.getloadavg()
        start = time.monotonic()
        end = start + load_s
        threads = [
            threading.Thread(target=self.pace, args=(rate, job, start, end), name=f"load-{name}", daemon=True)
            for name, rate, job in (
                ("google", self.changes_per_s, self.google_change),
                ("booking", self.bookings_per_s, self.book),
                ("mail", self.mails_per_s, self.mail),
            )
            if rate > 0
        ]
        threads.append(
            threading.Thread(target=self.inject_faults, args=(start, load_s), name="load-faults", daemon=True)
        )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load_end = time.monotonic()
        self.watcher.load_end = load_end
        loadavg_after = os.getloadavg()
        log(f"load stopped after {load_end - start:.0f} s: {dict(self.ops)}")

        converged, found, converge_s, dead = self.converge(load_end)
        never = self.watcher.stop()
        left: Counter[str] = Counter()
        for rule in stack.google.faults.list():
            left["google_429" if rule["kind"] == "rate_limit_429" else "google_5xx"] += rule["count"]
        stack.google.faults.clear()
        pushes = list(stack.google.push.delivered)
        calendar_pushes = [p for p in pushes if p.get("kind") == "calendar"]
        for name, asked in (("google_429", GOOGLE_429), ("google_5xx", GOOGLE_5XX)):
            if name in self.faults:
                self.faults[name] += f"; {asked - left[name]} of them happened (Google requests refused)"
        if "dropped_pushes" in self.faults:
            dropped = sum(1 for p in pushes if p.get("outcome") == "dropped")
            self.faults["dropped_pushes"] += f"; {dropped} dropped"
        with self.batches_lock:
            batches = list(self.batches)
        deliveries = stack.mail_drain(timeout=60)
        outcomes: Counter[str] = Counter()
        for d in self._mail_deliveries + deliveries:
            if not d.ok:
                outcomes["failed every attempt"] += 1
                continue
            for o in (d.result.payload or {}).get("outcomes", []):
                outcomes[o.get("outcome", "?")] += 1
        return LoadFigures(
            accounts=len(self.accounts),
            minutes=self.minutes,
            changes_per_s=self.changes_per_s,
            bookings_per_s=self.bookings_per_s,
            mails_per_s=self.mails_per_s,
            visibility_timeout_s=self.visibility,
            setup_s=round(setup_s, 1),
            operations=dict(self.ops),
            google_lag_ms=[round(v) for v in self.watcher.lags["google"]],
            booking_lag_ms=[round(v) for v in self.watcher.lags["booking"]],
            lag_after_load=self.watcher.after_load,
            lag_after_safety_net=self.watcher.after_safety_net,
            never_visible=never,
            superseded=self.watcher.superseded,
            api_5xx=self.api_5xx,
            webhook_5xx=sum(1 for p in calendar_pushes if str(p.get("outcome", "")).startswith("5")),
            webhook_unreachable=sum(1 for p in calendar_pushes if p.get("outcome") == "unreachable"),
            client_retries=self.client_retries,
            client_statuses=dict(self.statuses),
            sqs_redeliveries=sum(1 for _, records, _, _ in batches for _, n in records if n > 1),
            failed_batches=sum(1 for _, _, ok, _ in batches if not ok),
            faults=self.faults,
            converge_s=round(converge_s, 1),
            converged=converged,
            divergences=found,
            dead_letters=dead,
            mail_outcomes=dict(outcomes),
            cpu_load=f"load average {loadavg_before[0]:.1f} as the load began, {loadavg_after[0]:.1f} as it ended",
        )

    # -------------------------------------------------------------- population

    def populate(self) -> None:
        """Connect every account as a user does: Google's consent page, the callback, then
        the calendar settings (link the primary calendar, add the second as a conflict
        calendar); the worker syncs both and opens their push channels."""
        from tests.e2e.test_integrations_api import Browser
        from tests.support.google_consent import consent
        from tests.support.google_user import GoogleCalendarUser

        stack = self.stack
        tenant = f"load-{self.run}"
        browsers: dict[int, Any] = {}

        def connect(index: int) -> Account:
            google = GoogleCalendarUser.new(stack.google.base_url, f"load{index}")
            team = google.add_calendar(f"Team {index}")
            browser = Browser(stack, tenant, f"user-{index}")
            browsers[index] = browser
            account = Account(index, tenant, f"user-{index}", browser.token, google.email, conflict_id=team["id"])
            account.expected = Expected(f"account {index} ({google.email})")
            params = browser.callback(consent(browser.start(), google.email))
            account.connection_id = params["connected"]
            return account

        with ThreadPoolExecutor(max_workers=4) as pool:
            self.accounts = list(pool.map(connect, range(self.accounts_n)))
        log("connected; waiting for the health checks to list the calendars")
        stack.drain(timeout=600)

        def configure(account: Account) -> None:
            browser = browsers[account.index]
            linked = {"connection_id": account.connection_id, "calendar_id": account.email}
            conflict = {"connection_id": account.connection_id, "calendar_id": account.conflict_id}
            for method, path, body in (
                ("PUT", "/v1/settings/linked-calendar", linked),
                ("PUT", "/v1/settings/conflict-calendars", {"calendars": [linked, conflict]}),
            ):
                answer = browser.api(method, path, json=body)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path} for {account.email}: {answer.status_code} {answer.text[:300]}")
            answer = browser.api("GET", "/v1/settings/bcc-address")
            answer.raise_for_status()
            account.bcc = answer.json()["address"]

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(configure, self.accounts))
        log("calendars chosen; waiting for their first syncs and push channels")
        deadline = time.monotonic() + 600
        while True:
            stack.drain(timeout=600)
            stack.google.push.wait_idle(60)
            stack.drain(timeout=600)
            channels = Counter(
                c["email"]
                for c in self.session().get(f"{stack.google.base_url}/_emulator/calendar/channels", timeout=60).json()
            )
            missing = [a.email for a in self.accounts if channels[a.email] < 2]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(missing)} accounts without both push channels, e.g. {missing[:3]}")

    # -------------------------------------------------------------- the load

    def pace(self, rate: float, job: Callable[[], None], start: float, end: float) -> None:
        """Start ``job`` ``rate`` times a second from ``start`` until ``end``, each in a pool
        thread, so a slow answer does not slow the rate."""
        interval = 1 / rate
        with ThreadPoolExecutor(max_workers=8) as pool:
            for n in itertools.count():
                due = start + n * interval
                if due >= end:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the load generator, not waiting for a result
                pool.submit(self._guarded, job)

    def _guarded(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - counted and reported; the load goes on
            self.count(f"errors: {type(exc).__name__}")
            log(f"{job.__name__} failed: {exc!r}")

    def google_change(self) -> None:
        """A Google user creates, moves or deletes an event in one of their two calendars."""
        from crmsync.models import ExternalEventItem, user_pk
        from crmsync.models.sync import external_prefix

        account = self.choice(self.accounts)
        role = "linked" if self.roll() < 0.5 else "conflict"
        calendar = account.email if role == "linked" else account.conflict_id
        base = f"{self.stack.google.base_url}/_emulator/calendar/events"
        with account.lock:
            live = account.expected.linked if role == "linked" else account.expected.conflict
            deleted = account.expected.linked_deleted if role == "linked" else account.expected.conflict_deleted
            dice = self.roll()
            kind = "create" if not live or dice < 0.5 else "move" if dice < 0.8 else "delete"
        span = account.slot(self.base) if kind != "delete" else None
        with account.lock:
            began = time.monotonic()
            if kind == "create":
                assert span is not None
                answer = self.session().post(
                    base,
                    json={
                        "email": account.email,
                        "calendarId": calendar,
                        "event": {
                            "summary": f"load {role} event",
                            "start": {"dateTime": _z(span[0])},
                            "end": {"dateTime": _z(span[1])},
                        },
                    },
                    timeout=30,
                )
                answer.raise_for_status()
                event_id = answer.json()["id"]
                live[event_id] = span
            else:
                event_id = self.choice(sorted(live))
                if kind == "move":
                    assert span is not None
                    answer = self.session().patch(
                        base,
                        json={
                            "email": account.email,
                            "calendarId": calendar,
                            "eventId": event_id,
                            "event": {"start": {"dateTime": _z(span[0])}, "end": {"dateTime": _z(span[1])}},
                        },
                        timeout=30,
                    )
                    answer.raise_for_status()
                    live[event_id] = span
                else:
                    answer = self.session().delete(
                        base, json={"email": account.email, "calendarId": calendar, "eventId": event_id}, timeout=30
                    )
                    answer.raise_for_status()
                    del live[event_id]
                    deleted.add(event_id)
        self.count(f"google {kind} ({role})")
        pk = user_pk(account.tenant, account.user)
        sk = external_prefix(account.connection_id, calendar) + event_id

        def visible() -> bool:
            try:
                item = ExternalEventItem.get(pk, sk, consistent_read=True)
            except ExternalEventItem.DoesNotExist:
                return kind == "delete"
            return kind != "delete" and span is not None and (item.start, item.end) == span

        self.watcher.add((account.email, calendar, event_id), "google", began, visible)

    def book(self) -> None:
        """The CRM books an appointment; the client retries 5xx, 503 and timeouts with the same
        Idempotency-Key, as a client that does not know whether its create went through must."""
        import requests

        account = self.choice(self.accounts)
        span = account.slot(self.base)
        title = f"load booking {uuid.uuid4().hex[:10]}"
        body = {"title": title, "start": _z(span[0]), "end": _z(span[1]), "time_zone": "UTC"}
        key = str(uuid.uuid4())
        for attempt in range(12):
            if attempt:
                with self.ops_lock:
                    self.client_retries += 1
            try:
                answer = self.api(account, "POST", "/v1/appointments", json=body, headers={"Idempotency-Key": key})
            except requests.RequestException as exc:
                self.count_status(f"{type(exc).__name__}")
                time.sleep(min(2**attempt, 10))  # a client's backoff before retrying
                continue
            self.count_status(str(answer.status_code))
            if answer.status_code >= 500 or (answer.status_code == 409 and "in-progress" in answer.text):
                if answer.status_code >= 500:
                    with self.ops_lock:
                        self.api_5xx += 1
                wait = float(answer.headers.get("Retry-After") or min(2**attempt, 10))
                time.sleep(min(wait, 10))  # the client's backoff
                continue
            break
        else:
            self.count("bookings given up")
            return
        if answer.status_code != 201:
            self.count(f"bookings refused ({answer.status_code})")
            log(f"booking refused: {answer.status_code} {answer.text[:300]}")
            return
        done = time.monotonic()
        appointment_id = answer.json()["id"]
        with account.lock:
            account.expected.bookings[appointment_id] = span
        self.count("bookings")
        from crmsync.domain import event_id_for

        event_id = event_id_for(appointment_id)
        url = f"{self.stack.google.base_url}/_emulator/calendar/events"

        def visible() -> bool:
            events = self.session().get(url, params={"email": account.email, "calendarId": account.email}, timeout=30)
            return any(e["id"] == event_id and e.get("status") != "cancelled" for e in events.json())

        self.watcher.add((account.email, "booking", appointment_id), "booking", done, visible)

    def count_status(self, status: str) -> None:
        with self.ops_lock:
            self.statuses[status] += 1

    def mail(self) -> None:
        """A user's mail, BCC'd to their logging address, arrives through the local SES."""
        account = self.choice(self.accounts)
        subject = f"load mail {uuid.uuid4().hex[:12]}"
        message = EmailMessage()
        message["From"] = account.email
        message["To"] = f"client-{account.index}@client.example"
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="load.example")
        message.set_content(f"{subject}\n")
        with account.lock:
            account.expected.mails.append(subject)
        self.stack.deliver_mail(message.as_bytes(), account.email, [account.bcc])
        self.count("mails")

    # -------------------------------------------------------------- faults

    def inject_faults(self, start: float, load_s: float) -> None:
        from devstack.google.apis.faults import Fault

        stack = self.stack
        for name, share in sorted(FAULT_AT.items(), key=lambda item: item[1]):
            delay = start + share * load_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the fault schedule: each fault at its known time
            at = f"at {time.monotonic() - start:.0f} s"
            try:
                if name == "google_429":
                    stack.google.faults.add(Fault("rate_limit_429", "calendar.", count=GOOGLE_429))
                    self.faults[name] = f"{at}: the next {GOOGLE_429} Calendar API requests answered 429"
                elif name == "google_5xx":
                    stack.google.faults.add(Fault("backend_500", "calendar.", count=GOOGLE_5XX // 2))
                    stack.google.faults.add(Fault("unavailable_503", "calendar.", count=GOOGLE_5XX - GOOGLE_5XX // 2))
                    self.faults[name] = f"{at}: the next {GOOGLE_5XX} Calendar API requests answered 500 or 503"
                elif name == "dropped_pushes":
                    stack.google.push.disturb("drop", DROPPED_PUSHES)
                    self.faults[name] = f"{at}: the next {DROPPED_PUSHES} push notifications dropped"
                elif name == "worker_killed":
                    self.faults[name] = at + ": " + self.kill_worker()
                elif name == "dynamodb_restart":
                    self.faults[name] = at + ": " + self.restart_dynamodb()
            except Exception as exc:  # noqa: BLE001 - reported, never silently skipped
                self.faults[name] = f"{at}: FAILED to inject: {exc!r}"
            log(f"fault {name}: {self.faults[name]}")

    def kill_worker(self) -> str:
        """Kill a sync_worker process while it runs a batch; its messages must come back after
        the visibility timeout (the SQS event source deletes nothing of a failed batch)."""
        pool = self.stack.lambdas.pool("SyncWorkerFunction")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = pool.busy_pids()
            if busy:
                with self.batches_lock:
                    seen = len(self.batches)
                os.kill(busy[0], signal.SIGKILL)
                killed_at = time.monotonic()
                while time.monotonic() < killed_at + 30:
                    with self.batches_lock:
                        lost = [b for b in self.batches[seen:] if not b[2] and b[3] == "Runtime.ExitError"]
                    if lost:
                        self.killed_batch = (lost[0][0], dict(lost[0][1]))
                        return f"sync_worker pid {busy[0]} killed holding a batch of {len(lost[0][1])} message(s)"
                    time.sleep(0.05)  # waiting for the poller to see the dead worker
                return f"sync_worker pid {busy[0]} killed, but no failed batch was seen"
            time.sleep(0.01)  # waiting for a worker to take a batch
        return "no sync_worker was busy within 120 s: nothing killed"

    def restart_dynamodb(self) -> str:
        """Stop DynamoDB Local and start it again on the same port and data directory."""
        began = time.monotonic()
        self.dynamodb.stop()
        stopped = time.monotonic()
        self.dynamodb.start(timeout=120)
        return (
            f"DynamoDB Local stopped ({stopped - began:.1f} s) and started again on the same port and data"
            f" ({time.monotonic() - began:.1f} s without it)"
        )

    def redelivered_killed_batch(self) -> str:
        killed = self.killed_batch
        if killed is None:
            return ""
        killed_at, ids = killed
        with self.batches_lock:
            again = [
                (t, m) for t, records, _, _ in self.batches if t > killed_at for m, n in records if m in ids and n > 1
            ]
        if not again:
            return "; its messages were NOT seen again"
        first = min(t for t, _ in again)
        return (
            f"; {len({m for _, m in again})} of its {len(ids)} messages redelivered"
            f" {first - killed_at:.0f} s after the batch failed (visibility timeout {self.visibility} s)"
        )

    # -------------------------------------------------------------- the end

    def converge(self, load_end: float) -> tuple[bool, list[str], float, list[str]]:
        """Drain, fire the catching-up schedules, and compare, until converged or out of time."""
        from crmsync.domain.sweeps import TICK, Sweep, slots, tick_start

        stack = self.stack
        deadline = load_end + CONVERGE_LIMIT_S
        found: list[str] = []
        rounds = 0
        while True:
            rounds += 1
            with contextlib.suppress(TimeoutError):
                stack.google.push.wait_idle(60)
                stack.drain(timeout=max(10.0, deadline - time.monotonic()))
                self._mail_deliveries += stack.mail_drain(timeout=max(10.0, deadline - time.monotonic()))
            if self.watcher.safety_net_at is None:
                self.watcher.safety_net_at = time.monotonic()
            result = stack.fire("PushSweep")
            log(f"fired PushSweep: {'ok' if result.ok else result.error}")
            # The health check takes one slot of the connections per tick (crmsync.domain.sweeps):
            # its whole round (72 ticks, 6 hours as Scheduler fires it) checks every connection.
            start = tick_start(datetime.now(UTC))
            fired = [stack.fire("ConnectionHealth", at=start + i * TICK) for i in range(slots(Sweep.HEALTH))]
            failed = [r.error for r in fired if not r.ok]
            log(f"fired ConnectionHealth's round of {len(fired)} ticks: {'ok' if not failed else failed[:3]}")
            with contextlib.suppress(TimeoutError):
                stack.drain(timeout=max(10.0, deadline - time.monotonic()))
                stack.google.push.wait_idle(60)
                stack.drain(timeout=max(10.0, deadline - time.monotonic()))
            found = self.check()
            elapsed = time.monotonic() - load_end
            log(f"check {rounds}, {elapsed:.0f} s after the load: {len(found)} divergences")
            if not found or time.monotonic() > deadline:
                break
        if "worker_killed" in self.faults:
            self.faults["worker_killed"] += self.redelivered_killed_batch()
        return not found, found, time.monotonic() - load_end, self.dead_letters()

    def check(self) -> list[str]:
        from crmsync.dal.mirror import MirrorStore
        from crmsync.domain import Principal

        mirror = MirrorStore()
        found: list[str] = []
        base = f"{self.stack.google.base_url}/_emulator/calendar/events"

        def one(account: Account) -> list[str]:
            observed = Observed()
            principal = Principal(account.tenant, account.user)
            for calendar, role in ((account.email, "linked"), (account.conflict_id, "conflict")):
                events = self.session().get(base, params={"email": account.email, "calendarId": calendar}, timeout=60)
                events.raise_for_status()
                for e in events.json():
                    if e.get("status") == "cancelled":
                        continue
                    span = (_parse(e["start"]), _parse(e["end"]))
                    if role == "linked":
                        crm = ((e.get("extendedProperties") or {}).get("private") or {}).get("crmAppointmentId")
                        observed.google_linked[e["id"]] = (span, crm)
                    else:
                        observed.google_conflict[e["id"]] = span
                spans = {
                    m.event_id: (m.start.astimezone(UTC), m.end.astimezone(UTC))
                    for m in mirror.events(principal, account.connection_id, calendar)
                    if m.start and m.end
                }
                if role == "linked":
                    observed.mirror_linked = spans
                else:
                    observed.mirror_conflict = spans
            answer = self.api(account, "GET", "/v1/appointments")
            answer.raise_for_status()
            for a in answer.json()["items"]:
                span = (
                    datetime.fromisoformat(a["start"]).astimezone(UTC),
                    datetime.fromisoformat(a["end"]).astimezone(UTC),
                )
                event = (a.get("calendar_event") or {}).get("event_id")
                observed.appointments.append((a["id"], a["status"], event, span))
            observed.mails = self.logged_subjects(account)
            with account.lock:
                return divergences(account.expected, observed)

        with ThreadPoolExecutor(max_workers=4) as pool:
            for result in pool.map(one, self.accounts):
                found += result
        return found

    def logged_subjects(self, account: Account) -> list[str]:
        subjects: list[str] = []
        contacts = self.api(account, "GET", "/v1/contacts")
        contacts.raise_for_status()
        for contact in contacts.json()["items"]:
            cursor: str | None = None
            while True:
                params = {"cursor": cursor} if cursor else {}
                page = self.api(account, "GET", f"/v1/contacts/{contact['id']}/conversation", params=params)
                page.raise_for_status()
                body = page.json()
                subjects += [entry["subject"] for entry in body["items"]]
                cursor = body.get("next_cursor")
                if not cursor:
                    break
        return subjects

    def dead_letters(self) -> list[str]:
        """Every message in a dead-letter queue, summarised (it must be explained)."""
        sqs = self.stack.aws_client("sqs")
        found: list[str] = []
        for queue in self.stack.template.queues.values():
            if "Dead" not in queue.logical_id:
                continue
            while True:
                messages = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10).get("Messages") or []
                if not messages:
                    break
                for message in messages:
                    found.append(f"{queue.logical_id}: {message['Body'][:300]}")
                    sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        return found


def measure() -> LoadFigures:
    return Load().measure()


def report(f: LoadFigures) -> list[str]:
    """The section of docs/PERFORMANCE.md (and the run's stdout), without its title lines."""
    ops = "; ".join(f"{kind} {n:,}" for kind, n in sorted(f.operations.items()))
    lines = [
        f"{f.accounts} connected accounts (each a Google account with its primary calendar linked and a",
        "second calendar as a conflict calendar, connected through the consent page and the settings",
        f"API; push channels opened by the sync worker; set up in {f.setup_s:.0f} s), then {f.minutes:g} minute(s) of",
        f"steady load: {f.changes_per_s:g} Google change(s) a second (create / move / delete, as the user, through",
        f"the emulator, arriving by push), {f.bookings_per_s:g} bookings a second through the API (`Idempotency-Key`,",
        f"retried on 5xx and timeouts) and {f.mails_per_s:g} BCC-logged mails a second through the local SES. Sync",
        f"queue visibility timeout {f.visibility_timeout_s} s for this test (the template's 360 s would outlast",
        "the run; 60 s is the function's Timeout), asynchronous retries after 15 s (Lambda: about 1 and 2 min).",
        f"Machine load: {f.cpu_load} (other sessions share the 2 cores: lags are noisy).",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| operations | {ops} |",
        f"| Google change → visible in the CRM, p50 / p95 / max ({len(f.google_lag_ms)} changes) |"
        f" {percentile(f.google_lag_ms, 50):.0f} / {percentile(f.google_lag_ms, 95):.0f} /"
        f" {percentile(f.google_lag_ms, 100):.0f} ms |",
        f"| booking → in Google, p50 / p95 / max ({len(f.booking_lag_ms)} bookings) |"
        f" {percentile(f.booking_lag_ms, 50):.0f} / {percentile(f.booking_lag_ms, 95):.0f} /"
        f" {percentile(f.booking_lag_ms, 100):.0f} ms |",
        f"| changes and bookings seen only after the load stopped / of them only after the safety net"
        f" (push sweep and health check fired) / never | {f.lag_after_load} / {f.lag_after_safety_net} /"
        f" {f.never_visible} |",
        f"| changes superseded by a newer change of the same event before they were seen | {f.superseded} |",
        f"| API 5xx answers (bookings) | {f.api_5xx} |",
        f"| webhook 5xx answers / unreachable (Google's pushes) | {f.webhook_5xx} / {f.webhook_unreachable} |",
        f"| client retries (same Idempotency-Key) | {f.client_retries} |",
        f"| SQS redeliveries (receive count > 1) / failed batches | {f.sqs_redeliveries} / {f.failed_batches} |",
        f"| time to converge after the load stopped (drained, safety net fired, checked) | {f.converge_s:.0f} s |",
        f"| converged | {'yes' if f.converged else 'NO'} ({len(f.divergences)} divergences) |",
        f"| dead-letter messages | {len(f.dead_letters)} |",
        "",
        "Faults injected:",
        "",
        *[f"- {name}: {text}" for name, text in f.faults.items()],
        "",
        f"API answers to bookings by status: {', '.join(f'{k} × {v}' for k, v in sorted(f.client_statuses.items()))}.",
        f"Mail outcomes: {', '.join(f'{k} × {v}' for k, v in sorted(f.mail_outcomes.items()))}.",
        "",
    ]
    if f.divergences:
        lines += ["Divergences (first 20):", "", *[f"- {d}" for d in f.divergences[:20]], ""]
    if f.dead_letters:
        lines += ["Dead letters:", "", *[f"- `{d[:200]}`" for d in f.dead_letters[:20]], ""]
    return lines


def main() -> int:
    figures = measure()
    if "--json" in sys.argv:
        print(json.dumps(dataclasses.asdict(figures)))
        return 0
    print("\n".join(report(figures)))
    return 0 if figures.converged else 1


if __name__ == "__main__":
    sys.exit(main())
