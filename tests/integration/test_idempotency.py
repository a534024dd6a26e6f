"""Idempotent creates (crmsync.api.idempotency) on DynamoDB Local: replay, reuse with another
body, a key still in progress, and an in-progress record whose invocation died.

The create callbacks here stand in for a route; the in-progress cases are made
deterministic by asking again from inside the first request, while its record is held."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel

from crmsync.api.idempotency import idempotent_create
from crmsync.api.problems import Answered
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.errors import BookingConflict

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
BOB = Principal("tenant-a", "bob")


class Body(BaseModel):
    title: str


class Invocation:
    """What the Lambda runtime hands a handler: here only its remaining time matters."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def settings(service_env: dict[str, str]) -> Settings:
    return Settings.from_env(service_env)


class Creates:
    """A create route: each run makes a new numbered thing."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> Response:
        self.made += 1
        return Response(
            status_code=201,
            content_type="application/json",
            body=json.dumps({"id": self.made}),
            headers={"Cache-Control": "no-store"},
        )


def call(
    settings: Settings,
    create: Callable[[], Response],
    key: str | None = "key-1",
    title: str = "Intro",
    principal: Principal = ALICE,
    context: Invocation | None = None,
) -> Response:
    try:
        return idempotent_create(
            "things.create",
            principal,
            key,
            Body(title=title),
            create,
            settings=settings,
            lambda_context=context or Invocation(10_000),
        )
    except Answered as refused:  # what the API's exception handler answers
        return refused.response


def body_of(response: Response) -> dict:
    """A replayed JSON answer carries the parsed document (validated again by the route)."""
    return response.body if isinstance(response.body, dict) else json.loads(response.body)


def test_the_same_key_and_body_replays_the_first_answer(settings: Settings) -> None:
    creates = Creates()
    first = call(settings, creates)
    again = call(settings, creates)
    assert creates.made == 1
    assert (first.status_code, body_of(first)) == (201, {"id": 1})
    assert (again.status_code, body_of(again)) == (201, {"id": 1})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Cache-Control"] == "no-store"
    assert again.headers["Content-Type"] == "application/json"
    assert "Idempotent-Replayed" not in first.headers


def test_the_same_key_with_another_body_is_refused(settings: Settings) -> None:
    creates = Creates()
    call(settings, creates, title="Intro")
    refused = call(settings, creates, title="Something else")
    assert creates.made == 1
    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert body_of(refused)["type"] == "urn:crmsync:problem:idempotency-key-reused"


def test_keys_belong_to_their_user_and_a_new_key_is_a_new_request(settings: Settings) -> None:
    creates = Creates()
    assert body_of(call(settings, creates, principal=ALICE)) == {"id": 1}
    assert body_of(call(settings, creates, principal=BOB)) == {"id": 2}
    assert body_of(call(settings, creates, key="key-2")) == {"id": 3}
    assert body_of(call(settings, creates, key=None)) == {"id": 4}  # no key: no protection
    assert body_of(call(settings, creates, key=None)) == {"id": 5}


def test_a_request_whose_key_is_in_progress_is_told_to_retry(settings: Settings) -> None:
    creates = Creates()
    seen: list[Response] = []

    def slow_create() -> Response:
        # The first request is running (its record held): the client's retry arrives now.
        seen.append(call(settings, creates))
        return creates()

    first = call(settings, slow_create)
    (retry,) = seen
    assert retry.status_code == 409
    assert retry.headers["Retry-After"] == "1"
    assert body_of(retry)["type"] == "urn:crmsync:problem:idempotency-key-in-progress"
    assert (first.status_code, creates.made) == (201, 1)
    assert body_of(call(settings, creates)) == {"id": 1}  # then the answer is replayed


def test_an_in_progress_record_of_a_dead_invocation_does_not_block_the_key(settings: Settings) -> None:
    creates = Creates()
    seen: list[Response] = []

    def dies() -> Response:
        # This invocation's time has run out (Lambda would have killed it): a retry runs.
        seen.append(call(settings, creates))
        return creates()

    call(settings, dies, context=Invocation(-1_000))
    (retry,) = seen
    assert (retry.status_code, body_of(retry)) == (201, {"id": 1})


def test_a_refused_request_keeps_nothing_so_a_retry_runs_again(settings: Settings) -> None:
    creates = Creates()
    attempts: list[int] = []

    def refused_then_ok() -> Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise BookingConflict("busy", [])
        return creates()

    with pytest.raises(BookingConflict):
        call(settings, refused_then_ok)
    assert call(settings, refused_then_ok).status_code == 201
    assert len(attempts) == 2


def test_a_malformed_key_is_refused(settings: Settings) -> None:
    from crmsync.errors import InvalidRequest

    for key in ("", "x" * 256, "caf\u00e9", "line\nbreak"):
        with pytest.raises(InvalidRequest):
            call(settings, Creates(), key=key)
