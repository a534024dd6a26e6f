"""The other AWS APIs: moto in server mode on loopback, and the template's resources in it.

Everything is created through ordinary boto3 clients with `endpoint_url` and dummy
credentials, exactly as deployed code would reach AWS.
"""

from __future__ import annotations

import json
import secrets as random_secrets
import string
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config

from devstack.dynamodb_local import DUMMY_KEY, free_port
from devstack.template import Bucket, EventBus, Key, Queue, ResolvedTemplate, Secret

__all__ = [
    "BUS_TAP_NAME",
    "MotoServer",
    "aws_client",
    "create_buckets",
    "create_bus_tap",
    "create_buses",
    "create_keys",
    "create_queues",
    "create_secrets",
]

BUS_TAP_NAME = "devstack-bus-tap"


def aws_client(service: str, endpoint: str, region: str = "us-east-1") -> Any:
    """A boto3 client for `service` at a local endpoint, with dummy credentials."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=region,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=60),
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
    )


_CHILD = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address=sys.argv[1], port=int(sys.argv[2]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # serve until the parent closes our stdin (or dies)
server.stop()
"""


class MotoServer:
    """moto's ThreadedMotoServer on 127.0.0.1.

    By default it runs in a child process: its state then cannot be reset by a `mock_aws` used
    elsewhere in the parent (tests), and its request handling does not compete for the parent's
    GIL. `in_process=True` runs it in a thread of this process instead.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", in_process: bool = False) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.in_process = in_process
        self._thread_server: Any = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL of every moto service."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        """Start serving; returns once the socket is bound."""
        if self.in_process:
            from moto.server import ThreadedMotoServer

            self._thread_server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
            self._thread_server.start()
            return self
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, self.host, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        ready = threading.Event()

        stdout = self._process.stdout

        def wait_line() -> None:
            if stdout.readline().strip() == "ready":
                ready.set()

        waiter = threading.Thread(target=wait_line, daemon=True)
        waiter.start()
        waiter.join(timeout)
        if not ready.is_set():
            self.stop()
            raise RuntimeError(f"moto did not start on {self.endpoint} within {timeout}s")
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._thread_server is not None:
            self._thread_server.stop()
            self._thread_server = None
        if self._process is not None:
            process, self._process = self._process, None
            try:
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def create_queues(
    endpoint: str,
    queues: Mapping[str, Queue],
    region: str = "us-east-1",
    visibility_timeout: int | None = None,
) -> dict[str, str]:
    """Create the queues (DLQs first); `visibility_timeout` overrides every queue's. Returns urls."""
    client = aws_client("sqs", endpoint, region)
    ordered = sorted(queues.values(), key=lambda q: q.dead_letter_queue is not None)
    urls: dict[str, str] = {}
    for queue in ordered:
        attributes: dict[str, str] = {
            "VisibilityTimeout": str(queue.visibility_timeout if visibility_timeout is None else visibility_timeout)
        }
        if queue.fifo:
            attributes["FifoQueue"] = "true"
            attributes["ContentBasedDeduplication"] = "true" if queue.content_based_deduplication else "false"
        if queue.message_retention_period is not None:
            attributes["MessageRetentionPeriod"] = str(queue.message_retention_period)
        if queue.delay_seconds is not None:
            attributes["DelaySeconds"] = str(queue.delay_seconds)
        if queue.dead_letter_queue is not None:
            dlq = queues[queue.dead_letter_queue]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": queue.max_receive_count}
            )
        urls[queue.logical_id] = client.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
    return urls


def create_keys(endpoint: str, keys: Mapping[str, Key], region: str = "us-east-1") -> dict[str, str]:
    """Create the KMS keys and their aliases. Returns logical id -> key id."""
    client = aws_client("kms", endpoint, region)
    ids: dict[str, str] = {}
    for key in keys.values():
        kwargs: dict[str, Any] = {"Description": key.description, "KeySpec": key.key_spec, "KeyUsage": key.key_usage}
        if key.policy is not None:
            kwargs["Policy"] = json.dumps(key.policy)
        key_id = client.create_key(**kwargs)["KeyMetadata"]["KeyId"]
        for alias in key.aliases:
            client.create_alias(AliasName=alias, TargetKeyId=key_id)
        ids[key.logical_id] = key_id
    return ids


