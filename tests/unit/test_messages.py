from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from crmsync.messaging.messages import ConnectionCheck, sync_message_adapter
from tests.support import clock


def check(**kw: str) -> ConnectionCheck:
    base = {"tenant_id": "t1", "user_id": "u1", "connection_id": "g1"}
    return ConnectionCheck(**{**base, **kw})


def test_same_request_same_deduplication_id_and_group() -> None:
    assert check().deduplication_id == check().deduplication_id
    assert check().group_id == "t1#u1#g1"


def test_another_occasion_is_another_message() -> None:
    hour = clock.now().strftime("%Y-%m-%dT%H")
    next_hour = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H")
    assert check(occasion=hour).deduplication_id != check(occasion=next_hour).deduplication_id


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "{}",
        '{"kind": "connection.check"}',
        '{"kind": "unknown.kind", "tenant_id": "t", "user_id": "u", "connection_id": "c"}',
        '{"kind": "connection.check", "tenant_id": "", "user_id": "u", "connection_id": "c"}',
        '{"kind": "connection.check", "tenant_id": "t", "user_id": "u", "connection_id": "c", "x": 1}',
    ],
)
def test_malformed_bodies_are_refused(body: str) -> None:
    with pytest.raises(ValidationError):
        sync_message_adapter.validate_json(body)


def test_a_valid_body_round_trips() -> None:
    assert sync_message_adapter.validate_json(check().model_dump_json()) == check()
