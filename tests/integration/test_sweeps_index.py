"""The sparse ``sweeps`` index over DynamoDB Local: what each scheduled sweep reads at a tick
is exactly the items of that tick's slot — a connection, a contacts-synced user, a mail-synced
user — and an item leaves it when its sync is turned off or it is deleted."""

from __future__ import annotations

import uuid

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.domain.sweeps import Sweep, slots, sweep_key
from crmsync.models.keys import user_pk
from crmsync.models.mail_sync import MailSyncItem
from crmsync.models.settings import ContactsSyncItem

pytestmark = pytest.mark.integration


@pytest.fixture
def graph(service_env: dict[str, str]) -> Graph:
    return Graph(Settings.from_env(service_env))


def other_slot(key: str) -> str:
    name, slot = key.split("#")
    return f"{name}#{(int(slot) + 1) % slots(Sweep(name))}"


def syncing_everything(graph: Graph, ada: Principal) -> None:
    """Ada's connection c1, her contacts account and mailbox: an item for each sweep."""
    graph.connection_store.upsert(
        ada,
        connection_id="c1",
        provider="google",
        subject="sub-c1",
        email="c1@example.test",
        display_name="Ada",
        scopes=("a",),
        credential_ciphertext=b"secret",
    )
    graph.contacts_sync_store.set(ada, "c1")
    graph.mail_sync_store.enable(ada, "c1", "c1@example.test", 30)


def test_each_sweep_reads_its_slot_and_only_while_on(graph: Graph) -> None:
    ada = Principal("acme", f"ada-{uuid.uuid4().hex[:8]}")
    syncing_everything(graph, ada)

    reads = {
        Sweep.HEALTH: (graph.connection_store.due, sweep_key(Sweep.HEALTH, ada.tenant_id, ada.user_id, "c1")),
        Sweep.CONTACTS: (graph.contacts_sync_store.due, sweep_key(Sweep.CONTACTS, ada.tenant_id, ada.user_id)),
        Sweep.MAIL: (graph.mail_sync_store.due, sweep_key(Sweep.MAIL, ada.tenant_id, ada.user_id)),
    }
    for sweep, (due, key) in reads.items():
        assert (ada, "c1") in set(due(key)), sweep
        assert (ada, "c1") not in set(due(other_slot(key))), sweep

    # Progress written by the sync keeps the mailbox in its slot.
    graph.mail_sync_store.save(ada, "c1", history_cursor="42")
    assert (ada, "c1") in set(graph.mail_sync_store.due(reads[Sweep.MAIL][1]))

    graph.contacts_sync_store.set(ada, None)
    graph.mail_sync_store.disable(ada)
    assert graph.connection_store.delete(ada, "c1")
    for sweep, (due, key) in reads.items():
        assert (ada, "c1") not in set(due(key)), sweep
    # Sparse: an item whose sync is off is not in the index at all (it would be read, and
    # paid for, at every tick of its slot).
    owner = user_pk(ada.tenant_id, ada.user_id)
    for model, key in [(ContactsSyncItem, reads[Sweep.CONTACTS][1]), (MailSyncItem, reads[Sweep.MAIL][1])]:
        assert owner not in {item.pk for item in model.sweeps.query(key)}, model


def test_the_backfill_gives_items_stored_before_the_index_their_slot(graph: Graph) -> None:
    from crmsync.dal.sweeps import backfill_sweep_slots
    from crmsync.models.connection import CONNECTION_SK_PREFIX, ConnectionItem

    ada = Principal("acme", f"ada-{uuid.uuid4().hex[:8]}")
    syncing_everything(graph, ada)
    owner = user_pk(ada.tenant_id, ada.user_id)
    # As stored before the index existed: no slot.
    for model, sk in [
        (ConnectionItem, CONNECTION_SK_PREFIX + "c1"),
        (ContactsSyncItem, "SETTINGS#contacts"),
        (MailSyncItem, "SETTINGS#mailsync"),
    ]:
        item = model.get(owner, sk)
        item.update(actions=[model.sweep.remove()])
    health = sweep_key(Sweep.HEALTH, ada.tenant_id, ada.user_id, "c1")
    assert (ada, "c1") not in set(graph.connection_store.due(health))

    assert backfill_sweep_slots() >= 3
    assert (ada, "c1") in set(graph.connection_store.due(health))
    assert (ada, "c1") in set(graph.contacts_sync_store.due(sweep_key(Sweep.CONTACTS, ada.tenant_id, ada.user_id)))
    assert (ada, "c1") in set(graph.mail_sync_store.due(sweep_key(Sweep.MAIL, ada.tenant_id, ada.user_id)))
    assert graph.connection_store.get(ada, "c1") is not None
