"""What a connected account costs per month on AWS (issue 17 §2): a day of one account's
activity, done for real on the local stack for a small population, every request counted, then
priced with AWS's public on-demand prices (bench/aws_prices.json).

Counting: the stack's functions reach DynamoDB Local and moto through counting proxies
(``Stack(count_requests=True)``, devstack/counting.py: operation, capacity units, partition
keys, SQS groups); the Google emulator counts its API methods and token requests, the CalDAV
fault layer its requests; the Lambda service reports each invocation's duration; the log sink
the bytes each function writes. Nothing is counted inside this process's own clients: what the
benchmark does to drive the day (the emulators' control APIs, queueing what a schedule queues)
is not the product's cost.

The day (per account; ``run(accounts=N)`` does it for N accounts at once, figures per account):
two Google accounts (A: calendar and contacts, B: calendar and Gmail), A's primary calendar
linked, three conflict calendars (B's primary, A's "Team", an iCloud calendar); 20 calendar
changes made in Google (push → google_webhook → queue → sync_worker), 5 bookings through the
API (Idempotency-Key; pushed to Google, whose echo comes back as a push), 30 mails received in
Gmail (Pub/Sub push), 5 mails BCC'd through the local SES, 2 contact changes in Google Contacts.
The scheduled jobs fire every 5 minutes and each tick takes one slot of its sweep's accounts
(crmsync.domain.sweeps): they are fired at one round of consecutive ticks that visits every
account once (as Scheduler would schedule them), what they queued is synced, and the round's
cost is multiplied by its rounds a day; their no-account part is the deployment's.
Setup (connections, first syncs, the 200 contacts' import) is reported apart.

`python -m bench.cost [--json] [--accounts N]`; `python -m bench cost` writes its section.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.scale import TICKS_A_DAY, TICKS_A_ROUND

ROOT = Path(__file__).resolve().parents[1]
PRICES = Path(__file__).resolve().parent / "aws_prices.json"
#: The last run's figures, for bench/scale.py (gitignored).
CACHE = ROOT / ".devstack" / "cost.json"
ACCOUNTS = 6
DAYS_PER_MONTH = 30
#: Lambda's START, END and REPORT lines per invocation (an estimate: REPORT alone is ~200 B).
PLATFORM_LOG_BYTES = 300
#: Functions behind the HTTP API: each invocation is one API Gateway request.
HTTP_FUNCTIONS = ("ApiFunction", "OAuthCallbackFunction", "GoogleWebhookFunction", "GraphWebhookFunction")

CALENDAR_CHANGES = 20
BOOKINGS = 5
GMAIL_MAILS = 30
BCC_MAILS = 5
CONTACTS = 200
CONTACT_CHANGES = 2
#: Runs a day of each scheduled job, and the ticks of a round that visits every account once
#: (template.yaml's 5-minute schedules; crmsync.domain.sweeps' slots): bench/scale.py's.
RUNS_A_DAY = {job: TICKS_A_DAY for job in TICKS_A_ROUND}
#: Google Calendar channels last 7 days and are renewed 24 h before they expire (RENEW_BEFORE).
CHANNEL_RENEWAL_DAYS = 6


@dataclass
class CostFigures:
    """Per connected account per day unless said otherwise; JSON-serializable (asdict)."""

    accounts: int
    days: float
    requests: dict[str, dict[str, float]]
    dynamodb_units: dict[str, dict[str, float]]
    lambda_functions: dict[str, dict[str, float]]
    log_bytes: dict[str, float]
    busiest_partition_share: dict[str, float]
    partitions: dict[str, int]
    sqs_message_groups: dict[str, int]
    sqs_busiest_group_share: dict[str, float]
    monthly_usd: dict[str, float]
    total_usd: float
    fixed_monthly_usd: dict[str, float]
    #: One-off setup per account (connections, first syncs, contacts import), in $.
    setup_usd: float = 0.0
    setup_monthly_usd: dict[str, float] = field(default_factory=dict)
    #: DynamoDB operation → {"requests", "rru", "wru"} per account per day (all tables).
    dynamodb_operations: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Activity of the day (or scheduled job) → {"aws_requests", "rru", "wru", "invocations"} per account per day.
    activities: dict[str, dict[str, float]] = field(default_factory=dict)
    #: What was modelled rather than measured, one line each.
    assumptions: list[str] = field(default_factory=list)
    measured_at: str = ""
    wall_seconds: float = 0.0


# ---------------------------------------------------------------------- measuring


@dataclass
class Usage:
    """What happened between two marks of the meter (absolute counts)."""

    requests: list[Any]
    invocations: list[tuple[str, float]]
    log_bytes: Counter[str]
    google: Counter[str]
    caldav: Counter[str]


class Meter:
    """Marks and differences over every counter of a stack."""

    CALDAV_METHODS = ("PROPFIND", "REPORT", "GET", "PUT", "DELETE", "MKCALENDAR", "OPTIONS")

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self._lock = threading.Lock()
        self.invocations: list[tuple[str, float]] = []
        self.bytes: Counter[str] = Counter()
        functions = set(stack.template.functions)
        self._functions = functions
        stack.lambdas.observers.append(self._invoked)
        stack.lambdas.sinks.append(self._logged)

    def _invoked(self, result: Any) -> None:
        with self._lock:
            self.invocations.append((result.function, float(result.duration_ms)))

    def _logged(self, source: str, line: str) -> None:
        # The local runtime's own lines (REPORT, [devstack] ...) stand for Lambda's platform
        # lines, which PLATFORM_LOG_BYTES accounts for.
        if source in self._functions and not line.startswith(("REPORT RequestId:", "[devstack]")):
            with self._lock:
                self.bytes[source] += len(line.encode()) + 1

    def count(self, function: str) -> int:
        with self._lock:
            return sum(1 for name, _ in self.invocations if name == function)

    def mark(self) -> tuple[int, int, Counter[str], Counter[str], Counter[str]]:
        with self._lock:
            return (
                len(self.stack.requests),
                len(self.invocations),
                Counter(self.bytes),
                Counter(self.stack.google.calls.totals()),
                self._caldav(),
            )

    def _caldav(self) -> Counter[str]:
        layer = self.stack.caldav.layer
        return Counter({m: layer.count(method=m) for m in self.CALDAV_METHODS})

    def since(self, mark: tuple[int, int, Counter[str], Counter[str], Counter[str]]) -> Usage:
        requests, invocations, logged, google, caldav = mark
        now = self.mark()
        with self._lock:
            invoked = self.invocations[invocations:]
        return Usage(
            self.stack.requests.snapshot()[requests:],
            list(invoked),
            now[2] - logged,
            now[3] - google,
            now[4] - caldav,
        )


class Ledger:
    """Weighted sums of usages: the day (or the setup) of the whole population."""

    def __init__(self, tables: Mapping[str, str], queues: Mapping[str, str], keys: Mapping[str, str]) -> None:
        self.tables = tables  # physical name → logical id
        self.queues = queues
        self.keys = keys  # table physical name → its primary hash key attribute
        self.requests: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.units: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.partitions: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.durations: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.invocations: dict[str, float] = defaultdict(float)
        self.log_bytes: dict[str, float] = defaultdict(float)
        self.operations: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.activities: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(
        self, usage: Usage, weight: float = 1.0, drop: Callable[[Any], bool] | None = None, activity: str = "other"
    ) -> None:
        spent = self.activities[activity]
        spent["invocations"] += weight * len(usage.invocations)
        for item in usage.requests:
            if drop is not None and drop(item):
                continue
            spent["aws_requests"] += weight
            if item.service == "dynamodb":
                spent["rru"] += weight * item.rcu
                spent["wru"] += weight * item.wcu
                done = self.operations[item.operation]
                done["requests"] += weight
                done["rru"] += weight * item.rcu
                done["wru"] += weight * item.wcu
            self.requests[item.service][item.operation] += weight * (item.chunks if item.service == "sqs" else 1)
            if item.service == "events" and item.operation == "PutEvents":
                self.requests["events"]["PutEvents entries"] += weight * item.chunks
            if item.service == "dynamodb":
                tables = item.resources or ("?",)
                share = 1 / len(tables)
                for table in tables:
                    logical = self.tables.get(table, table)
                    self.units[logical]["rru"] += weight * item.rcu * share
                    self.units[logical]["wru"] += weight * item.wcu * share
                for table, key in item.keys if weight > 0 else ():
                    attribute = self.keys.get(table)
                    logical = self.tables.get(table, table)
                    value = dict(key).get(attribute or "") if attribute else None
                    if value is None and key:  # a query of an index: its own partitions
                        logical, value = f"{logical}/{key[0][0]}", key[0][1]
                    if value is not None:
                        self.partitions[logical][value] += weight
            elif item.service == "sqs" and item.operation.startswith("SendMessage") and weight > 0:
                queue = self.queues.get(item.resources[0], item.resources[0]) if item.resources else "?"
                for group in item.groups:
                    self.groups[queue][group] += weight
        for function, duration in usage.invocations:
            self.invocations[function] += weight
            self.durations[function].append((duration, weight))
        for function, n in usage.log_bytes.items():
            self.log_bytes[function] += weight * n
        for method, n in usage.google.items():
            self.requests["google"][method] += weight * n
        for method, n in usage.caldav.items():
            if n:
                self.requests["caldav"][method] += weight * n

    def model(self, service: str, operation: str, per_day: float) -> None:
        self.requests[service][operation] += per_day


def _weighted_quantile(values: list[tuple[float, float]], q: float) -> float:
    ordered = sorted(v for v in values if v[1] > 0)
    total = sum(w for _, w in ordered)
    if not ordered:
        return 0.0
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= q * total:
            return value
    return ordered[-1][0]


# ---------------------------------------------------------------------- prices


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def price_of(prices: Mapping[str, Any], name: str) -> float:
    """The price of one unit of ``name`` in dollars (the file gives it per ``per`` units)."""
    entry = prices["prices"][name]
    return float(entry["usd"]) / float(entry.get("per", 1))


def monthly_lines(
    requests: Mapping[str, Mapping[str, float]],
    units: Mapping[str, Mapping[str, float]],
    gb_seconds: Mapping[str, float],
    invocations: Mapping[str, float],
    log_bytes: Mapping[str, float],
    prices: Mapping[str, Any],
    days: float = DAYS_PER_MONTH,
) -> dict[str, float]:
    """$ per month by line from daily quantities (a pure function: bench/aws_prices.json's
    units are applied here and nowhere else). Provider calls (Google, CalDAV, Graph) cost
    nothing on AWS and have no line."""
    p = lambda name: price_of(prices, name)  # noqa: E731 - a local shorthand
    lines: dict[str, float] = {}

    def add(line: str, usd_per_day: float) -> None:
        if usd_per_day:
            lines[line] = lines.get(line, 0.0) + usd_per_day * days

    for table, u in units.items():
        add(f"DynamoDB reads ({table})", u.get("rru", 0.0) * p("dynamodb_read_request_unit"))
        add(f"DynamoDB writes ({table})", u.get("wru", 0.0) * p("dynamodb_write_request_unit"))
    for function, n in invocations.items():
        add(f"Lambda requests ({function})", n * p("lambda_request"))
    for function, seconds in gb_seconds.items():
        add(f"Lambda compute ({function})", seconds * p("lambda_gb_second_arm"))
    for function, n in log_bytes.items():
        add(f"CloudWatch Logs ingestion ({function})", n / 1e9 * p("logs_ingestion_gb"))
        # Kept one month (the log groups' retention), stored compressed at about 0.15 of raw.
        add(f"CloudWatch Logs storage ({function})", n / 1e9 * 0.15 * p("logs_storage_gb_month"))
    service_prices = {
        ("sqs", None): "sqs_fifo_request",
        ("events", "PutEvents entries"): "eventbridge_custom_event",
        ("kms", None): "kms_request",
        ("secretsmanager", None): "secretsmanager_api_call",
        ("apigateway", None): "apigateway_http_request",
        ("ses", "inbound mail"): "ses_inbound_mail",
        ("ses", "inbound 256 KB chunk"): "ses_inbound_chunk",
        ("s3", "PutObject"): "s3_put_request",
        ("s3", "CopyObject"): "s3_put_request",
        ("s3", "ListObjectsV2"): "s3_put_request",
        ("s3", "GetObject"): "s3_get_request",
        ("s3", "HeadObject"): "s3_get_request",
    }
    for service, operations in requests.items():
        for operation, n in operations.items():
            name = service_prices.get((service, operation)) or service_prices.get((service, None))
            if name is not None:
                add(f"{_SERVICE_NAMES.get(service, service)} {operation}", n * p(name))
    return dict(sorted(lines.items(), key=lambda kv: -kv[1]))


_SERVICE_NAMES = {
    "sqs": "SQS",
    "events": "EventBridge",
    "kms": "KMS",
    "secretsmanager": "Secrets Manager",
    "apigateway": "API Gateway",
    "ses": "SES",
    "s3": "S3",
}


def fixed_monthly(prices: Mapping[str, Any], template: Any) -> dict[str, float]:
    """Costs of the deployment itself, whatever the number of accounts."""
    p = lambda name: price_of(prices, name)  # noqa: E731
    schedules_a_month = sum(RUNS_A_DAY.values()) * DAYS_PER_MONTH
    # Lambda's SQS event source long-polls the queue (at least 5 pollers, 20 s polls) even idle.
    idle_polls = 5 * 3 * 60 * 24 * DAYS_PER_MONTH
    keys = len(template.keys) if hasattr(template, "keys") else 1
    secrets = len(template.secrets) if hasattr(template, "secrets") else 2
    return {
        "KMS customer managed keys": keys * p("kms_key_month"),
        "Secrets Manager secrets": secrets * p("secretsmanager_secret_month"),
        "EventBridge Scheduler invocations (5 schedules)": schedules_a_month * p("scheduler_invocation"),
        "SQS event source idle polling (sync queue)": idle_polls * p("sqs_fifo_request"),
    }


# ---------------------------------------------------------------------- the day


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Account:
    """One CRM user with the issue's set-up, driven over HTTP as a person and Google would."""

    def __init__(self, stack: Any, n: int) -> None:
        import requests

        from tests.support.caldav_user import CalDavUser
        from tests.support.gmail_user import GmailUser
        from tests.support.google_people import GooglePeopleUser
        from tests.support.google_user import GoogleCalendarUser

        self.stack = stack
        self.tenant = f"cost-{uuid.uuid4().hex[:8]}"
        self.user = f"user{n}"
        self.http = requests.Session()
        self.token = stack.issue_token(self.tenant, self.user)
        base = stack.google.base_url
        self.a = GoogleCalendarUser.new(base, f"a{n}")
        self.b = GoogleCalendarUser.new(base, f"b{n}")
        self.team = self.a.add_calendar("Team")["id"]
        self.people = GooglePeopleUser(base, self.a.email)
        self.gmail = GmailUser(base, self.b.email)
        self.icloud = CalDavUser(stack.caldav)
        self.contacts: list[tuple[str, str]] = []
        self.events: dict[str, list[str]] = defaultdict(list)
        self.bcc = ""
        self.sender = f"{self.user}-{self.tenant}@sender.example"
        self.connections: dict[str, str] = {}

    def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        answer = self.http.request(method, self.stack.api_url + path, headers=headers, timeout=60, **kw)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else None

    def consent(self, url: str, email: str) -> str:
        from tests.support.google_consent import consent, query

        back = self.http.get(consent(url, email), allow_redirects=False, timeout=60)
        return query(back.headers["Location"]).get("connected", "")

    def set_up(self) -> None:
        from tests.support.google_people import person

        for i in range(CONTACTS):
            email = f"c{i}-{self.tenant}@client.example"
            self.contacts.append((self.people.add(person(f"C{i}", self.tenant, emails=(email,))), email))
        enabled = self.api("POST", "/v1/contacts/sync", json={})
        self.connections["a"] = self.consent(enabled["authorization_url"], self.a.email)
        self.stack.drain(120)
        answer = self.api("POST", "/v1/settings/email-sync", json={"window_days": 30})
        self.consent(answer["authorization_url"], self.b.email)
        made = self.api(
            "POST", "/v1/integrations/icloud", json={"username": self.icloud.email, "password": self.icloud.password}
        )
        self.connections["icloud"] = made["id"]
        self.stack.drain(120)
        calendars = self.api("GET", "/v1/calendars")["items"]
        self.connections["b"] = next(c["connection_id"] for c in calendars if c["calendar_id"] == self.b.email)
        wanted = {self.b.email, self.team, self.icloud.calendar_url}
        chosen = [
            {"connection_id": c["connection_id"], "calendar_id": c["calendar_id"]}
            for c in calendars
            if c["calendar_id"] in wanted
        ]
        assert len(chosen) == 3, calendars
        self.api("PUT", "/v1/settings/conflict-calendars", json={"calendars": chosen})
        self.bcc = self.api("GET", "/v1/settings/bcc-address")["address"]
        added = self.api("POST", "/v1/settings/sender-addresses", json={"email": self.sender})
        self.bcc_mail(f"Verify {added['code']}", [self.bcc])
        self.stack.drain(120)

    def calendar_change(self, n: int) -> None:
        """Alternately a new event and a move of an earlier one, on the linked calendar (half)
        and on the two Google conflict calendars."""
        calendar, user = [(self.a.email, self.a), (self.b.email, self.b), (self.a.email, self.a), (self.team, self.a)][
            n % 4
        ]
        start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=3 + n % 5, hours=n % 8)
        window = {
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "end": {"dateTime": (start + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        }
        made = self.events[calendar]
        if n % 2 and made:
            user.patch(made[-1], calendar_id=calendar, **window)
        else:
            made.append(user.add(calendar_id=calendar, summary=f"meeting {n}", **window)["id"])

    def booking(self, n: int) -> None:
        start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=10 + n, hours=2)
        body = {
            "title": f"booking {n}",
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "time_zone": "UTC",
        }
        self.api("POST", "/v1/appointments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})

    def gmail_mail(self, n: int) -> None:
        from tests.support.gmail_user import message

        _, contact = self.contacts[n % len(self.contacts)]
        self.gmail.receive(message(contact, [self.b.email], f"Re: offer {n}", "Thanks, see you then.\n" * 20))

    def bcc_mail(self, subject: str, to: list[str]) -> None:
        from email.message import EmailMessage
        from email.utils import make_msgid

        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(to)
        mail["Subject"] = subject
        mail["Message-ID"] = make_msgid(domain="sender.example")
        mail.set_content("Here is the offer we discussed.\n" * 20)
        self.stack.deliver_mail(mail.as_bytes(), self.sender, [self.bcc])

    def contact_change(self, n: int) -> None:
        resource, _ = self.contacts[n]
        self.people.edit(resource, {"organizations": [{"name": f"Org {n}"}]})


def _enqueue(stack: Any, messages: Iterable[Any]) -> None:
    """Queue what a schedule queues (the message it sends), from outside the product."""
    sqs = stack.aws_client("sqs")
    url = stack.function_environment("SyncWorkerFunction")["SYNC_QUEUE_URL"]
    for message in messages:
        sqs.send_message(
            QueueUrl=url,
            MessageBody=message.model_dump_json(),
            MessageGroupId=message.group_id,
            MessageDeduplicationId=message.deduplication_id,
        )


def measure(accounts: int = ACCOUNTS) -> CostFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    began = time.perf_counter()
    with Stack(ROOT, count_requests=True, sqs_visibility_timeout=5, prewarm=True) as stack:
        from crmsync.domain.sweeps import TICK, tick_start
        from crmsync.messaging.messages import ContactSyncRequest

        meter = Meter(stack)
        template = stack.template
        tables = {t.name: lid for lid, t in template.tables.items()}
        keys = {
            t.name: next(k["AttributeName"] for k in t.definition["KeySchema"] if k["KeyType"] == "HASH")
            for t in template.tables.values()
        }
        queues = {q.name: lid for lid, q in template.queues.items()}
        setup = Ledger(tables, queues, keys)
        day = Ledger(tables, queues, keys)
        fixed = Ledger(tables, queues, keys)

        def schedule_of(job: str) -> str:
            return next(s.event for s in template.schedules if json.loads(s.input or "{}").get("job") == job)

        # Each job's own work with no account at all (its fixed part): the second firing of
        # each, the first one warming the scheduler (its clients, its lazy imports).
        baseline: dict[str, Usage] = {}
        for _ in range(2):
            for job in RUNS_A_DAY:
                mark = meter.mark()
                stack.fire(schedule_of(job))
                stack.drain(60)
                baseline[job] = meter.since(mark)
        people = [Account(stack, n) for n in range(accounts)]

        mark = meter.mark()
        for person in people:
            person.set_up()
        stack.mail_drain(120)
        stack.drain(120)
        setup.add(meter.since(mark), activity="setup")
        print(f"cost: set up {accounts} accounts", file=sys.stderr)

        def rounds(
            activity: str,
            count: int,
            act: Callable[[Account, int], None],
            webhooks: int,
            pause: float = 0.0,
            mail: bool = False,
        ) -> None:
            for n in range(count):
                started = time.monotonic()
                mark = meter.mark()
                before = meter.count("GoogleWebhookFunction")
                for person in people:
                    act(person, n)
                wanted = before + webhooks * accounts
                if webhooks:
                    _wait(lambda: meter.count("GoogleWebhookFunction") >= wanted, 15)  # noqa: B023 - used at once
                if mail:
                    stack.mail_drain(60)
                stack.drain(60)
                day.add(meter.since(mark), activity=activity)
                if pause:
                    time.sleep(max(0.0, pause - (time.monotonic() - started)))

        rounds("calendar changes in Google", CALENDAR_CHANGES, Account.calendar_change, webhooks=1)
        print("cost: calendar changes done", file=sys.stderr)
        rounds("bookings through the API", BOOKINGS, Account.booking, webhooks=1)
        # Gmail sends a user at most one notification a second: a day's mail is spread out.
        rounds("mail through Gmail sync", GMAIL_MAILS, Account.gmail_mail, webhooks=1, pause=1.1)
        print("cost: gmail done", file=sys.stderr)
        rounds(
            "mail through BCC logging",
            BCC_MAILS,
            lambda p, n: p.bcc_mail(f"Offer {n}", [p.contacts[n][1]]),
            webhooks=0,
            mail=True,
        )

        # Contacts: each change is picked up by one of the day's 96 scheduled syncs.
        def contact_sync(person: Account, occasion: str) -> ContactSyncRequest:
            return ContactSyncRequest(
                tenant_id=person.tenant,
                user_id=person.user,
                connection_id=person.connections["a"],
                reason="scheduled",
                occasion=occasion,
            )

        for n in range(CONTACT_CHANGES):
            mark = meter.mark()
            for person in people:
                person.contact_change(n)
            _enqueue(stack, [contact_sync(p, f"cost-{n}-{uuid.uuid4().hex}") for p in people])
            stack.drain(60)
            day.add(meter.since(mark), activity="job contacts_sync")

        # The schedules. Each tick takes one slot of its sweep's accounts, so one round of
        # consecutive ticks (TICKS_A_ROUND) visits every account once: fired at those ticks (as
        # Scheduler would have scheduled them), with what they queued run, the round costs the
        # accounts a visit each; a day holds RUNS_A_DAY / TICKS_A_ROUND rounds. The ticks'
        # no-account part (every tick's Query of its slot, the invocation) is the deployment's.
        results: dict[str, Any] = {}
        start = tick_start(datetime.now(UTC))
        for job, runs in RUNS_A_DAY.items():
            ticks = TICKS_A_ROUND[job]
            per_day = runs / ticks
            mark = meter.mark()
            results[job] = [
                stack.fire(schedule_of(job), at=start + i * TICK).payload.get("enqueued") for i in range(ticks)
            ]
            stack.drain(120)
            usage = meter.since(mark)
            # What the job costs with no account is the deployment's, not the accounts'.
            fixed.add(baseline[job], runs, activity=f"job {job}")
            day.add(baseline[job], -runs, activity=f"job {job}")
            # The contacts syncs that found a change were counted with the changes above.
            day.add(usage, per_day - (CONTACT_CHANGES if job == "contacts_sync" else 0), activity=f"job {job}")
            if job == "contacts_sync":  # the scheduler's own invocations ran every round
                scheduler_only = [i for i in usage.invocations if i[0] == "SchedulerFunction"]
                day.add(
                    dataclasses.replace(
                        usage,
                        requests=[],
                        invocations=scheduler_only,
                        log_bytes=Counter(),
                        google=Counter(),
                        caldav=Counter(),
                    ),
                    CONTACT_CHANGES,
                    activity=f"job {job}",
                )
        print(f"cost: schedules fired (enqueued per tick): {results}", file=sys.stderr)

        assumptions = _model_platform(day, accounts)
        wall = time.perf_counter() - began
        return _figures(stack, day, setup, fixed, accounts, assumptions, wall)


def _model_platform(day: Ledger, accounts: int) -> list[str]:
    """What AWS does around the functions that the local runtime does its own way."""
    worker = day.invocations.get("SyncWorkerFunction", 0.0)
    day.model("sqs", "ReceiveMessage (event source)", worker)
    day.model("sqs", "DeleteMessageBatch (event source)", worker)
    day.model("apigateway", "HTTP API request", sum(day.invocations.get(f, 0.0) for f in HTTP_FUNCTIONS))
    mails = BCC_MAILS * accounts
    day.model("ses", "inbound mail", mails)
    day.model("ses", "inbound 256 KB chunk", mails)
    day.model("s3", "PutObject", mails)  # SES's S3 action stores the raw message
    renewals = 3 / CHANNEL_RENEWAL_DAYS * accounts
    day.model("google", "calendar.events.watch (renewal)", renewals)
    day.model("google", "calendar.channels.stop (renewal)", renewals)
    return [
        "SQS: Lambda's event source receives and deletes each batch of the sync queue (one ReceiveMessage"
        " and one DeleteMessageBatch per sync_worker invocation); its idle long polling is a fixed cost.",
        "API Gateway: one HTTP API request per invocation of a function behind it.",
        "SES: each BCC'd mail is one inbound mail of one 256 KB chunk, and one S3 PUT by SES's S3 action.",
        f"Calendar channels (3 Google calendars) are renewed every {CHANNEL_RENEWAL_DAYS} days: one"
        " events.watch and one channels.stop each (their DynamoDB write is not in the figures).",
        f"CloudWatch Logs: {PLATFORM_LOG_BYTES} bytes of START/END/REPORT lines per invocation on top of what"
        " each function writes; stored for a month at 0.15 of their raw size.",
        "A day is done in minutes, in a few warm workers: what a function keeps in memory between"
        " invocations (Google access tokens, refreshed hourly) is reused far more than at scale, where a"
        " connection's next sync seldom lands in the same container; Google token requests are a floor.",
        "Lambda: billed duration is each invocation's measured duration rounded up to 1 ms (warm;"
        " cold starts' init is left out), on this machine (2 cores shared with the whole stack).",
    ]


def _figures(
    stack: Any, day: Ledger, setup: Ledger, fixed: Ledger, accounts: int, assumptions: list[str], wall: float
) -> CostFigures:
    prices = load_prices()
    template = stack.template
    memory = {lid: f.memory_size for lid, f in template.functions.items()}

    def per_account(ledger: Ledger, accounts: int = accounts) -> dict[str, Any]:
        lambdas: dict[str, dict[str, float]] = {}
        gb_seconds: dict[str, float] = {}
        for function, n in ledger.invocations.items():
            durations = ledger.durations[function]
            positive = [(d, w) for d, w in durations if w > 0]
            mean = sum(d * w for d, w in positive) / (sum(w for _, w in positive) or 1.0)
            # Net of the jobs' fixed part (negative weights); noise must not make it negative.
            billed = max(0.0, sum(math.ceil(d) * w for d, w in durations) / 1000 * memory[function] / 1024)
            gb_seconds[function] = billed / accounts
            lambdas[function] = {
                "invocations": n / accounts,
                "mean_ms": round(mean, 1),
                "p95_ms": round(_weighted_quantile(durations, 0.95), 1),
                "memory_mb": float(memory[function]),
            }
        logs = {
            f: max(0.0, ledger.log_bytes.get(f, 0.0) + PLATFORM_LOG_BYTES * ledger.invocations.get(f, 0.0)) / accounts
            for f in set(ledger.log_bytes) | set(ledger.invocations)
        }
        requests = {s: {op: n / accounts for op, n in ops.items()} for s, ops in ledger.requests.items()}
        requests["logs"] = {"ingested bytes": sum(logs.values())}
        units = {t: {k: v / accounts for k, v in u.items()} for t, u in ledger.units.items()}
        return {
            "requests": requests,
            "units": units,
            "lambdas": lambdas,
            "gb_seconds": gb_seconds,
            "logs": logs,
        }

    daily = per_account(day)
    lines = monthly_lines(
        {s: ops for s, ops in daily["requests"].items() if s != "logs"},
        daily["units"],
        daily["gb_seconds"],
        {f: v["invocations"] for f, v in daily["lambdas"].items()},
        daily["logs"],
        prices,
    )
    once = per_account(setup)
    setup_lines = monthly_lines(
        {s: ops for s, ops in once["requests"].items() if s != "logs"},
        once["units"],
        once["gb_seconds"],
        {f: v["invocations"] for f, v in once["lambdas"].items()},
        once["logs"],
        prices,
        days=1,
    )

    deployment = per_account(fixed, 1)
    deployment_lines = monthly_lines(
        {s: ops for s, ops in deployment["requests"].items() if s != "logs"},
        deployment["units"],
        deployment["gb_seconds"],
        {f: v["invocations"] for f, v in deployment["lambdas"].items()},
        deployment["logs"],
        prices,
    )
    fixed_costs = fixed_monthly(prices, template)
    fixed_costs["Scheduled jobs' own work, no account (invocations, index queries, logs)"] = sum(
        deployment_lines.values()
    )

    def share(counter: Mapping[str, float]) -> float:
        total = sum(counter.values())
        return max(counter.values()) / total if total else 0.0

    return CostFigures(
        accounts=accounts,
        days=1.0,
        requests=daily["requests"],
        dynamodb_units=daily["units"],
        lambda_functions=daily["lambdas"],
        log_bytes=daily["logs"],
        busiest_partition_share={t: round(share(c), 4) for t, c in day.partitions.items()},
        partitions={t: len(c) for t, c in day.partitions.items()},
        sqs_message_groups={q: len(c) for q, c in day.groups.items()},
        sqs_busiest_group_share={q: round(share(c), 4) for q, c in day.groups.items()},
        monthly_usd=lines,
        total_usd=sum(lines.values()),
        fixed_monthly_usd=fixed_costs,
        setup_usd=sum(setup_lines.values()),
        setup_monthly_usd=setup_lines,
        dynamodb_operations={
            op: {k: v / accounts for k, v in spent.items()} for op, spent in sorted(day.operations.items())
        },
        activities={a: {k: v / accounts for k, v in spent.items()} for a, spent in sorted(day.activities.items())},
        assumptions=assumptions,
        measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        wall_seconds=round(wall, 1),
    )


def run(accounts: int = ACCOUNTS) -> CostFigures:
    """Measure, cache the figures in .devstack/cost.json (bench/scale.py reads them), return them."""
    figures = measure(accounts)
    CACHE.parent.mkdir(exist_ok=True)
    CACHE.write_text(json.dumps(dataclasses.asdict(figures), indent=1, sort_keys=True))
    return figures


def cached() -> CostFigures | None:
    """The last run's figures, if any."""
    if not CACHE.exists():
        return None
    return CostFigures(**json.loads(CACHE.read_text()))


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--accounts") + 1]) if "--accounts" in sys.argv else ACCOUNTS
    result = run(count)
    print(
        json.dumps(dataclasses.asdict(result))
        if "--json" in sys.argv
        else json.dumps(dataclasses.asdict(result), indent=1)
    )


def section(f: CostFigures) -> list[str]:
    """The docs/PERFORMANCE.md section of these figures (bench/__main__.py adds date and machine)."""
    top = list(f.monthly_usd.items())
    shown, rest = top[:18], top[18:]
    fixed_total = sum(f.fixed_monthly_usd.values())
    ses = sum(usd for name, usd in f.monthly_usd.items() if name.startswith("SES inbound"))
    lines = [
        "## Cost per connected account (local stack)",
        "",
        f"A day of {f.accounts} accounts' activity done on the local stack (`python -m bench cost`,"
        " bench/cost.py), every request counted, priced with us-east-1 on-demand list prices",
        "(bench/aws_prices.json: each price with its unit, source and the date it was checked; no free tier).",
        "Per account and day: two Google accounts (one for calendar and contacts, one for calendar and",
        "Gmail), the first's primary calendar linked, three conflict calendars (the other Google account's",
        "primary, a second Google calendar, an iCloud calendar), 20 changes made in Google Calendar (push",
        "notification → `google_webhook` → SQS FIFO → `sync_worker`), 5 bookings through the API (with",
        "Idempotency-Key; pushed to Google, whose echo comes back as a notification), 30 mails received in",
        "Gmail (Pub/Sub push, history sync), 5 mails BCC'd through the local SES, 200 contacts with 2 changes",
        "(picked up by the 15-minute contacts sync), the iCloud calendar polled every 15 minutes. Counted:",
        "DynamoDB and moto (SQS, EventBridge, S3, KMS, Secrets Manager) requests through counting proxies in",
        "front of them (devstack/counting.py; DynamoDB's capacity units from its own ConsumedCapacity), the",
        "Google emulator's API methods and token requests, the CalDAV server's requests, each invocation's",
        "duration (Lambda compute: duration rounded up to 1 ms × the template's MemorySize, arm64) and the",
        "bytes each function logs. Every schedule fires every 5 minutes and each tick takes one slot of its",
        "sweep's accounts (crmsync.domain.sweeps): each job is fired, with the accounts in their steady",
        "state, at one round of consecutive ticks that visits every account once (health check 72 ticks,",
        "mail 12, contacts and the calendar poll's conflict calendars 3, the push sweep 1), what it queued",
        "is synced, and the round (the scheduler's invocations, what they queued and the syncs they caused)",
        "is multiplied by its rounds a day; the same ticks fired with no account at all give the fixed",
        "part, which is the deployment's and listed apart.",
        "",
        f"**${f.total_usd:.4f} per connected account per month** (30 days; goal ≤ $0.01), plus the",
        f"deployment's fixed ${fixed_total:.2f} a month whatever the number of accounts. SES's own price",
        f"for the 5 BCC mails a day is ${ses:.4f} of it; everything else ${f.total_usd - ses:.4f}.",
        "",
        "| line (per account per month) | $ |",
        "| --- | ---: |",
        *[f"| {name} | {usd:.5f} |" for name, usd in shown],
    ]
    if rest:
        lines.append(f"| {len(rest)} smaller lines | {sum(u for _, u in rest):.5f} |")
    lines += [
        f"| **total** | **{f.total_usd:.5f}** |",
        "",
        "Fixed, per deployment and month:",
        "",
        "| line | $ |",
        "| --- | ---: |",
        *[f"| {name} | {usd:.2f} |" for name, usd in f.fixed_monthly_usd.items()],
        "",
        f"Setting an account up (connections, first syncs, the 200 contacts' import, channels and watch) is a"
        f" one-off ${f.setup_usd:.4f}, not in the monthly figure.",
        "",
        "Requests per account per day:",
        "",
        "| service | operation | per day |",
        "| --- | --- | ---: |",
    ]
    for service, operations in sorted(f.requests.items()):
        for operation, n in sorted(operations.items(), key=lambda kv: -kv[1]):
            if n >= 0.05:
                lines.append(f"| {service} | {operation} | {n:,.1f} |")
    lines += [
        "",
        "| DynamoDB table | read units / day | write units / day | busiest partition's share"
        f" ({f.accounts} accounts) | partitions |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for table in sorted(set(f.dynamodb_units) | set(f.partitions)):
        units = f.dynamodb_units.get(table, {})
        lines.append(
            f"| {table} | {units.get('rru', 0.0):,.1f} | {units.get('wru', 0.0):,.1f} |"
            f" {f.busiest_partition_share.get(table, 0.0):.2f} | {f.partitions.get(table, 0)} |"
        )
    lines += [
        "",
        "| DynamoDB operation | requests / day | read units | write units |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {op} | {v.get('requests', 0.0):,.1f} | {v.get('rru', 0.0):,.1f} | {v.get('wru', 0.0):,.1f} |"
            for op, v in sorted(f.dynamodb_operations.items(), key=lambda kv: -kv[1].get("rru", 0.0))
        ],
        "",
        "Where it goes, by activity (scheduled jobs net of their no-account part):",
        "",
        "| activity | AWS requests / day | DynamoDB read units | write units | invocations |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {a} | {v.get('aws_requests', 0.0):,.1f} | {v.get('rru', 0.0):,.1f} | {v.get('wru', 0.0):,.1f} |"
            f" {v.get('invocations', 0.0):,.1f} |"
            for a, v in sorted(f.activities.items(), key=lambda kv: -kv[1].get("rru", 0.0))
        ],
    ]
    lines += [
        "",
        "| function | invocations / day | mean ms | p95 ms | MemorySize | log bytes / day |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for function, v in sorted(f.lambda_functions.items(), key=lambda kv: -kv[1]["invocations"]):
        lines.append(
            f"| `{function}` | {v['invocations']:,.1f} | {v['mean_ms']:.0f} | {v['p95_ms']:.0f} |"
            f" {v['memory_mb']:.0f} MB | {f.log_bytes.get(function, 0.0):,.0f} |"
        )
    groups = ", ".join(
        f"{q}: {n} groups, the busiest {f.sqs_busiest_group_share.get(q, 0.0):.2f} of the messages"
        for q, n in f.sqs_message_groups.items()
    )
    lines += [
        "",
        f"SQS FIFO message groups ({f.accounts} accounts): {groups or 'none'}. The scheduler's invocations",
        "have no line per account: one invocation a tick serves every account (the fixed part above); its",
        "duration beyond the fixed part (the fan-out) is in its compute line.",
        "",
        "Modelled rather than measured:",
        "",
        *[f"- {a}" for a in f.assumptions],
        "",
        "Durations were measured on 2 cores shared with the whole stack (and with other jobs of this",
        f"machine: the figures are noisy); the counts are not. Run time {f.wall_seconds:.0f} s. The figures are",
        "cached in .devstack/cost.json for bench/scale.py.",
        "",
    ]
    return lines


#: A cut tried and taken back, with what this benchmark measured (2026-11-27, 6 accounts).
BEFORE_AFTER: list[str] = [
    "Cuts made (2026-11-27, 6 accounts, same machine under load). Before them this benchmark measured",
    "$0.18 an account a month. The largest line was KMS Decrypt: one per sync that opens a connection",
    "(321 an account a day, $0.029 a month). Keeping decrypted credentials in the warm function for 15",
    "minutes (commit ac8ef2a) made this benchmark measure 0 Decrypts, but only because it does a day",
    "in minutes in one warm worker; at scale a connection's next sync seldom lands in the same",
    "container, so it was reverted (fca37cc). What cuts it at any scale is envelope encryption,",
    "now in place (crmsync.security.tokens, docs/SECURITY.md): credentials are sealed with AES-GCM",
    "under a monthly data key shared by every connection, which KMS makes once and a function opens",
    "once per 15 minutes, whichever connections it serves. KMS's requests are then per container,",
    "not per account: at a million accounts (~1,100 `sync_worker` containers at the peak,",
    "docs/SCALE.md) at most 96 Decrypts a container a day, ~3 million a month, about $10 for the",
    "whole deployment — $0.00001 an account. The second cut: the scans of the whole table by the",
    "contacts sync (96 a day), the mail sync (24) and the health check (4), more than half of an",
    "account's DynamoDB reads in the first runs (DynamoDB reads $0.018 → $0.008), are gone: each tick",
    "reads its slot of the sparse `sweeps` index (docs/DATA.md). What stays above the goal: SES's own",
    "price for inbound mail ($0.10 per 1,000 mails and $0.09 per 1,000 chunks of 256 KB) makes the",
    "issue's 5 BCC mails a day $0.0285 a month on their own, three times the $0.01 goal, whatever",
    "this code does; without them the rest is the total above less the two SES lines.",
    "",
]
