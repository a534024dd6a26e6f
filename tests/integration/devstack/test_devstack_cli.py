"""`python -m devstack`: invoke on an ephemeral stack; token needs a running one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from devstack.stack import Stack
from tests.integration.devstack.conftest import ROOT, RUNTIME_TEMPLATE

pytestmark = pytest.mark.integration


def test_invoke_on_an_ephemeral_stack(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"job": "from-the-cli"}))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack",
            "--template",
            str(RUNTIME_TEMPLATE),
            "invoke",
            "ScheduledFunction",
            "--event",
            str(event),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"job": "from-the-cli"}
    assert "REPORT RequestId" in completed.stderr  # function logs go to stderr


def test_invoke_and_token_use_the_running_stack(tmp_path: Path, runtime_stack: Stack) -> None:
    state = {"pid": os.getpid(), "template": str(RUNTIME_TEMPLATE), "api_url": runtime_stack.api_url}
    (tmp_path / ".devstack").mkdir()
    (tmp_path / ".devstack" / "state.json").write_text(json.dumps(state))
    base = [sys.executable, "-m", "devstack", "--root", str(tmp_path), "--template", str(RUNTIME_TEMPLATE)]

    failed = subprocess.run(
        [*base, "invoke", "FailFunction"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"] == "FixtureBoomError"

    token = subprocess.run(
        [*base, "token", "--tenant", "t-cli", "--user", "u-cli"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert token.returncode == 0, token.stderr
    claims = jwt.decode(token.stdout.strip(), options={"verify_signature": False})
    assert (claims["tenant_id"], claims["sub"]) == ("t-cli", "u-cli")

    fired = subprocess.run(
        [*base, "fire", "Nightly"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert fired.returncode == 0, fired.stderr
    assert json.loads(fired.stdout) == {"job": "nightly", "full": True}


def test_token_without_a_running_stack(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "devstack", "--root", str(tmp_path), "token"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert "no running stack" in completed.stderr
