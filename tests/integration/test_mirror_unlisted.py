"""The record of created events no listing has shown (``UNLISTED#``), on DynamoDB Local: a
push's ADD and a sync's settle commute, and one settle may drop some ids and mark others."""

from __future__ import annotations

import uuid

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal.mirror import MirrorStore
from crmsync.domain import Principal

pytestmark = pytest.mark.integration

CALENDAR = "AAMkAGcalendar=="


def test_a_settle_drops_some_ids_marks_others_and_keeps_a_concurrent_push(service_env: dict[str, str]) -> None:
    Graph(Settings.from_env(service_env))  # binds this test's tables
    mirror = MirrorStore()
    principal = Principal(f"tenant-{uuid.uuid4().hex[:10]}", "alice")
    connection = f"microsoft-{uuid.uuid4().hex[:12]}"
    for event_id in ("listed", "out-of-window", "found-twice"):
        mirror.record_unlisted(principal, connection, CALENDAR, event_id)
    mirror.settle_unlisted(principal, connection, CALENDAR, done=set(), seen={"found-twice"})
    read = mirror.sync_inputs(principal, connection, CALENDAR)
    mirror.record_unlisted(principal, connection, CALENDAR, "pushed-meanwhile")  # after the sync read

    mirror.settle_unlisted(principal, connection, CALENDAR, done={"listed", "found-twice"}, seen={"out-of-window"})

    after = mirror.sync_inputs(principal, connection, CALENDAR)
    assert read.unlisted == {"listed", "out-of-window", "found-twice"}
    assert after.unlisted == {"out-of-window", "pushed-meanwhile"}
    assert after.unlisted_seen == {"out-of-window"}
    mirror.settle_unlisted(principal, connection, CALENDAR, done={"out-of-window", "pushed-meanwhile"}, seen=set())
    assert mirror.sync_inputs(principal, connection, CALENDAR).unlisted == frozenset()


def test_forgetting_a_connection_deletes_its_records_of_calendars_never_synced(service_env: dict[str, str]) -> None:
    """A push may record an event before the calendar's first sync made a cursor; a disconnect
    (which forgets the calendars that have one) must not leave that record behind."""
    Graph(Settings.from_env(service_env))
    mirror = MirrorStore()
    principal = Principal(f"tenant-{uuid.uuid4().hex[:10]}", "alice")
    connection, other = f"microsoft-{uuid.uuid4().hex[:12]}", f"microsoft-{uuid.uuid4().hex[:12]}"
    mirror.record_unlisted(principal, connection, CALENDAR, "pushed-before-any-sync")
    mirror.record_unlisted(principal, other, CALENDAR, "another-connections")

    mirror.forget_unlisted(principal, connection)

    assert mirror.sync_inputs(principal, connection, CALENDAR).unlisted == frozenset()
    assert mirror.sync_inputs(principal, other, CALENDAR).unlisted == {"another-connections"}
