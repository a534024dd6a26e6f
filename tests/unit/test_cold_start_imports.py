"""What each handler loads at cold start (``import app`` in a fresh interpreter, with the
function's CodeUri and the layer on sys.path, as Lambda runs it). Not a timing: the modules
themselves. The heavy ones a trigger does not need stay out (docs/PERFORMANCE.md, "Cold-start
imports", has the times); what every request of the function needs is loaded at cold start,
not moved into the first request (which would only hide it from the import figure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmsync.web.routing import ROUTERS

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "PUBLIC_BASE_URL": "https://sync.example.com",
    "CONNECTIONS_TABLE": "connections",
    "OAUTH_STATES_TABLE": "states",
    "TOKEN_KEY_ID": "key",
    "SYNC_QUEUE_URL": "https://sqs.example.com/q.fifo",
    "GOOGLE_CLIENT_ID": "client",
    "GOOGLE_CLIENT_SECRET_ARN": "arn:secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: Never at any handler's cold start: Google's discovery client, X-Ray, the OAuth flow.
NOWHERE = ("googleapiclient.discovery", "aws_xray_sdk", "google_auth_oauthlib")
#: The webhooks authenticate and enqueue: no pydantic (their settings and message are plain),
#: no PynamoDB models (their one read and their marks use the low-level client), no provider
#: client, not the domain's dataclasses beyond the principal.
WEBHOOK_ABSENT = (
    *NOWHERE,
    "pydantic",
    "pynamodb.models",
    "crmsync.config",
    "crmsync.domain.objects",
    "crmsync.messaging.messages",
    "google.auth",
    "requests",
    "msal",
    # Their logger is the standard library's in powertools' format (crmsync.light_logging).
    "aws_lambda_powertools",
)
#: ...but what every notification needs is there: DynamoDB and SQS through botocore.
WEBHOOK_PRESENT = ("botocore.session", "crmsync.dal.notifications", "crmsync.light_logging")

FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
#: (absent, present) per function; every function: NOWHERE absent.
CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{function: (NOWHERE, ()) for function in FUNCTIONS},
    "google_webhook": (WEBHOOK_ABSENT, WEBHOOK_PRESENT),
    "graph_webhook": (WEBHOOK_ABSENT, WEBHOOK_PRESENT),
    # One route, read without powertools' resolver, logged and counted without powertools
    # (crmsync.light_logging, crmsync.metrics); the connect use case it always runs is there.
    "oauth_callback": (
        (*NOWHERE, "aws_lambda_powertools", "crmsync.api.integrations", "crmsync.api.schemas"),
        ("crmsync.logic.integrations", "crmsync.config", "pynamodb.models", "crmsync.metrics"),
    ),
    # Every batch: PynamoDB, the messages (pydantic), the FIFO partial batch response
    # (crmsync.batch, not powertools'); each kind of work's use cases on its first message.
    "sync_worker": (
        (
            *NOWHERE,
            "aws_lambda_powertools",
            "crmsync.logic.calendars",
            "crmsync.sync.calendar_sync",
            "crmsync.sync.contact_sync",
        ),
        ("pynamodb.models", "crmsync.messaging.messages", "crmsync.batch", "crmsync.metrics"),
    ),
    # The API imports a router on the first request it may serve (crmsync.web.routing).
    "api": (
        (*NOWHERE, *[module for module, _ in ROUTERS], "crmsync.app.wiring", "pynamodb.models"),
        ("crmsync.web.routing", "crmsync.api.http", "aws_lambda_powertools.event_handler"),
    ),
}


def loaded_at_cold_start(function: str, names: tuple[str, ...]) -> dict[str, bool]:
    code_uri = ROOT / "functions" / function
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONPATH"))}
    env.update(ENV, PYTHONPATH=os.pathsep.join([str(code_uri), str(ROOT / "layers")]))
    probe = "import json, sys\nimport app\nprint(json.dumps({m: m in sys.modules for m in sys.argv[1:]}))"
    out = subprocess.run(
        [sys.executable, "-c", probe, *names], cwd=code_uri, env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("function", sorted(CASES))
def test_a_handler_loads_what_its_trigger_needs_and_no_more(function: str) -> None:
    absent, present = CASES[function]
    loaded = loaded_at_cold_start(function, (*absent, *present))
    assert [m for m in absent if loaded[m]] == []
    assert [m for m in present if not loaded[m]] == []
