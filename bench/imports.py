"""Cold-start import cost of every handler against the naive import set, in fresh interpreters.

Each run imports the handler module exactly as the Lambda runtime (and the local runtime)
does: the function's CodeUri and the layer on sys.path, the function's environment set.
The yardstick is the *naive import set* (issue 17): what a handler written without care for
its imports would load (powertools' logger and HTTP resolver, PynamoDB's models and
attributes, boto3, googleapiclient.discovery, google.oauth2.credentials). A bare interpreter
(the probe importing nothing) is the floor. Interpreters are started alternately in rounds
(bare, then the naive set before each handler), so that load from other work on the machine
hits the yardstick and the handlers alike; the ratio of medians is what is compared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Modules whose presence in a handler's import graph is worth reporting (heavy, and not
#: needed by every trigger).
WATCHED = (
    "googleapiclient.discovery",
    "aws_xray_sdk",
    "google_auth_oauthlib",
    "mailparser",
    "pydantic",
    "pynamodb.models",
    "boto3",
)

#: The naive import set of issue 17 §1.
NAIVE = (
    "from aws_lambda_powertools import Logger\n"
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
    "from pynamodb.models import Model\n"
    "from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute\n"
    "import boto3\n"
    "import googleapiclient.discovery\n"
    "import google.oauth2.credentials\n"
)
BARE = "pass\n"
#: What some functions cannot do without, measured like them: the floor under their ratio.
FLOORS = {
    "webhooks' floor: botocore and the standard library's logging": ("import botocore.session\nimport logging\n"),
    "oauth_callback's floor: PynamoDB, the pydantic settings": (
        "import logging\nimport pynamodb.models, pynamodb.attributes\nimport crmsync.config\n"
    ),
    "sync_worker's floor: PynamoDB, the queue messages (pydantic)": (
        "import logging\nimport pynamodb.models, pynamodb.attributes\nimport crmsync.messaging.messages\n"
    ),
}

#: Goals of issue 17 §1, as ratios to the naive set: the webhooks, every other function.
WEBHOOK_GOAL = 0.5
GOAL = 0.8
WEBHOOKS = frozenset({"google_webhook", "graph_webhook"})

# Only `time` (a built-in module, as `sys`) is imported before the clock starts: whatever the
# probe itself needed would be free for the code measured.
_PROBE = r"""
import sys, time
t0 = time.perf_counter()
exec(compile(sys.argv[1], "<measured>", "exec"))
elapsed = time.perf_counter() - t0
import json
watched = {m: (m in sys.modules) for m in json.loads(sys.argv[2])}
print(json.dumps({"seconds": elapsed, "modules": len(sys.modules), "watched": watched}))
"""

FAKE_ENV = {
    "STAGE": "bench",
    "PUBLIC_BASE_URL": "https://sync.example.com",
    "CONNECTIONS_TABLE": "ConnectionsTable",
    "OAUTH_STATES_TABLE": "OAuthStatesTable",
    "TOKEN_KEY_ID": "key",
    "SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/SyncQueue.fifo",
    "GOOGLE_CLIENT_ID": "client",
    "GOOGLE_CLIENT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "crmsync",
}


@dataclass(frozen=True)
class Target:
    """One thing imported in fresh interpreters: a function's handler, the naive set or nothing."""

    name: str
    code: str
    cwd: Path
    env: dict[str, str]


@dataclass(frozen=True)
class ImportFigure:
    name: str
    #: Median time of the measured imports inside the interpreter (the interpreter's own
    #: start is the same for every target and not in it).
    median_ms: float
    min_ms: float
    max_ms: float
    #: Median wall time of the whole process (start, imports, exit), seen from the parent.
    process_median_ms: float
    runs: int
    modules: int
    watched: dict[str, bool]


@dataclass(frozen=True)
class Contributor:
    """A top-level package (or the standard library) and its modules' own import time."""

    package: str
    ms: float


@dataclass(frozen=True)
class ImportRun:
    bare: ImportFigure
    naive: ImportFigure
    functions: list[ImportFigure]
    #: The FLOORS, measured as the functions are.
    floors: list[ImportFigure]
    rounds: int
    #: Per function, each round's (handler − bare) / (naive − bare) with the naive set run
    #: right next to the handler in that round (the same moment's load on the machine).
    paired: dict[str, list[float]]

    def ratio(self, figure: ImportFigure) -> float:
        """Import time above a bare interpreter, as a share of the naive set's: the median of
        the rounds' paired ratios (robust to load that comes and goes during the run)."""
        return statistics.median(self.paired[figure.name])

    def ratio_of_medians(self, figure: ImportFigure) -> float:
        """The same from the run's medians."""
        return (figure.median_ms - self.bare.median_ms) / (self.naive.median_ms - self.bare.median_ms)

    def process_ratio(self, figure: ImportFigure) -> float:
        """The same from the processes' wall times (start and exit included, then the bare
        interpreter's subtracted)."""
        return (figure.process_median_ms - self.bare.process_median_ms) / (
            self.naive.process_median_ms - self.bare.process_median_ms
        )


