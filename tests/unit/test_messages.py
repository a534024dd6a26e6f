from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from pydantic import ValidationError

from crmsync.messaging.messages import CalendarSyncRequest, ConnectionCheck, sync_message_adapter
from crmsync.messaging.plain import PlainCalendarSyncRequest
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


# ------------------------------------------------ the webhooks' plain calendar sync request

CALENDAR_SYNC = {
    "tenant_id": "tenant-a",
    "user_id": "alice@example.com",
    "connection_id": "g1",
    "calendar_id": "ada@example.com",
}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"reason": "push", "occasion": clock.now().isoformat()},
        {"reason": "subscriptionRemoved", "channel_id": "9a5e8954-ca8d-41e3-8a61-4c0270b7610f"},
        # What JSON encoders disagree on: non-ASCII, quotes, backslashes, control characters.
        {"calendar_id": 'Kalender "Büro" ✓ 😀 \\ \n\t\x01\x7f\u2028 c_abc#x@group.calendar.google.com'},
        {"calendar_id": "x" * 1024, "occasion": "o" * 256, "reason": "r" * 64},
    ],
)
def test_the_plain_calendar_sync_request_is_the_same_message(fields: dict[str, str]) -> None:
    """The webhooks send the plain twin (no pydantic at their cold start): same body, group
    and deduplication id, and the worker reads it back as the pydantic message."""
    typed = CalendarSyncRequest(**{**CALENDAR_SYNC, **fields})
    plain = PlainCalendarSyncRequest(**{**CALENDAR_SYNC, **fields})
    assert plain.model_dump_json() == typed.model_dump_json()
    assert (plain.group_id, plain.deduplication_id) == (typed.group_id, typed.deduplication_id)
    assert sync_message_adapter.validate_json(plain.model_dump_json()) == typed


def test_the_plain_calendar_sync_request_has_the_models_fields_and_limits() -> None:
    limits = {}
    for name, field in CalendarSyncRequest.model_fields.items():
        if name == "kind":
            continue
        low = next((m.min_length for m in field.metadata if getattr(m, "min_length", None) is not None), 0)
        high = next(m.max_length for m in field.metadata if getattr(m, "max_length", None) is not None)
        limits[name] = (low, high)
    assert limits == PlainCalendarSyncRequest.LIMITS
    assert [f.name for f in dataclasses.fields(PlainCalendarSyncRequest)] == list(limits)
    assert PlainCalendarSyncRequest.kind == CalendarSyncRequest.model_fields["kind"].default


@pytest.mark.parametrize(
    "fields",
    [{"tenant_id": ""}, {"calendar_id": "x" * 1025}, {"reason": "r" * 65}, {"channel_id": "c" * 65}],
)
def test_the_plain_calendar_sync_request_refuses_what_the_model_refuses(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CalendarSyncRequest(**{**CALENDAR_SYNC, **fields})
    with pytest.raises(ValueError, match="calendar sync request"):
        PlainCalendarSyncRequest(**{**CALENDAR_SYNC, **fields})
