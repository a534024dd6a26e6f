"""The contacts use case on DynamoDB Local: the domain events of every way a contact is made
or changed (the API, BCC logging), and one contact per person however it arrives."""

from __future__ import annotations

import pytest

from crmsync.app.wiring import Graph
from crmsync.domain import Principal
from crmsync.domain.message import Address
from crmsync.errors import DuplicateContact
from crmsync.logic.contacts import ContactInput
from tests.support.events import RecordingPublisher

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")


@pytest.fixture
def published(graph: Graph) -> RecordingPublisher:
    graph.events = RecordingPublisher()  # type: ignore[misc] - before any use case is built
    return graph.events  # type: ignore[return-value]


def test_each_change_publishes_its_event_once(graph: Graph, published: RecordingPublisher) -> None:
    made = graph.contacts.create(ALICE, ContactInput(given_name="Ada", emails=["ada@example.com"]))
    graph.contacts.change(ALICE, made.contact_id, ContactInput(title="Countess"))
    graph.contacts.change(ALICE, made.contact_id, ContactInput(title="Countess"))  # no change: no event
    events = published.events
    assert [(e.detail_type, e.origin) for e in events] == [("ContactCreated", "crm"), ("ContactChanged", "crm")]
    assert [e.event_id for e in events] == [
        f"ContactCreated:{made.contact_id}:1",
        f"ContactChanged:{made.contact_id}:2",
    ]
    assert events[1].emails == ["ada@example.com"]


def test_bcc_logging_makes_contacts_through_the_same_use_case(graph: Graph, published: RecordingPublisher) -> None:
    """A logged address becomes a contact once, with its event (origin ``bcc``); an address a
    user already gave a contact is that contact's."""
    mine = graph.contacts.create(ALICE, ContactInput(given_name="Grace", emails=["grace@example.com"]))
    published.take()
    addresses = [Address("grace@example.com", "Grace H."), Address("linus@example.net", "Linus")]
    ids = graph.contacts.match_or_create(ALICE, addresses, "bcc")
    again = graph.contacts.match_or_create(ALICE, addresses, "bcc")
    assert ids == again
    assert ids["grace@example.com"] == mine.contact_id
    assert published.take() == [("ContactCreated", "bcc")]
    logged = graph.contacts.get(ALICE, ids["linus@example.net"])
    assert (logged.name, logged.source, logged.fields.emails) == ("Linus", "bcc", ("linus@example.net",))
    with pytest.raises(DuplicateContact) as clash:
        graph.contacts.create(ALICE, ContactInput(emails=["LINUS@example.net"]))
    assert clash.value.contact_id == logged.contact_id
