"""`Stack`: the whole SAM application on loopback, composed from the pieces of devstack.

    with Stack(root) as stack:
        stack.invoke("ApiFunction", event)
        requests.get(f"{stack.api_url}/v1/integrations", headers={"Authorization": ...})
        stack.drain()

Start order: DynamoDB Local (in a thread: the JVM is the slow part) while moto, the Google
emulator, the CalDAV server (Radicale behind the iCloud fault layer) and the HTTP API server
start; then the template is resolved against their URLs,
its queues, buckets, buses, keys, secrets and tables are created, the functions get their
workers, and the SES receipt rules (if any) get the local SES and its SMTP server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from werkzeug.wrappers import Request, Response

from devstack.aws import MotoServer, aws_client, create_aws_resources, create_bus_tap
from devstack.counting import CountingProxy, RequestLog
from devstack.dynamodb_local import DynamoDBLocal, create_tables
from devstack.faketime import clock_variables
from devstack.issuer import ISSUER_PATH, Issuer
from devstack.runtime.asyncinvoke import AsyncDelivery, AsyncInvoker
from devstack.runtime.httpapi import DEVSTACK_PREFIX, HttpApiServer
from devstack.runtime.pool import InvocationResult, LambdaService
from devstack.runtime.schedules import Schedules, rate_seconds
from devstack.runtime.ses import LocalSes, ReceivedMail, verdict_settings
from devstack.runtime.smtp import SmtpServer
from devstack.runtime.sqs import DrainReport, SqsEventSources
from devstack.template import LocalContext, ResolvedTemplate, load_template

ROOT = Path(__file__).resolve().parent.parent
GOOGLE_CLIENT_ID = "crmsync-local-client"
#: The local stack's app registration at the Microsoft emulator (an Entra app's client id is a GUID).
MICROSOFT_CLIENT_ID = "0c5e2a7b-4d1f-4e8a-9b3c-6f2d8e1a7c40"
#: Gmail's Pub/Sub topic on the local stack, and the account the emulator's push subscription
#: signs its OIDC tokens as (infra/README.md: what a deployment sets up in Google Cloud).
GMAIL_TOPIC = "projects/crmsync-local/topics/gmail"
GMAIL_PUSH_SERVICE_ACCOUNT = "gmail-push@crmsync-local.iam.gserviceaccount.com"
GMAIL_PUSH_PATH = "/webhooks/google/gmail"
#: The most ticks one `POST /.devstack/schedules/<name>/fire` fires: a day of 5-minute ticks.
MAX_FIRED_TICKS = 288
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "devstack",
    "AWS_SECRET_ACCESS_KEY": "devstack",
    "AWS_SESSION_TOKEN": "devstack",
    # Never read the developer's real AWS configuration.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclass(frozen=True)
class Ports:
    """Ports of the stack's servers; 0 picks a free port."""

    api: int = 0
    google: int = 0
    aws: int = 0
    dynamodb: int = 0
    smtp: int = 0
    caldav: int = 0
    caldav_partition: int = 0
    microsoft: int = 0

    @classmethod
    def dev(cls) -> Ports:
        """The fixed ports of `make dev`."""
        return cls(
            api=3000,
            google=8081,
            aws=5001,
            dynamodb=8000,
            smtp=2525,
            caldav=5232,
            caldav_partition=5233,
            microsoft=8443,
        )


