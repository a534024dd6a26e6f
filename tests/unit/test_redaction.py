"""Secrets never reach a log line: key-based and shape-based redaction, through a real Logger."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from crmsync.light_logging import build_light_logger
from crmsync.observability import REDACTED, RedactingFilter, build_logger, redact, redact_text

ACCESS = "ya29.a0AfB_byC-abcdefghijklmnopqrstuvwxyz0123456789"
REFRESH = "1//0gLx-abcdefghijklmnopqrstuvwxyz0123456789_-"
CODE = "4/0AeaYSHB-abcdefghijklmnopqrstuvwxyz0123456789"
ID_TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiIxMjMiLCJlbWFpbCI6ImFAYi5jIn0.c2lnbmF0dXJlLWJ5dGVz"
OPAQUE = "opaque-secret-value-without-a-known-shape"


@pytest.fixture(autouse=True)
def fresh_service_loggers() -> Any:
    """Each test's loggers start new, as in a new execution environment: powertools' Logger
    and the light one both configure the standard library's logger named after the service,
    and powertools keeps its cold start in a module global, so one test's must not be found by
    the next (the tests run in any order)."""
    import aws_lambda_powertools.logging.logger as powertools_logger

    names = ("redaction-test", "same-service", "correlation-powertools", "correlation-light")

    def forget() -> None:
        for name in names:
            logging.Logger.manager.loggerDict.pop(name, None)
        powertools_logger.is_cold_start = True

    forget()
    yield
    forget()


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {OPAQUE}",
        f"GET /oauth/google/callback?state={OPAQUE}&code={OPAQUE}&scope=openid",
        f'{{"refresh_token": "{OPAQUE}", "expires_in": 3599}}',
        f"{{'access_token': '{OPAQUE}'}}",
        f"client_secret={OPAQUE}&grant_type=authorization_code",
        f"token={OPAQUE}",
    ],
)
def test_secrets_in_known_positions_are_removed_from_free_text(text: str) -> None:
    assert OPAQUE not in redact_text(text)


@pytest.mark.parametrize("secret", [ACCESS, REFRESH, CODE, ID_TOKEN])
def test_google_token_shapes_are_removed_anywhere(secret: str) -> None:
    assert secret not in redact_text(f"something went wrong with {secret} (see above)")


def test_structured_values_under_secret_keys_are_removed_at_any_depth() -> None:
    record = {
        "message": "token response",
        "response": {"access_token": OPAQUE, "nested": [{"refresh_token": OPAQUE}], "expires_in": 3599},
        "headers": {"Authorization": OPAQUE, "Cookie": OPAQUE},
        "code_verifier": OPAQUE,
    }
    out = redact(record)
    assert OPAQUE not in json.dumps(out)
    assert out["response"]["expires_in"] == 3599
    assert out["response"]["access_token"] == REDACTED


def test_ordinary_text_is_left_alone() -> None:
    text = "connected ada@example.com (connection g1234) with scopes openid email"
    assert redact_text(text) == text


@pytest.mark.parametrize("build", [build_logger, build_light_logger], ids=["powertools", "webhooks"])
def test_the_functions_loggers_never_write_a_secret(build: Any) -> None:
    """Given a function's logger (powertools', or the webhooks' light one) writing to a buffer,
    when secrets are logged in every way a careless change could, then none is in the output."""
    stream = io.StringIO()
    logger = build(service="redaction-test")
    for handler in logger.handlers:
        handler.setStream(stream)  # type: ignore[attr-defined]
    logger.info(f"exchanging code {CODE}")
    logger.info("token response", extra={"token": {"access_token": OPAQUE, "id_token": ID_TOKEN}})
    logger.info({"refresh_token": REFRESH, "event": {"rawQueryString": f"code={OPAQUE}&state=x"}})
    try:
        raise ValueError(f"refresh failed for {REFRESH}")
    except ValueError:
        logger.exception("refresh failed")
    output = stream.getvalue()
    assert output.count("\n") == 4
    for secret in (ACCESS, REFRESH, CODE, ID_TOKEN, OPAQUE):
        assert secret not in output
    assert "redaction-test" in output


def test_root_handler_filter_scrubs_third_party_records() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    third_party = logging.getLogger("urllib3.test")
    third_party.addHandler(handler)
    try:
        third_party.warning("POST /token body=%s", f"code={OPAQUE}&client_secret={OPAQUE}")
    finally:
        third_party.removeHandler(handler)
    assert OPAQUE not in stream.getvalue()
    assert "POST /token" in stream.getvalue()


class _Context:
    function_name = "crmsync-google-webhook"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:crmsync-google-webhook"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"


def test_the_webhooks_light_logger_writes_powertools_lines() -> None:
    """Operators query every function's logs alike: the light logger's lines carry powertools'
    keys and values (correlation ids, cold start, extras), one JSON object a line."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for name, build in (("powertools", build_logger), ("light", build_light_logger)):
        stream = io.StringIO()
        logger = build(service="same-service")
        for handler in logger.handlers:
            handler.setStream(stream)  # type: ignore[attr-defined]

        @logger.inject_lambda_context
        def handle(event: Any, context: Any, logger: Any = logger) -> None:
            logger.info("notification", extra={"calendar_id": "primary"})
            logging.getLogger("crmsync.sync.notifications").warning("from the domain")

        handle({}, _Context())
        handle({}, _Context())
        # Serialized alike too: tests and log queries match text such as '"status":403'.
        assert '"cold_start":true' in stream.getvalue(), name
        lines[name] = [json.loads(line) for line in stream.getvalue().splitlines()]
    powertools, light = lines["powertools"], lines["light"]
    assert len(light) == len(powertools) == 4
    for theirs, ours in zip(powertools, light, strict=True):
        assert set(theirs) - {"sampling_rate", "xray_trace_id"} <= set(ours), set(theirs) - set(ours)
        for key in ("level", "message", "service", "cold_start", "function_request_id", "function_name"):
            assert ours[key] == theirs[key], key
    assert [line["cold_start"] for line in light] == [True, True, False, False]
    assert light[0]["calendar_id"] == "primary"


def test_the_light_logger_carries_the_api_requests_correlation_id_as_powertools_does() -> None:
    """The OAuth callback's lines carry API Gateway's request id as ``correlation_id``, the key
    powertools' ``correlation_id_path`` gives the API's lines."""
    from aws_lambda_powertools.logging import correlation_paths

    event = {"requestContext": {"requestId": "JKJaXmPLvHcESHA="}, "rawPath": "/oauth/google/callback"}
    seen: dict[str, Any] = {}
    for name, build, path in (
        ("powertools", build_logger, correlation_paths.API_GATEWAY_HTTP),
        ("light", build_light_logger, "requestContext.requestId"),
    ):
        stream = io.StringIO()
        logger = build(service=f"correlation-{name}")
        for handler in logger.handlers:
            handler.setStream(stream)  # type: ignore[attr-defined]

        @logger.inject_lambda_context(correlation_id_path=path)
        def handle(event: Any, context: Any, logger: Any = logger) -> None:
            logger.info("callback")

        handle(event, _Context())
        handle({"requestContext": {}}, _Context())  # no id: the key is null, not an error
        seen[name] = [json.loads(line).get("correlation_id") for line in stream.getvalue().splitlines()]
    assert seen["light"] == seen["powertools"] == ["JKJaXmPLvHcESHA=", None]