def secret_value(secret: Secret) -> str:
    """The value CloudFormation would store: SecretString, or a GenerateSecretString result."""
    if secret.secret_string is not None:
        return secret.secret_string
    spec = secret.generate or {}
    length = int(spec.get("PasswordLength", 32))
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation", False):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    alphabet = "".join(c for c in alphabet if c not in excluded)
    password = "".join(random_secrets.choice(alphabet) for _ in range(length))
    if "SecretStringTemplate" in spec and "GenerateStringKey" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)
    return password


def create_secrets(
    endpoint: str,
    secrets: Mapping[str, Secret],
    overrides: Mapping[str, str] | None = None,
    region: str = "us-east-1",
) -> dict[str, str]:
    """Create the secrets (value: override by logical id, else the template's). Returns ARNs."""
    client = aws_client("secretsmanager", endpoint, region)
    overrides = overrides or {}
    arns: dict[str, str] = {}
    for secret in secrets.values():
        value = overrides.get(secret.logical_id)
        if value is None:
            value = secret_value(secret)
        try:
            arn = client.create_secret(Name=secret.name, Description=secret.description, SecretString=value)["ARN"]
        except client.exceptions.ResourceExistsException:
            arn = client.put_secret_value(SecretId=secret.name, SecretString=value)["ARN"]
        arns[secret.logical_id] = arn
    return arns


def create_buckets(endpoint: str, buckets: Mapping[str, Bucket], region: str = "us-east-1") -> None:
    """Create the buckets (empty; policies, encryption and lifecycle are not emulated)."""
    client = aws_client("s3", endpoint, region)
    for bucket in buckets.values():
        if region == "us-east-1":
            client.create_bucket(Bucket=bucket.name)
        else:
            client.create_bucket(Bucket=bucket.name, CreateBucketConfiguration={"LocationConstraint": region})


def create_buses(endpoint: str, buses: Mapping[str, EventBus], region: str = "us-east-1") -> None:
    """Create the EventBridge buses."""
    client = aws_client("events", endpoint, region)
    for bus in buses.values():
        client.create_event_bus(Name=bus.name)


def create_bus_tap(
    endpoint: str, buses: Mapping[str, EventBus], sources: Sequence[str], region: str = "us-east-1"
) -> str:
    """A queue that receives every event of `sources` put on any of the buses. Returns its URL.

    A rule with an SQS target on each bus, as one would observe a bus in AWS: moto matches the
    pattern and delivers to the queue synchronously inside PutEvents.
    """
    sqs = aws_client("sqs", endpoint, region)
    url: str = sqs.create_queue(QueueName=BUS_TAP_NAME)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = aws_client("events", endpoint, region)
    for bus in buses.values():
        events.put_rule(Name=BUS_TAP_NAME, EventBusName=bus.name, EventPattern=json.dumps({"source": list(sources)}))
        events.put_targets(Rule=BUS_TAP_NAME, EventBusName=bus.name, Targets=[{"Id": "tap", "Arn": arn}])
    return url


def create_aws_resources(
    endpoint: str,
    template: ResolvedTemplate,
    secret_overrides: Mapping[str, str] | None = None,
    visibility_timeout: int | None = None,
    region: str = "us-east-1",
) -> dict[str, str]:
    """Create the template's queues, buckets, buses, keys and secrets.

    Returns the physical ids to bind (keys, secrets).
    """
    create_queues(endpoint, template.queues, region, visibility_timeout)
    create_buckets(endpoint, template.buckets, region)
    create_buses(endpoint, template.buses, region)
    physical = create_keys(endpoint, template.keys, region)
    physical.update(create_secrets(endpoint, template.secrets, secret_overrides, region))
    return physical