class LogBuffer:
    """A thread-safe list of `(source, line)`; source is a function logical id or `devstack`."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def append(self, item: tuple[str, str]) -> None:
        """Add one line."""
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[tuple[str, str]]:
        """A copy of every line so far."""
        with self._lock:
            return list(self._items)

    def text(self) -> str:
        """Every line, one per line, as `source | line`."""
        return "\n".join(f"{source} | {line}" for source, line in self.snapshot())

    def lines(self, source: str | None = None) -> list[str]:
        """The lines (of one source, if given)."""
        return [line for src, line in self.snapshot() if source is None or src == source]

    def clear(self) -> None:
        """Forget every line."""
        with self._lock:
            self._items.clear()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def google_available() -> bool:
    """True when the Google emulator package is present."""
    return importlib.util.find_spec("devstack.google") is not None


class Stack:
    """The local stack; a context manager (`start` / `stop`)."""

    def __init__(
        self,
        root: Path | str = ROOT,
        *,
        ports: Ports | None = None,
        google: bool = True,
        caldav: bool = True,
        microsoft: bool = True,
        echo_logs: bool = False,
        background: bool = False,
        sqs_visibility_timeout: int | None = None,
        table_prefix: str = "",
        persist_dir: Path | str | None = None,
        template_path: Path | str | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        secret_overrides: Mapping[str, str] | None = None,
        dynamodb_endpoint: str | None = None,
        concurrency: int = 8,
        prewarm: bool = False,
        schedule_scale: float = 1.0,
        stack_name: str = "crmsync-local",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        log_stream: TextIO | None = None,
        ses_verdicts: Mapping[str, str] | None = None,
        bus_tap_sources: Sequence[str] = ("crmsync",),
        count_requests: bool = False,
        async_retry_delay: float = 0.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.template_path = Path(template_path).resolve() if template_path else self.root / "template.yaml"
        self.ports = ports or Ports()
        self.use_google = google
        self.use_caldav = caldav
        self.use_microsoft = microsoft
        self.echo_logs = echo_logs
        self.log_stream = log_stream
        self.background = background
        self.sqs_visibility_timeout = sqs_visibility_timeout
        self.table_prefix = table_prefix
        self.persist_dir = Path(persist_dir) if persist_dir else None
        self.parameter_overrides = dict(parameter_overrides or {})
        self.secret_overrides = dict(secret_overrides or {})
        self.external_dynamodb = dynamodb_endpoint
        self.concurrency = concurrency
        self.prewarm_workers = prewarm
        self.schedule_scale = schedule_scale
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.ses_verdicts = dict(ses_verdicts or {})
        self.bus_tap_sources = tuple(bus_tap_sources)
        #: With ``count_requests``, the functions reach DynamoDB and moto through counting
        #: proxies (devstack/counting.py) that record every request here (bench/cost.py).
        self.count_requests = count_requests
        self.requests = RequestLog()
        self._proxies: dict[str, CountingProxy] = {}
        #: Seconds before each retry of an asynchronous invocation (Lambda: about 60 and 120).
        self.async_retry_delay = async_retry_delay

        self.logs = LogBuffer()
        self.source = load_template(self.template_path)
        self.google: Any = None
        self.google_accounts: list[dict[str, str]] = []
        self.google_client_secret = secrets.token_urlsafe(24)
        #: Radicale behind the iCloud fault layer (devstack/caldav), when ``caldav``.
        self.caldav: Any = None
        #: The Microsoft emulator (identity platform and Graph, https), when ``microsoft``.
        self.microsoft: Any = None
        #: Its Graph (``devstack.microsoft.graph_mount.GraphMount``): mailboxes, calendars.
        self.microsoft_graph: Any = None
        self.microsoft_accounts: list[dict[str, Any]] = []
        self.microsoft_client_secret = secrets.token_urlsafe(24)
        self.issuer: Issuer | None = None
        self.dynamodb: DynamoDBLocal | None = None
        self.moto: MotoServer | None = None
        self.http: HttpApiServer | None = None
        self.lambdas = LambdaService(sinks=[self._sink])
        self.sqs: SqsEventSources | None = None
        self.schedules: Schedules | None = None
        self.async_lambda: AsyncInvoker | None = None
        self.ses: LocalSes | None = None
        self.smtp: SmtpServer | None = None
        self._bus_tap_url: str | None = None
        self._bus_events: list[dict[str, Any]] = []
        self._bus_lock = threading.Lock()
        self._template: ResolvedTemplate | None = None
        self._parameters: dict[str, str] = {}
        self._context: LocalContext | None = None
        self._echo_lock = threading.Lock()
        self._log_streams: dict[str, str] = {}

    # ------------------------------------------------------------------ logs

    def _sink(self, source: str, line: str) -> None:
        self.logs.append((source, line))
        if self.echo_logs:
            with self._echo_lock:
                stream = self.log_stream or sys.stdout
                stream.write(f"{source[:24]:>24} | {line}\n")
                stream.flush()

    def log(self, line: str) -> None:
        """A line from the stack itself (source `devstack`)."""
        self._sink("devstack", line)

    def _still_starting(self, function: str, waited: float) -> None:
        self.log(f"{function} is still starting after {waited:.0f} s (a busy machine?); waiting for it")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Stack:
        """Start everything; on failure, stop what started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        ddb_error: list[BaseException] = []
        ddb_thread: threading.Thread | None = None
        if self.external_dynamodb is None:
            persist = self.persist_dir / "dynamodb" if self.persist_dir else None
            self.dynamodb = DynamoDBLocal(self.root, self.ports.dynamodb, persist)

            def start_dynamodb() -> None:
                try:
                    assert self.dynamodb is not None
                    self.dynamodb.start()
                except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                    ddb_error.append(exc)

            ddb_thread = threading.Thread(target=start_dynamodb, name="devstack-dynamodb-start", daemon=True)
            ddb_thread.start()

        self.moto = MotoServer(self.ports.aws).start()
        if self.use_google:
            from devstack.google import GoogleEmulator

            self.google = GoogleEmulator(
                host="127.0.0.1",
                port=self.ports.google,
                persist_path=self.persist_dir / "google.pickle" if self.persist_dir else None,
            ).start()
        if self.use_caldav:
            from devstack.caldav import CalDavServer

            self.caldav = CalDavServer(
                port=self.ports.caldav,
                partition_port=self.ports.caldav_partition,
                folder=self.persist_dir / "caldav" if self.persist_dir else None,
            ).start()
        if self.use_microsoft:
            from devstack.microsoft.emulator import MicrosoftEmulator
            from devstack.microsoft.graph_mount import mount_graph

            self.microsoft = MicrosoftEmulator(host="127.0.0.1", port=self.ports.microsoft)
            self.microsoft_graph = mount_graph(self.microsoft)
            self.microsoft.start()
        self.http = HttpApiServer(
            invoke=self.lambdas.invoke,
            log=lambda line: self._sink("httpapi", line),
            port=self.ports.api,
            account_id=self.account_id,
            control=self._control,
        ).start()

        self._parameters = self.source.parameter_values(self._overrides())
        self.issuer = Issuer(self.http.url, audience=self._parameters.get("JwtAudience", "crmsync"))
        self._context = LocalContext(
            region=self.region,
            account_id=self.account_id,
            stack_name=self.stack_name,
            table_prefix=self.table_prefix,
            aws_endpoint=self.moto.endpoint,
            api_url=self.http.url,
        )
        draft = self.source.resolve(self._parameters, self._context)
        secret_values = dict(self.secret_overrides)
        if self.use_google:
            secret_values.setdefault("GoogleClientSecret", self.google_client_secret)
        if self.microsoft is not None:
            secret_values.setdefault("MicrosoftClientSecret", self.microsoft_client_secret)
        physical = create_aws_resources(
            self.moto.endpoint, draft, secret_values, self.sqs_visibility_timeout, self.region
        )
        self._context = replace(self._context, physical_ids=physical)
        self._template = template = self.source.resolve(self._parameters, self._context)
        for event in template.unsupported_events:
            self.log(f"event {event} is not run by the local stack")
        for resource in template.ignored_resources:
            self.log(f"resource {resource} is accepted but not emulated by the local stack")
        if template.buses:
            self._bus_tap_url = create_bus_tap(self.moto.endpoint, template.buses, self.bus_tap_sources, self.region)

        if self.google is not None and "GoogleClientId" in self._parameters:
            self.google.register_client(
                self._parameters["GoogleClientId"],
                secret_values.get("GoogleClientSecret", self.google_client_secret),
                [f"{self.http.url}/oauth/google/callback"],
                name="crmsync (local)",
            )
            self.google_accounts = self.google.seed_demo_accounts()
        if self.google is not None and self._parameters.get("GmailTopic"):
            self._subscribe_gmail_pushes()
        if self.microsoft is not None and self._parameters.get("MicrosoftClientId"):
            self.microsoft.register_client(
                self._parameters["MicrosoftClientId"],
                secret_values.get("MicrosoftClientSecret", self.microsoft_client_secret),
                [f"{self.http.url}/oauth/microsoft/callback"],
                name="crmsync (local)",
            )
        if self.microsoft is not None:
            self.seed_microsoft()

        if ddb_thread is not None:
            ddb_thread.join()
            if ddb_error:
                raise ddb_error[0]
        create_tables(self.dynamodb_endpoint, template, region=self.region)
        if self.count_requests:
            self._start_proxies(template)

        function_arns: dict[str, str] = {}
        for function in template.functions.values():
            arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{function.name}"
            function_arns[function.logical_id] = arn
            self.lambdas.add_function(function, self.worker_environment(function.logical_id), arn, self.concurrency)
        self.http.set_routes(template.routes)
        self.async_lambda = AsyncInvoker(
            self.lambdas.invoke,
            {lid: function.event_invoke for lid, function in template.functions.items()},
            function_arns,
            template.queues,
            self.aws_client("sqs"),
            lambda line: self._sink("lambda-async", line),
            retry_delay=self.async_retry_delay,
        ).start()
        if template.receipt_rules:
            self.ses = LocalSes(
                template.receipt_rules,
                self.aws_client("s3"),
                self.async_lambda,
                lambda line: self._sink("ses", line),
                self.region,
                self.ses_verdicts,
            )
            self.smtp = SmtpServer(self.ses, lambda line: self._sink("smtp", line), self.ports.smtp).start()
        self.sqs = SqsEventSources(
            template.sqs_sources,
            template.queues,
            self.aws_client("sqs"),
            self.lambdas.invoke,
            lambda line: self._sink("sqs", line),
            self.region,
        )
        self.schedules = Schedules(
            template.schedules,
            self.lambdas.invoke,
            lambda line: self._sink("schedules", line),
            self.region,
            self.account_id,
        )
        if self.prewarm_workers:
            errors = self.lambdas.prewarm(on_slow=self._still_starting)
            for name, error in errors.items():
                self.log(f"{name} failed to initialise: {error.get('errorType')}: {error.get('errorMessage')}")
        if self.background:
            self.sqs.start()
            self.schedules.start(self.schedule_scale)

    def _start_proxies(self, template: ResolvedTemplate) -> None:
        dynamodb = CountingProxy(self.dynamodb_endpoint, self.requests, "dynamodb").start()
        for table in template.tables.values():
            attributes = [k["AttributeName"] for k in table.definition.get("KeySchema", []) if k["KeyType"] == "HASH"]
            for index in table.definition.get("GlobalSecondaryIndexes", []):
                attributes += [k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH"]
            dynamodb.key_attributes[table.name] = tuple(dict.fromkeys(attributes))
        self._proxies = {"dynamodb": dynamodb, "aws": CountingProxy(self.aws_endpoint, self.requests, "aws").start()}

    def _overrides(self) -> dict[str, str]:
        assert self.http is not None
        declared = self.source.data.get("Parameters") or {}
        candidates: dict[str, str] = {
            "Stage": "local",
            "PublicBaseUrl": self.http.url,
            "JwtIssuer": f"{self.http.url}{ISSUER_PATH}",
        }
        if self.google is not None:
            endpoints = self.google.endpoints
            candidates.update(
                {
                    "GoogleClientId": GOOGLE_CLIENT_ID,
                    "GoogleAuthUri": endpoints["auth_uri"],
                    "GoogleTokenUri": endpoints["token_uri"],
                    "GoogleRevokeUri": endpoints["revoke_uri"],
                    "GoogleCertsUri": endpoints["certs_uri"],
                    "GoogleIssuers": self.google.issuer,
                    "GoogleApiRoot": self.google.base_url,
                    # Contacts and email are asked for only by "Enable Google Sync" and "Email
                    # (2-way sync)" (incremental consent).
                    "GoogleFeatures": "calendar,contacts,email",
                    # Gmail's pushes: the emulator's Pub/Sub subscription posts them to the
                    # webhook, signed for this audience as this account.
                    "GmailTopic": GMAIL_TOPIC,
                    "GmailPushAudience": f"{self.http.url}{GMAIL_PUSH_PATH}",
                    "GmailPushServiceAccount": GMAIL_PUSH_SERVICE_ACCOUNT,
                }
            )
        else:
            candidates["GoogleClientId"] = GOOGLE_CLIENT_ID
        if self.microsoft is not None:
            candidates.update(
                {
                    "MicrosoftClientId": MICROSOFT_CLIENT_ID,
                    "MicrosoftAuthority": self.microsoft.authority("common"),
                    "MicrosoftGraphRoot": f"{self.microsoft.base_url}/v1.0",
                }
            )
        if self.caldav is not None:
            # The local CalDAV server stands in for iCloud; it is on loopback, which only the
            # local stack may reach.
            candidates.update({"CaldavBaseUrl": self.caldav.base_url, "CaldavPrivateServers": "true"})
        overrides = {name: value for name, value in candidates.items() if name in declared}
        overrides.update(self.parameter_overrides)
        return overrides

    def seed_microsoft(self) -> list[dict[str, Any]]:
        """The Microsoft emulator's demo users (work, personal, one whose organisation needs
        admin consent), each with an Outlook mailbox and its default calendar; again after a
        reset of the emulator."""
        assert self.microsoft is not None
        self.microsoft_accounts = self.microsoft.seed_demo_users()
        for user in self.microsoft_accounts:
            self.microsoft_graph.add_user(user["email"], user.get("name"))
        return self.microsoft_accounts

    def _subscribe_gmail_pushes(self) -> None:
        """The push subscription of Gmail's topic, as a deployer creates it in Cloud Pub/Sub
        (through the emulator's control API): the webhook's URL, the audience and service
        account the function checks."""
        assert self.http is not None
        assert self.google is not None
        body = {
            "topicName": self._parameters["GmailTopic"],
            "pushEndpoint": f"{self.http.url}{GMAIL_PUSH_PATH}",
            "audience": self._parameters.get("GmailPushAudience", ""),
            "serviceAccountEmail": self._parameters.get("GmailPushServiceAccount", ""),
            "name": "crmsync-gmail-push",
        }
        request = urllib.request.Request(  # noqa: S310 - the emulator on loopback
            f"{self.google.base_url}/_emulator/gmail/subscriptions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - as above
            answer.read()
        self.log(f"gmail pushes: {body['topicName']} -> {body['pushEndpoint']} (as {body['serviceAccountEmail']})")

    def stop(self) -> None:
        """Stop everything that started (idempotent)."""
        if self.sqs is not None:
            self.sqs.stop()
        if self.schedules is not None:
            self.schedules.stop()
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None
        if self.async_lambda is not None:
            self.async_lambda.stop()
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.lambdas.close()
        for proxy in self._proxies.values():
            proxy.stop()
        self._proxies = {}
        if self.google is not None:
            self.google.stop()
            self.google = None
        if self.caldav is not None:
            self.caldav.stop()
            self.caldav = None
        if self.microsoft is not None:
            self.microsoft.stop()
            self.microsoft = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.dynamodb is not None:
            self.dynamodb.stop()
            self.dynamodb = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def template(self) -> ResolvedTemplate:
        """The template resolved against this stack."""
        if self._template is None:
            raise RuntimeError("the stack is not started")
        return self._template

    @property
    def parameters(self) -> dict[str, str]:
        """The parameter values in force."""
        return dict(self._parameters)

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API (no trailing slash)."""
        if self.http is None:
            raise RuntimeError("the stack is not started")
        return self.http.url

    @property
    def aws_endpoint(self) -> str:
        """moto's endpoint."""
        if self.moto is None:
            raise RuntimeError("the stack is not started")
        return self.moto.endpoint

    @property
    def smtp_port(self) -> int:
        """The port of the local SES's SMTP server on 127.0.0.1."""
        if self.smtp is None:
            raise RuntimeError("no SMTP server: the stack is not started or its template has no SES receipt rule")
        return self.smtp.port

    @property
    def dynamodb_endpoint(self) -> str:
        """DynamoDB Local's endpoint."""
        if self.external_dynamodb is not None:
            return self.external_dynamodb
        if self.dynamodb is None:
            raise RuntimeError("the stack is not started")
        return self.dynamodb.endpoint

    # ------------------------------------------------------------------ verbs

    def aws_client(self, service: str) -> Any:
        """A boto3 client at the local endpoint of `service`."""
        endpoint = self.dynamodb_endpoint if service == "dynamodb" else self.aws_endpoint
        return aws_client(service, endpoint, self.region)

    def issue_token(self, tenant_id: str, user_id: str, ttl: int = 3600, **claims: Any) -> str:
        """A bearer JWT the stack's JWT authorizer accepts."""
        if self.issuer is None:
            raise RuntimeError("the stack is not started")
        return self.issuer.issue_token(tenant_id, user_id, ttl, **claims)

    def invoke(self, function: str, event: Any) -> InvocationResult:
        """Invoke a function by logical id (synchronously, like RequestResponse)."""
        return self.lambdas.invoke(function, event)

    def drain(self, timeout: float = 30.0) -> DrainReport:
        """Deliver SQS messages until the source queues are empty and nothing is in flight."""
        if self.sqs is None:
            raise RuntimeError("the stack is not started")
        return self.sqs.drain(timeout)

    def fire(self, schedule: str, at: datetime | None = None) -> InvocationResult:
        """Fire a schedule by name, event logical id or `Function.Event`, as scheduled for
        `at` (default now)."""
        if self.schedules is None:
            raise RuntimeError("the stack is not started")
        return self.schedules.fire(schedule, at)

    def fire_ticks(self, schedule: str, ticks: int) -> list[InvocationResult]:
        """Fire a rate() schedule as scheduled for ``ticks`` consecutive periods from now: a
        sweep that takes one slot of the accounts per tick (crmsync.domain.sweeps) visits all
        of them in a round (72 ticks for the health check, 12 mail, 3 contacts)."""
        if self.schedules is None:
            raise RuntimeError("the stack is not started")
        period = rate_seconds(self.schedules.find(schedule).expression) or 300
        start = datetime.now(UTC)
        return [self.schedules.fire(schedule, start + timedelta(seconds=i * period)) for i in range(max(1, ticks))]

    def deliver_mail(
        self,
        raw: bytes,
        mail_from: str,
        rcpt_to: Sequence[str],
        verdicts: Mapping[str, str] | None = None,
    ) -> ReceivedMail:
        """Hand a message to the local SES as SMTP would (recipients no rule matches are refused).

        The rules' Lambda actions run asynchronously: `mail_drain` waits for them.
        """
        if self.ses is None:
            raise RuntimeError("no local SES: the stack is not started or its template has no SES receipt rule")
        return self.ses.receive(raw, mail_from, rcpt_to, verdicts)

    def mail_drain(self, timeout: float = 30.0) -> list[AsyncDelivery]:
        """Wait for every queued asynchronous invocation (SES's Lambda actions) and its retries.

        Returns the deliveries finished since the previous call: `source_id` is the SES message id.
        """
        if self.async_lambda is None:
            raise RuntimeError("the stack is not started")
        return self.async_lambda.drain(timeout)

    def set_ses_verdicts(self, verdicts: Mapping[str, str]) -> dict[str, str]:
        """Set the verdicts of every message from now on (unnamed ones PASS). Returns them all."""
        if self.ses is None:
            raise RuntimeError("no local SES: the stack is not started or its template has no SES receipt rule")
        self.ses.verdicts = verdict_settings(verdicts)
        self.ses_verdicts = dict(verdicts)
        return dict(self.ses.verdicts)

    def bus_events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Every event put on the template's buses so far (of `bus_tap_sources`), oldest first.

        Each is the full EventBridge envelope (id, source, detail-type, time, account, region,
        resources, detail as a dict), as a rule target receives it.
        """
        if self._bus_tap_url is None:
            raise RuntimeError("no event bus: the stack is not started or its template has none")
        sqs = self.aws_client("sqs")
        with self._bus_lock:
            while True:
                messages = sqs.receive_message(QueueUrl=self._bus_tap_url, MaxNumberOfMessages=10).get("Messages")
                if not messages:
                    break
                for message in messages:
                    event = json.loads(message["Body"])
                    # EventBridge always sets `account`; moto leaves it out of SQS targets' copies.
                    event.setdefault("account", self.account_id)
                    self._bus_events.append(event)
                sqs.delete_message_batch(
                    QueueUrl=self._bus_tap_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            return [e for e in self._bus_events if detail_type is None or e.get("detail-type") == detail_type]

    def function_environment(self, logical_id: str, table_prefix: str | None = None) -> dict[str, str]:
        """The environment a worker of `logical_id` gets (minus PATH/LANG/TZ).

        With `table_prefix`, table names are resolved under that prefix instead (for
        in-process tests on their own tables).
        """
        template = self.template
        if table_prefix is not None and table_prefix != self.table_prefix:
            assert self._context is not None
            template = self.source.resolve(self._parameters, replace(self._context, table_prefix=table_prefix))
        function = template.functions[logical_id]
        env = dict(function.environment)
        stream = self._log_streams.setdefault(logical_id, f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}")
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ENDPOINT_URL": self._function_endpoint("aws", self.aws_endpoint),
                "AWS_ENDPOINT_URL_DYNAMODB": self._function_endpoint("dynamodb", self.dynamodb_endpoint),
                "LAMBDA_TASK_ROOT": str(function.code_uri),
                "_HANDLER": function.handler,
                **DUMMY_AWS_ENV,
            }
        )
        if self.google is not None and self.google.base_url.startswith("http://"):
            # The emulator speaks plain HTTP on loopback; oauthlib refuses that unless told.
            env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        if self.microsoft is not None:
            # MSAL verifies TLS with requests, which takes REQUESTS_CA_BUNDLE over the Session's
            # verify= (docs/MICROSOFT.md): the trust bundle is the usual CAs plus the emulator's,
            # and CURL_CA_BUNDLE (which requests also reads) must not point elsewhere.
            env["REQUESTS_CA_BUNDLE"] = str(self.microsoft.trust_bundle)
            env.pop("CURL_CA_BUNDLE", None)
        return env

    def _function_endpoint(self, kind: str, endpoint: str) -> str:
        proxy = self._proxies.get(kind)
        return proxy.endpoint if proxy is not None else endpoint

    def worker_environment(self, logical_id: str) -> dict[str, str]:
        """`function_environment` plus the process basics a Lambda runtime has."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
        }
        if "PYTHONDONTWRITEBYTECODE" in os.environ:
            env["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
        # A faked clock (libfaketime, `make test-at`) reaches the workers too: the whole stack
        # then lives at one date, as the deployed one lives at the real one.
        env.update(clock_variables(os.environ))
        env.update(self.function_environment(logical_id))
        return env

    # ------------------------------------------------------------------ control API

    def _control(self, request: Request) -> Response | None:
        path = request.path[len(DEVSTACK_PREFIX) :]
        method = request.method
        if path.startswith(ISSUER_PATH[len(DEVSTACK_PREFIX) :] + "/") and self.issuer is not None:
            subpath = path[len(ISSUER_PATH) - len(DEVSTACK_PREFIX) :]
            if method == "POST" and subpath == "/token":
                body = request.get_json(force=True, silent=True) or {}
                token = self.issue_token(
                    str(body["tenant_id"]),
                    str(body["user_id"]),
                    int(body.get("ttl", 3600)),
                    **(body.get("claims") or {}),
                )
                return _json(200, {"token": token})
            status, document = self.issuer.handle(subpath)
            return _json(status, document)
        if method == "GET" and path == "/health":
            ready = self._template is not None
            return _json(
                200 if ready else 503,
                {"status": "ok" if ready else "starting", "pid": os.getpid(), "functions": sorted(self.lambdas.pools)},
            )
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "schedules" and parts[2] == "fire":
            body = request.get_json(force=True, silent=True)
            ticks = body.get("ticks", 1) if isinstance(body, dict) else 1
            if isinstance(ticks, bool) or not isinstance(ticks, int) or not 1 <= ticks <= MAX_FIRED_TICKS:
                return _json(400, {"message": f"ticks: a whole number from 1 to {MAX_FIRED_TICKS}"})
            try:
                results = self.fire_ticks(parts[1], ticks)
            except KeyError as exc:
                return _json(404, {"message": str(exc)})
            return _json(200, _result_document(results[-1]) | {"ticks": [_result_document(r) for r in results]})
        if method == "POST" and len(parts) == 3 and parts[0] == "functions" and parts[2] == "invoke":
            if parts[1] not in self.lambdas.pools:
                return _json(404, {"message": f"unknown function {parts[1]}"})
            event = json.loads(request.get_data() or b"{}")
            return _json(200, _result_document(self.invoke(parts[1], event)))
        if path == "/ses/verdicts" and self.ses is not None:
            if method == "POST":
                try:
                    return _json(200, self.set_ses_verdicts(request.get_json(force=True, silent=True) or {}))
                except (ValueError, AttributeError) as exc:
                    return _json(400, {"message": str(exc)})
            if method == "GET":
                return _json(200, self.ses.verdicts)
        if method == "POST" and path == "/sqs/drain":
            report = self.drain()
            return _json(200, {"batches": report.batches, "messages": report.messages, "deleted": report.deleted})
        return None


def _result_document(result: InvocationResult) -> dict[str, Any]:
    return {
        "function": result.function,
        "requestId": result.request_id,
        "ok": result.ok,
        "payload": result.payload,
        "error": result.error,
        "initMs": result.init_ms,
        "durationMs": result.duration_ms,
    }


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
