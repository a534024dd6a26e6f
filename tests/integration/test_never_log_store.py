"""The never-log list on DynamoDB Local: entries added and removed in the user's partition,
idempotent, capped, concurrent adds all kept, and one user's list never another's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from crmsync.app.wiring import Graph
from crmsync.dal.never_log import NeverLogStore
from crmsync.domain import Principal
from crmsync.domain.never_log import MAX_ENTRIES, NeverLog
from crmsync.errors import Unprocessable
from crmsync.models.settings import NEVER_LOG_SK, NeverLogItem

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
BOB = Principal("tenant-a", "bob")
MALLORY = Principal("tenant-b", "alice")  # same user id, another tenant


def test_entries_are_added_once_listed_sorted_and_removed(graph: Graph) -> None:
    store = graph.never_log
    assert store.get(ALICE) == NeverLog()
    assert store.add(ALICE, "Anna@Example.com") is True
    assert store.add(ALICE, "bücher.example") is True
    assert store.add(ALICE, "anna@example.COM") is False  # the same entry, spelled otherwise
    assert store.add(ALICE, "xn--bcher-kva.example.") is False
    assert store.list(ALICE) == ["anna@example.com", "xn--bcher-kva.example"]
    assert store.get(ALICE).blocks("someone@eu.bücher.example")

    assert store.remove(ALICE, "ANNA@example.com") is True
    assert store.remove(ALICE, "anna@example.com") is False
    assert store.remove(ALICE, "xn--bcher-kva.example") is True
    assert store.list(ALICE) == []
    assert store.remove(ALICE, "example.com") is False  # nothing left: no set at all
    assert store.add(ALICE, "example.com") is True


def test_concurrent_adds_are_all_kept(graph: Graph) -> None:
    """Two writers (two Lambda instances) adding at the same moment: neither loses the other's."""
    writers, each = 4, 12
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def add_many(n: int) -> None:
        store = NeverLogStore()
        start.wait()
        try:
            for i in range(each):
                store.add(ALICE, f"w{n}-{i}@example.com")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add_many, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(NeverLogStore().list(ALICE)) == writers * each


def test_the_list_is_capped_with_a_clear_error(graph: Graph) -> None:
    # Filled directly (one write) to the cap, then the API's way of adding.
    entries = {f"a{i}@example.com" for i in range(MAX_ENTRIES)}
    NeverLogItem(
        f"T#{ALICE.tenant_id}#U#{ALICE.user_id}", NEVER_LOG_SK, entries=entries, updated_at=datetime.now(UTC)
    ).save()
    store = NeverLogStore()
    with pytest.raises(Unprocessable, match=f"at most {MAX_ENTRIES:,} entries"):
        store.add(ALICE, "one-more@example.com")
    assert store.add(ALICE, "a7@example.com") is False  # already there: not refused for the cap
    assert len(store.list(ALICE)) == MAX_ENTRIES
    assert store.remove(ALICE, "a7@example.com") is True
    assert store.add(ALICE, "one-more@example.com") is True
    assert len(store.list(ALICE)) == MAX_ENTRIES


def test_one_users_list_never_applies_to_another(graph: Graph) -> None:
    store = NeverLogStore()
    store.add(ALICE, "example.com")
    assert store.get(ALICE).blocks("anna@example.com")
    for other in (BOB, MALLORY):
        assert store.get(other) == NeverLog()
        assert not store.get(other).blocks("anna@example.com")
        assert store.remove(other, "example.com") is False
    assert store.list(ALICE) == ["example.com"]