def _env(function: str | None) -> dict[str, str]:
    skip = ("AWS_ENDPOINT_URL", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")  # any value of the last one stops .pyc
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(FAKE_ENV, POWERTOOLS_SERVICE_NAME=function or "naive")
    paths = [str(ROOT / "functions" / function)] if function else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT / "layers")])
    return env


def handler_target(function: str) -> Target:
    return Target(function, "import app\n", ROOT / "functions" / function, _env(function))


def naive_target() -> Target:
    return Target("naive", NAIVE, ROOT / "functions", _env(None))


def bare_target() -> Target:
    return Target("bare", BARE, ROOT / "functions", _env(None))


def floor_targets() -> list[Target]:
    return [Target(name, code, ROOT / "functions", _env(None)) for name, code in FLOORS.items()]


def _once(target: Target) -> tuple[float, float, dict[str, object]]:
    """(import seconds inside, process wall seconds, the probe's report)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, target.code, json.dumps(WATCHED)],
        cwd=target.cwd,
        env=target.env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return float(report["seconds"]), wall, report


def _figure(name: str, inside: list[float], walls: list[float], last: dict[str, object]) -> ImportFigure:
    return ImportFigure(
        name=name,
        median_ms=statistics.median(inside) * 1000,
        min_ms=min(inside) * 1000,
        max_ms=max(inside) * 1000,
        process_median_ms=statistics.median(walls) * 1000,
        runs=len(inside),
        modules=int(last["modules"]),  # type: ignore[call-overload]
        watched=dict(last["watched"]),  # type: ignore[call-overload]
    )


def measure(functions: list[str], rounds: int = 21, *, floors: bool = True) -> ImportRun:
    """``rounds`` rounds after one untimed warm-up round (page cache warm, ``.pyc`` written, as
    the layer ships them: layers/Makefile compiles it, /opt is read-only in Lambda). Each round:
    the bare interpreter, then the naive set before each handler in turn."""
    bare, naive = bare_target(), naive_target()
    handlers = [handler_target(f) for f in functions] + (floor_targets() if floors else [])
    inside: dict[str, list[float]] = defaultdict(list)
    walls: dict[str, list[float]] = defaultdict(list)
    last: dict[str, dict[str, object]] = {}
    paired: dict[str, list[float]] = defaultdict(list)
    order = [bare, *[t for h in handlers for t in (naive, h)]]
    for i in range(rounds + 1):
        # Forward, the naive set runs just before each handler; backward, just after.
        times: list[tuple[str, float]] = []
        for target in order if i % 2 else reversed(order):
            seconds, wall, report = _once(target)
            last[target.name] = report
            times.append((target.name, seconds))
            if i:
                inside[target.name].append(seconds)
                walls[target.name].append(wall)
        if i:
            bare_s = dict(times)["bare"]
            for at, (name, seconds) in enumerate(times):
                if name not in ("bare", "naive"):
                    neighbour = times[at - 1] if i % 2 else times[at + 1]
                    paired[name].append((seconds - bare_s) / (neighbour[1] - bare_s))
    return ImportRun(
        bare=_figure("bare", inside["bare"], walls["bare"], last["bare"]),
        naive=_figure("naive", inside["naive"], walls["naive"], last["naive"]),
        functions=[
            _figure(h.name, inside[h.name], walls[h.name], last[h.name]) for h in handlers if h.name not in FLOORS
        ],
        floors=[_figure(h.name, inside[h.name], walls[h.name], last[h.name]) for h in handlers if h.name in FLOORS],
        rounds=rounds,
        paired=dict(paired),
    )


def _package(module: str) -> str | None:
    """The module's top-level package; None for the standard library."""
    top = module.strip().split(".")[0]
    return None if top in sys.stdlib_module_names or top.startswith("_") else top


def contributors(target: Target, top: int = 4) -> list[Contributor]:
    """Where a handler's import time goes, from ``python -X importtime`` (one run after a
    warm one): each module's own time, summed per top-level package; a standard-library
    module counts for the package that imported it (``http.client`` under urllib3 is
    urllib3's cost), or as "standard library" when the handler's own code did."""
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", target.code],
            cwd=target.cwd,
            env=target.env,
            capture_output=True,
            text=True,
            check=True,
        )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, module = line.removeprefix("import time:").split("|")
        depth = (len(module) - len(module.lstrip(" "))) // 2
        rows.append((depth, int(own) / 1000, module.strip()))
    # importtime prints a module after the modules it imported, one level deeper: read
    # backwards, each module's importer is the nearest shallower one above it.
    totals: dict[str, float] = defaultdict(float)
    stack: list[tuple[int, str | None]] = []
    for depth, ms, module in reversed(rows):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        owner = _package(module) or (stack[-1][1] if stack else None)
        totals[owner or "standard library"] += ms
        stack.append((depth, owner))
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [Contributor(package, ms) for package, ms in ranked]


def functions() -> list[str]:
    return sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
