"""Cold-start import cost of every handler: fresh interpreters, median of several runs.

Each run imports the handler module exactly as the Lambda runtime (and the local runtime)
does: the function's CodeUri and the layer on sys.path, the function's environment set.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Modules whose presence in a handler's import graph is worth reporting (heavy, and not
#: needed by every trigger).
WATCHED = ("googleapiclient.discovery", "aws_xray_sdk", "oauthlib", "google_auth_oauthlib", "mailparser", "pydantic")

_PROBE = r"""
import sys, time, json
t0 = time.perf_counter()
import app
elapsed = time.perf_counter() - t0
watched = {m: (m in sys.modules) for m in json.loads(sys.argv[1])}
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
class ImportFigure:
    function: str
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int
    modules: int
    watched: dict[str, bool]


def measure(function: str, runs: int = 7) -> ImportFigure:
    code_uri = ROOT / "functions" / function
    skip = ("AWS_ENDPOINT_URL", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")  # any value of the last one stops .pyc
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(FAKE_ENV, POWERTOOLS_SERVICE_NAME=function)
    env["PYTHONPATH"] = os.pathsep.join([str(code_uri), str(ROOT / "layers")])
    # One untimed run warms the OS page cache and writes .pyc files, as the layer ships them
    # (layers/Makefile compiles it: /opt is read-only in Lambda).
    samples: list[float] = []
    last: dict[str, object] = {}
    for i in range(runs + 1):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, json.dumps(WATCHED)],
            cwd=code_uri,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        last = json.loads(out.stdout.strip().splitlines()[-1])
        if i:
            samples.append(float(last["seconds"]) * 1000)  # type: ignore[arg-type]
    return ImportFigure(
        function=function,
        median_ms=statistics.median(samples),
        min_ms=min(samples),
        max_ms=max(samples),
        runs=runs,
        modules=int(last["modules"]),  # type: ignore[call-overload]
        watched=dict(last["watched"]),  # type: ignore[call-overload]
    )


def functions() -> list[str]:
    return sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
