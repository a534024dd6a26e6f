"""Session fixtures shared by every suite: the local stack and DynamoDB Local.

Everything is lazy: a unit test that asks for none of these never starts Java. One DynamoDB
Local serves a test process's session (the full stack, the devstack runtime tests and the
per-test `tables` all share it, apart by table prefix). Under `pytest -n 2` each worker starts
its own, on free ports, the first time one of its tests asks: the stack tests are spread over
both workers instead of running one after another on one (the suite's critical path), at the
price of a second stack's start-up (a few seconds).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.caldav import CalDavServer
from devstack.dynamodb_local import DynamoDBLocal, create_tables, delete_tables
from devstack.stack import Stack, google_available
from devstack.template import load_template

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "integration: talks to DynamoDB Local, moto or the Google emulator over HTTP",
        "e2e: goes through the local stack (API Gateway stand-in, Lambda workers)",
        "browser: drives headless Chromium",
    ):
        config.addinivalue_line("markers", marker)


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local (in memory, free port) for the session."""
    with DynamoDBLocal(ROOT) as server:
        yield server


@pytest.fixture(scope="session")
def dynamodb_endpoint(dynamodb_local: DynamoDBLocal) -> str:
    """The session's DynamoDB Local endpoint URL."""
    return dynamodb_local.endpoint


@pytest.fixture(scope="session")
def stack(dynamodb_endpoint: str) -> Iterator[Stack]:
    """The whole application from the real template.yaml, once per session, on free ports."""
    with Stack(
        ROOT,
        google=google_available(),
        sqs_visibility_timeout=1,
        dynamodb_endpoint=dynamodb_endpoint,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def caldav_server() -> Iterator[CalDavServer]:
    """Radicale, a real CalDAV server, on a free loopback port for the session (users are
    added per test: ``caldav_server.add_user(email)`` returns the password)."""
    with CalDavServer() as server:
        yield server


@pytest.fixture
def table_prefix() -> str:
    """A fresh table-name prefix for one test."""
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def tables(dynamodb_endpoint: str, table_prefix: str) -> Iterator[dict[str, str]]:
    """The real template's tables under a fresh prefix: logical id -> table name."""
    names = create_tables(dynamodb_endpoint, load_template(ROOT / "template.yaml"), prefix=table_prefix)
    yield names
    delete_tables(dynamodb_endpoint, names.values())


@pytest.fixture
def token_for(stack: Stack) -> Callable[..., str]:
    """`token_for(tenant, user, **claims)`: a bearer JWT the stack's authorizer accepts."""

    def issue(tenant: str, user: str, **claims: Any) -> str:
        return stack.issue_token(tenant, user, **claims)

    return issue


@pytest.fixture
def service_env(stack, tables, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a deployed function gets, pointed at this test's own tables."""
    env = dict(stack.function_environment("ApiFunction"))
    env["CONNECTIONS_TABLE"] = tables["ConnectionsTable"]
    env["OAUTH_STATES_TABLE"] = tables["OAuthStatesTable"]
    env["IDEMPOTENCY_TABLE"] = tables["IdempotencyTable"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
