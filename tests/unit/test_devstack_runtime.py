"""Pure parts of the local runtime: routing, events, response mapping, SQS and schedule rules."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from devstack.runtime.httpapi import (
    HttpApiServer,
    RouteMatch,
    build_event,
    claim_text,
    is_text,
    match_route,
    to_response,
)
from devstack.runtime.schedules import rate_seconds, scheduled_event
from devstack.runtime.sqs import build_sqs_event, failed_message_ids, lambda_message_attributes
from devstack.template import HttpRoute, Schedule


def route(method: str, path: str) -> HttpRoute:
    return HttpRoute("Api", method, path, "Fn", f"{method}{path}", None)


ROUTES = [
    route("GET", "/pets"),
    route("GET", "/pets/{id}"),
    route("GET", "/pets/dog"),
    route("ANY", "/pets/dog"),
    route("ANY", "/{proxy+}"),
    route("POST", "/pets/{id}/toys/{toy}"),
]


@pytest.mark.parametrize(
    ("method", "path", "expected", "params"),
    [
        ("GET", "/pets", "GET /pets", {}),
        ("GET", "/pets/dog", "GET /pets/dog", {}),
        ("DELETE", "/pets/dog", "ANY /pets/dog", {}),
        ("GET", "/pets/cat", "GET /pets/{id}", {"id": "cat"}),
        ("GET", "/pets/a%20b", "GET /pets/{id}", {"id": "a b"}),
        ("POST", "/pets/1/toys/ball", "POST /pets/{id}/toys/{toy}", {"id": "1", "toy": "ball"}),
        ("PUT", "/pets/cat", "ANY /{proxy+}", {"proxy": "pets/cat"}),
        ("GET", "/a/b/c", "ANY /{proxy+}", {"proxy": "a/b/c"}),
    ],
)
def test_route_specificity(method: str, path: str, expected: str, params: dict[str, str]) -> None:
    match = match_route(ROUTES, method, path)
    assert match is not None
    assert match.route.route_key == expected
    assert match.path_parameters == params


def test_no_match_and_default_route() -> None:
    assert match_route(ROUTES[:3], "GET", "/other") is None
    assert match_route([route("ANY", "/{proxy+}")], "GET", "/") is None
    default = HttpRoute("Api", "ANY", "$default", "Fn", "Default", None)
    match = match_route([*ROUTES[:3], default], "GET", "/other")
    assert match is not None
    assert match.route.route_key == "$default"


def request(**kwargs: object) -> Request:
    return Request(EnvironBuilder(**kwargs).get_environ())  # type: ignore[arg-type]


def test_event_body_encoding() -> None:
    match = RouteMatch(route("POST", "/pets"), {})
    form = build_event(request(method="POST", path="/pets", data=b"a=1", content_type="text/plain"), match, "api", "1")
    assert (form["body"], form["isBase64Encoded"]) == ("a=1", False)
    raw = build_event(
        request(method="POST", path="/pets", data=b"\xff\x00", content_type="image/png"), match, "api", "1"
    )
    assert raw["isBase64Encoded"] is True
    assert base64.b64decode(raw["body"]) == b"\xff\x00"
    bad_utf8 = build_event(
        request(method="POST", path="/pets", data=b"\xff", content_type="application/json"), match, "api", "1"
    )
    assert bad_utf8["isBase64Encoded"] is True


def test_jwt_claims_in_the_event() -> None:
    match = RouteMatch(route("GET", "/pets"), {})
    claims = {"sub": "u", "exp": 12, "admin": True, "groups": ["a", "b"], "scope": "x y"}
    event = build_event(request(path="/pets"), match, "api", "1", claims)
    jwt_context = event["requestContext"]["authorizer"]["jwt"]
    assert jwt_context["claims"] == {"sub": "u", "exp": "12", "admin": "true", "groups": "[a b]", "scope": "x y"}
    assert jwt_context["scopes"] == ["x", "y"]


def test_is_text() -> None:
    assert is_text("application/json; charset=utf-8")
    assert is_text("text/html")
    assert is_text("application/problem+json")
    assert not is_text("application/octet-stream")
    assert not is_text(None)
    assert claim_text({"a": 1}) == '{"a":1}'


def test_response_rules() -> None:
    inferred = to_response({"a": 1})
    assert (inferred.status_code, inferred.get_data(), inferred.content_type) == (200, b'{"a": 1}', "application/json")
    assert to_response("text").get_data() == b'"text"'
    shaped = to_response(
        {
            "statusCode": 302,
            "headers": {"Location": "/x"},
            "multiValueHeaders": {"X-A": ["1", "2"]},
            "cookies": ["c=1"],
            "body": "",
        }
    )
    assert shaped.status_code == 302
    assert shaped.headers["Location"] == "/x"
    assert shaped.headers.getlist("X-A") == ["1", "2"]
    assert shaped.headers.getlist("Set-Cookie") == ["c=1"]


def test_batch_item_failure_rules() -> None:
    batch = {"m1", "m2"}
    assert failed_message_ids(None, batch) == set()
    assert failed_message_ids({}, batch) == set()
    assert failed_message_ids({"batchItemFailures": []}, batch) == set()
    assert failed_message_ids({"batchItemFailures": None}, batch) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, batch) == {"m2"}
    # invalid reports fail the whole batch, as Lambda does
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, batch) == batch
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, batch) == batch
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": None}]}, batch) == batch
    assert failed_message_ids({"batchItemFailures": [{"id": "m1"}]}, batch) == batch
    assert failed_message_ids("not a dict", batch) == batch


def test_sqs_event_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "hello",
        "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "S", "Other": "x"},
        "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "5"}},
    }
    (record,) = build_sqs_event([message], "arn:aws:sqs:us-east-1:1:q", "us-east-1")["Records"]
    assert record["attributes"] == {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "S"}
    assert record["messageAttributes"] == lambda_message_attributes(message["MessageAttributes"])  # type: ignore[arg-type]
    assert record["messageAttributes"]["n"] == {
        "stringValue": "5",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Number",
    }
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        "arn:aws:sqs:us-east-1:1:q",
        "us-east-1",
    )


def test_schedule_rules() -> None:
    assert rate_seconds("rate(6 hours)") == 6 * 3600
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("cron(0 * * * ? *)") is None
    with_input = Schedule("Fn", "Ev", "name", "ScheduleV2", "rate(1 day)", json.dumps({"a": 1}))
    assert scheduled_event(with_input, "us-east-1", "1") == {"a": 1}
    plain = scheduled_event(Schedule("Fn", "Ev", "nightly", "Schedule", "rate(1 day)"), "us-east-1", "1")
    assert plain["detail-type"] == "Scheduled Event"
    assert plain["source"] == "aws.events"
    assert plain["resources"] == ["arn:aws:events:us-east-1:1:rule/nightly"]


@pytest.mark.parametrize("path", ["/v1/x%0Aforged", "/v1/x%00nul", "/v1/x%0D%0AINFO forged line", "/v1/%E2%80%A8x"])
def test_the_gateway_logs_a_request_path_as_one_line_without_control_characters(path: str) -> None:
    """A decoded ``%0A`` in a path would forge a log line, ``%00`` would write NUL: the access
    log shows the path percent-encoded, as one line."""
    lines: list[str] = []
    server = HttpApiServer(invoke=lambda function, event: pytest.fail("no route to invoke"), log=lines.append)
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", path.replace(" ", "%20"))
        assert connection.getresponse().status == 404
        connection.close()
    finally:
        server.stop()
    (line,) = lines
    assert line.isprintable()
    assert line.startswith("GET /v1/")
    assert " 404 " in line


class _BusyWorker:
    """Stands for a worker process in the pool's bookkeeping (no process behind it)."""

    alive = True


