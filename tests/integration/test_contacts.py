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


@pytest.mark.parametrize("crm_contacts", [3, 320])
def test_owners_of_many_emails_and_phones_whatever_the_crm_holds(graph: Graph, crm_contacts: int) -> None:
    """Hundreds of emails and phones looked up at once (a full sync of a large address book)
    find exactly their owners, when the user holds fewer of them (read whole) or more (looked
    up in batches)."""
    import uuid

    from crmsync.domain.contacts import ContactFields, Phone

    principal = Principal(f"tenant-{uuid.uuid4().hex[:8]}", "alice")
    store = graph.contact_store
    made = [
        store.create(
            principal,
            ContactFields(
                emails=(f"c{i}@example.org",), phones=(Phone(raw=f"+1650253{i:04d}", e164=f"+1650253{i:04d}"),)
            ),
            "crm",
        )
        for i in range(crm_contacts)
    ]
    asked = range(1, 302)  # 301 each (more than the 300 looked up in batches); not the first contact's
    emails = [f"c{i}@example.org" for i in asked]
    phones = [Phone(raw=f"+1650253{i:04d}", e164=f"+1650253{i:04d}") for i in asked]
    owners = store.owners(principal, emails=emails, phones=phones)
    expected = {f"c{i}@example.org": c.contact_id for i, c in enumerate(made) if i in asked}
    expected |= {f"+1650253{i:04d}": c.contact_id for i, c in enumerate(made) if i in asked}
    assert owners == expected
    other = Principal(principal.tenant_id, "bob")  # another user's are not theirs
    assert store.owners(other, emails=emails, phones=phones) == {}
