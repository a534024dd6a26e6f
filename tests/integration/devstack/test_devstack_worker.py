"""The Lambda runtime stand-in: environment, context, isolation, errors, cold starts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from devstack.runtime.pool import FunctionPool, LambdaService
from devstack.stack import Stack
from devstack.template import Function

pytestmark = pytest.mark.integration


def invoke_echo(stack: Stack, path: str = "/worker") -> dict[str, Any]:
    result = stack.invoke("EchoFunction", {"rawPath": path})
    assert result.ok, result.error
    document: dict[str, Any] = json.loads(result.payload["body"])
    return document


def test_function_cannot_import_devstack_and_sees_its_code_and_layer_first(runtime_stack: Stack) -> None:
    document = invoke_echo(runtime_stack)
    function = runtime_stack.template.functions["EchoFunction"]
    assert document["devstack_importable"] is False
    assert document["sys_path"][0] == str(function.code_uri)
    assert str(function.layers[0]) in document["sys_path"]
    assert str(function.layers[0] / "python") in document["sys_path"]
    assert document["layer_value"] == "from-the-layer"
    assert not any(p.rstrip("/").endswith("devstack/runtime") for p in document["sys_path"])


def test_worker_gets_the_resolved_environment(runtime_stack: Stack) -> None:
    env = invoke_echo(runtime_stack)["env"]
    assert env["ITEMS_TABLE"] == "rt_ItemsTable"
    assert env["MODE"] == "development"  # !If on a false condition
    assert env["STAGE"] == "local"
    assert env["KEY_ALIAS"] == "alias/fixture-local"
    assert env["FUNCTION_ROLE"] == "echo"  # function variables merged with Globals
    assert env["WORK_QUEUE_URL"] == runtime_stack.template.queues["WorkQueue"].url
    assert env["AWS_ENDPOINT_URL"] == runtime_stack.aws_endpoint
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == runtime_stack.dynamodb_endpoint
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "DEVSTACK_WORKER_CONFIG" not in env
    expected = runtime_stack.function_environment("EchoFunction")
    assert {k: env.get(k) for k in expected} == expected


def test_function_environment_with_another_table_prefix(runtime_stack: Stack) -> None:
    env = runtime_stack.function_environment("EchoFunction", table_prefix="other_")
    assert env["ITEMS_TABLE"] == "other_ItemsTable"


def test_context_object(runtime_stack: Stack) -> None:
    context = invoke_echo(runtime_stack)["context"]
    assert context["function_name"] == "crmsync-local-EchoFunction"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"].endswith(":function:crmsync-local-EchoFunction")
    assert context["memory_limit_in_mb"] == 256
    assert context["log_group_name"] == "/aws/lambda/crmsync-local-EchoFunction"
    assert context["log_stream_name"]
    assert 0 < context["remaining_ms"] <= 5000


def test_function_output_goes_to_the_logs_not_the_protocol(runtime_stack: Stack) -> None:
    invoke_echo(runtime_stack, "/print-me")
    assert "echo-print-marker /print-me" in runtime_stack.logs.lines("EchoFunction")


def test_handler_error_is_a_result_and_the_worker_survives(runtime_stack: Stack) -> None:
    result = runtime_stack.invoke("FailFunction", {})
    assert not result.ok
    assert result.error is not None
    assert result.error["errorType"] == "FixtureBoomError"
    assert result.error["errorMessage"] == "the fixture function failed on purpose"
    assert any("fail/app.py" in frame for frame in result.error["stackTrace"])
    assert not any("worker.py" in frame for frame in result.error["stackTrace"])
    pids_before = runtime_stack.lambdas.pool("FailFunction").worker_pids()
    again = runtime_stack.invoke("FailFunction", {})
    assert not again.ok
    assert again.init_ms is None  # warm: the same execution environment
    assert runtime_stack.lambdas.pool("FailFunction").worker_pids() == pids_before


def test_cold_start_reports_init_once(runtime_stack: Stack) -> None:
    first = runtime_stack.invoke("ScheduledFunction", {"n": 1})
    second = runtime_stack.invoke("ScheduledFunction", {"n": 2})
    assert first.ok
    assert second.ok
    assert second.payload == {"n": 2}
    assert second.init_ms is None
    assert any("Init Duration" in line for line in runtime_stack.logs.lines("ScheduledFunction"))


def test_a_cold_start_does_not_count_against_the_function_timeout(runtime_stack: Stack) -> None:
    """Lambda runs an environment's init before the invocation, against its own limit: a
    1.5 s import of a function whose Timeout is 1 s is slow, not a timeout (under load, the
    local stack otherwise killed each cold worker and started another cold one)."""
    cold = runtime_stack.invoke("SlowInitFunction", {})
    assert cold.ok, cold.error
    assert cold.init_ms is not None
    assert cold.init_ms >= 1500
    warm = runtime_stack.invoke("SlowInitFunction", {})
    assert warm.ok
    assert warm.init_ms is None
    assert warm.payload == cold.payload  # the same environment, kept


def test_workers_are_separate_processes(runtime_stack: Stack) -> None:
    assert invoke_echo(runtime_stack)["pid"] != os.getpid()


def test_unknown_function(runtime_stack: Stack) -> None:
    with pytest.raises(KeyError, match="EchoFunction"):
        runtime_stack.invoke("NoSuchFunction", {})


# A handler whose import waits until the test opens its gate (a FIFO): a cold start exactly
# as long as the test wants, without sleeping.
GATED_HANDLER = """
import os