def test_a_waiting_invocation_gets_the_freed_worker_before_a_newcomer() -> None:
    """With every worker busy, invocations are served in arrival order: a release must not
    let a newcomer take the worker from one already waiting (a burst's tail took seconds)."""
    from types import SimpleNamespace

    from devstack.runtime.pool import FunctionPool

    pool = FunctionPool(SimpleNamespace(logical_id="F"), {}, "arn", lambda line: None, concurrency=1)  # type: ignore[arg-type]
    pool._count = 1  # the only worker is busy
    worker = _BusyWorker()
    served: list[str] = []

    def waiter() -> None:
        got = pool._acquire()
        served.append("waiter")
        pool._release(got, keep=True)  # type: ignore[arg-type]

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not pool._cond._waiters:  # type: ignore[attr-defined] # the waiter waits for a worker
        assert time.monotonic() < deadline
        time.sleep(0.001)
    with pool._cond:  # the release and a newcomer, before the waiter can run
        pool._idle.append(worker)  # type: ignore[arg-type]
        pool._cond.notify_all()
        got = pool._acquire()
        served.append("newcomer")
    pool._release(got, keep=True)
    thread.join(timeout=10)
    assert served == ["waiter", "newcomer"]


def test_a_worker_is_busy_from_its_invocation_until_released() -> None:
    """The load test kills a worker holding a batch: `busy_pids` names exactly those."""
    from types import SimpleNamespace

    from devstack.runtime.pool import FunctionPool

    pool = FunctionPool(SimpleNamespace(logical_id="F"), {}, "arn", lambda line: None, concurrency=1)  # type: ignore[arg-type]
    worker = _BusyWorker()
    worker.process = SimpleNamespace(pid=4242)  # type: ignore[attr-defined]
    pool._idle.append(worker)  # type: ignore[arg-type]
    pool._count = 1
    assert pool.busy_pids() == []
    got = pool._acquire()
    assert pool.busy_pids() == [4242]
    pool._release(got, keep=True)
    assert pool.busy_pids() == []


def test_an_asynchronous_retry_waits_its_delay_and_stopping_ends_the_wait() -> None:
    """Lambda waits between the attempts of an asynchronous invocation; with `retry_delay`
    the local stack does too (a short outage must not use up every attempt at once), and
    stopping the stack does not wait for the delay to pass."""
    from devstack.runtime.asyncinvoke import AsyncInvoker
    from devstack.runtime.pool import InvocationResult
    from devstack.template import AsyncInvokeConfig

    attempts: list[float] = []
    attempted = threading.Event()

    def invoke(function: str, event: object) -> InvocationResult:
        attempts.append(time.monotonic())
        attempted.set()
        return InvocationResult(function, "id", False, error={"errorType": "Boom"})

    invoker = AsyncInvoker(invoke, {"F": AsyncInvokeConfig(2)}, {"F": "arn"}, {}, None, lambda line: None, 1, 600.0)
    invoker.start()
    invoker.submit("F", {})
    assert attempted.wait(10)
    began = time.monotonic()
    invoker.stop()
    assert time.monotonic() - began < 10  # the stop ended the 600 s wait
    assert len(attempts) == 1  # no immediate retry
