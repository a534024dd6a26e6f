"""While DynamoDB or SQS is unreachable, each webhook answers 503 with Retry-After and one logged
reason (Google and Graph retry their deliveries) instead of an unhandled error, API Gateway's
bare 500. Each handler runs in a fresh interpreter, as Lambda runs it, with real botocore
pointed at a loopback port nothing listens on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CALENDAR_PUSH = {
    "routeKey": "POST /webhooks/google/calendar",
    "rawPath": "/webhooks/google/calendar",
    "headers": {
        "x-goog-channel-id": "01234567-89ab-cdef-0123-456789abcdef",
        "x-goog-resource-id": "ret08u3rv24htgh289g",
        "x-goog-resource-state": "exists",
        "x-goog-message-number": "11",
        "x-goog-channel-token": "t" * 43,
    },
}
GRAPH_NOTIFICATION = {
    "routeKey": "POST /webhooks/microsoft/calendar",
    "rawPath": "/webhooks/microsoft/calendar",
    "headers": {"content-type": "application/json"},
    "body": json.dumps(
        {
            "value": [
                {
                    "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                    "clientState": "s" * 43,
                    "changeType": "updated",
                    "resource": "me/calendars/AAMk=/events/AAMkAG=",
                }
            ]
        }
    ),
    "isBase64Encoded": False,
}

_PROBE = r"""
import json, sys
import app
class Context:
    function_name = "outage"; memory_limit_in_mb = 256; aws_request_id = "r-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:outage"
print("ANSWER " + json.dumps(app.lambda_handler(json.loads(sys.argv[1]), Context())))
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _invoke(function: str, event: dict, tmp_path: Path) -> tuple[dict, str]:
    dead = f"http://127.0.0.1:{_closed_port()}"
    settings = tmp_path / "pynamodb_settings.py"
    settings.write_text("max_retry_attempts = 0\nconnect_timeout_seconds = 2\nread_timeout_seconds = 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONPATH", "PYNAMODB"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers")]),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL_DYNAMODB=dead,
        AWS_ENDPOINT_URL_SQS=dead,
        AWS_MAX_ATTEMPTS="1",
        PYNAMODB_CONFIG=str(settings),
        CONNECTIONS_TABLE="Connections",
        OAUTH_STATES_TABLE="OAuthStates",
        SYNC_QUEUE_URL=f"{dead}/123456789012/SyncQueue.fifo",
        POWERTOOLS_SERVICE_NAME=function,
    )
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(event)],
        cwd=ROOT / "functions" / function,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]  # answered, not crashed
    answer = next(line for line in run.stdout.splitlines() if line.startswith("ANSWER "))
    return json.loads(answer.removeprefix("ANSWER ")), run.stdout + run.stderr


@pytest.mark.parametrize(
    ("function", "event"), [("google_webhook", CALENDAR_PUSH), ("graph_webhook", GRAPH_NOTIFICATION)]
)
def test_a_webhook_answers_503_while_its_table_is_unreachable(function: str, event: dict, tmp_path: Path) -> None:
    answer, output = _invoke(function, event, tmp_path)
    assert answer == {"statusCode": 503, "headers": {"Retry-After": "30"}}
    (line,) = [json.loads(x) for x in output.splitlines() if x.startswith("{") and "unavailable" in x]
    assert (line["level"], line["error"]) == ("ERROR", "EndpointConnectionError")
    assert "t" * 43 not in output  # the channel token stays out
    assert "s" * 43 not in output  # and the client state