with open(os.environ["GATE"]) as gate:
    gate.read()


def handler(event, context):
    return {"warm": True}
"""


def gated_pool(tmp_path: Path, lines: list[str]) -> tuple[FunctionPool, Path]:
    code = tmp_path / "gated"
    code.mkdir()
    (code / "app.py").write_text(GATED_HANDLER)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    function = Function("GatedFunction", "gated", code, "app.handler", "python3.11", 1, 128, {}, (), {})
    env = {**os.environ, "GATE": str(gate), "AWS_LAMBDA_LOG_STREAM_NAME": "gated"}
    return FunctionPool(function, env, "arn:aws:lambda:us-east-1:123456789012:function:gated", lines.append), gate


def test_a_slow_start_up_waits_for_the_handler_and_says_so(tmp_path: Path) -> None:
    """`make dev` warms every function at once; on a busy machine an import outlasts the
    function's Timeout and Lambda's 10 s init limit. That is not a failure: the warm-up says
    the function is still starting, waits, and keeps the warmed worker."""
    lines: list[str] = []
    pool, gate = gated_pool(tmp_path, lines)
    heard: list[float] = []

    def still_starting(waited: float) -> None:
        heard.append(waited)
        with open(gate, "w") as opened:  # let the import finish only now
            opened.write("go")

    try:
        error = pool.prewarm(patience=0.0, on_slow=still_starting)
        assert error is None
        assert len(heard) == 1
        assert len(pool.worker_pids()) == 1  # the warmed worker is kept
        result = pool.invoke({})
        assert (result.ok, result.payload, result.init_ms) == (True, {"warm": True}, None)
    finally:
        pool.close()


def test_a_start_up_that_never_finishes_is_given_up_with_a_clear_error(tmp_path: Path) -> None:
    pool, _ = gated_pool(tmp_path, [])  # the gate never opens: a hung import
    try:
        error = pool.prewarm(patience=0.0, limit=0.0)
        assert error == {"errorType": "Sandbox.Timedout", "errorMessage": "init did not finish within 0 s"}
        assert pool.worker_pids() == []
    finally:
        pool.close()


def test_the_warm_up_names_each_function_still_starting(tmp_path: Path) -> None:
    service = LambdaService()
    pool, gate = gated_pool(tmp_path, [])
    service.pools["GatedFunction"] = pool
    heard: list[str] = []

    def still_starting(function: str, waited: float) -> None:
        heard.append(function)
        with open(gate, "w") as opened:
            opened.write("go")

    try:
        assert service.prewarm(on_slow=still_starting, patience=0.0) == {}
        assert heard == ["GatedFunction"]
    finally:
        service.close()
