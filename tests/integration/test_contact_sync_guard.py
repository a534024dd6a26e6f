"""The contacts sync's mass-deletion guard, quota errors and the contacts account's reconnect, against
DynamoDB Local and the People emulator through the real Google adapter.

The guard's threshold is lowered to 3 items here (production: 20) so a handful of contacts
stands for a wiped address book; the rule is the calendar's (crmsync.guard)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain.contacts import Contact
from crmsync.errors import NotFound
from crmsync.guard import Decision
from crmsync.messaging.messages import ContactSyncRequest
from crmsync.ports.errors import RateLimited
from tests.fakes.world import RecordingQueue
from tests.integration.test_contact_sync import ALICE, account, by_email, crm, offered
from tests.support.events import RecordingPublisher
from tests.support.google_consent import consent, query
from tests.support.google_people import GooglePeopleUser, person

pytestmark = pytest.mark.integration

__all__ = ["account"]  # the fixture, shared with test_contact_sync

LINKED = 4


@pytest.fixture
def graph(service_env: dict[str, str]) -> Graph:
    """The production graph with contacts on, a guard of 3 items, and the events and queue kept."""
    settings = Settings.from_env(service_env)
    google = settings.google.model_copy(update={"features": ("calendar", "contacts")})
    graph = Graph(settings.model_copy(update={"google": google, "mass_deletion_minimum": 3}))
    graph.events = RecordingPublisher()  # type: ignore[assignment]
    graph.queue = RecordingQueue()  # type: ignore[assignment]
    return graph


def linked_contacts(graph: Graph, user: GooglePeopleUser, connection_id: str) -> list[Contact]:
    """``LINKED`` CRM contacts, pushed to Google by a first sync."""
    made = [crm(graph, given_name=f"P{i}", emails=[f"p{i}@example.com"]) for i in range(LINKED)]
    graph.contact_sync.run(ALICE, connection_id)
    assert all(len(by_email(user, c.email)) == 1 for c in made)
    return made


def now(graph: Graph, contact: Contact) -> Contact | None:
    return graph.contact_store.get(ALICE, contact.contact_id)


def held(graph: Graph) -> list[tuple[str, int, int, str | None]]:
    return [
        (p.resource.resource_id, p.deletions, p.mirrored, p.decision.value if p.decision else None)
        for p in graph.contacts_sync_settings.status(ALICE).pending_deletions
    ]


def published(graph: Graph) -> list[Any]:
    events: RecordingPublisher = graph.events  # type: ignore[assignment]
    return [e for e in events.events if e.detail_type == "DeletionsHeld"]


def wipe_google(user: GooglePeopleUser) -> None:
    for p in user.contacts():
        user.delete(p["resourceName"])


def test_google_deleting_every_linked_contact_is_held_and_the_rest_applied(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    made = linked_contacts(graph, user, connection_id)
    wipe_google(user)
    user.add(person("Grace", emails=("grace@example.org",)))  # the rest of the sync is applied

    graph.contact_sync.run(ALICE, connection_id)

    assert all(now(graph, c).google is not None for c in made)  # type: ignore[union-attr]
    assert [c.emails for c in offered(graph)] == [("grace@example.org",)]
    assert held(graph) == [("google", LINKED, LINKED, None)]
    (event,) = published(graph)
    assert (event.resource_kind, event.resource_id, event.deletions, event.mirrored) == (
        "contacts",
        "google",
        LINKED,
        LINKED,
    )
    # A later (full) sync still holds them, without a second alarm.
    user.expire_sync_tokens()
    graph.contact_sync.run(ALICE, connection_id)
    assert held(graph) == [("google", LINKED, LINKED, None)]
    assert len(published(graph)) == 1


def test_apply_unlinks_the_crm_contacts_and_never_deletes_them(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    made = linked_contacts(graph, user, connection_id)
    wipe_google(user)
    graph.contact_sync.run(ALICE, connection_id)

    status = graph.contacts_sync_settings.decide_deletions(ALICE, Decision.APPLY)
    assert [p.decision for p in status.pending_deletions] == [Decision.APPLY]
    sent = graph.queue.take()  # type: ignore[attr-defined]
    (request,) = [m for m in sent if isinstance(m, ContactSyncRequest) and m.reason == "deletions"]
    outcome = graph.contact_sync.run(ALICE, request.connection_id)

    assert outcome is not None
    assert outcome.full  # the answer is carried out against Google's complete list
    for contact in made:
        kept = now(graph, contact)
        assert kept is not None
        assert kept.google is None
    assert user.contacts() == []
    assert held(graph) == []
    assert graph.contact_mirror.contacts(ALICE) == {}


def test_ignore_pushes_the_crm_contacts_to_google_again(graph: Graph, account: tuple[str, GooglePeopleUser]) -> None:
    connection_id, user = account
    made = linked_contacts(graph, user, connection_id)
    wipe_google(user)
    graph.contact_sync.run(ALICE, connection_id)

    graph.contacts_sync_settings.decide_deletions(ALICE, Decision.IGNORE)
    graph.contact_sync.run(ALICE, connection_id)

    for contact in made:
        (twin,) = by_email(user, contact.email)
        linked = now(graph, contact)
        assert linked is not None
        assert linked.google is not None
        assert linked.google.resource_name == twin["resourceName"]
    assert held(graph) == []
    graph.contact_sync.run(ALICE, connection_id)  # our re-created contacts come back once
    assert all(len(by_email(user, c.email)) == 1 for c in made)
    assert offered(graph) == []


def test_a_few_deletions_pass_at_once(graph: Graph, account: tuple[str, GooglePeopleUser]) -> None:
    connection_id, user = account
    made = linked_contacts(graph, user, connection_id)
    user.delete(by_email(user, made[0].email)[0]["resourceName"])
    graph.contacts.delete(ALICE, made[1].contact_id)

    graph.contact_sync.run(ALICE, connection_id)

    unlinked = now(graph, made[0])
    assert unlinked is not None
    assert unlinked.google is None
    assert by_email(user, made[1].email) == []  # ours, deleted in the CRM: deleted in Google
    assert held(graph) == []
    assert published(graph) == []
    with pytest.raises(NotFound):
        graph.contacts_sync_settings.decide_deletions(ALICE, Decision.APPLY)


@pytest.mark.parametrize("decision", [Decision.APPLY, Decision.IGNORE])
def test_the_crm_deleting_most_contacts_we_created_does_not_wipe_google_unasked(
    graph: Graph, account: tuple[str, GooglePeopleUser], decision: Decision
) -> None:
    connection_id, user = account
    made = linked_contacts(graph, user, connection_id)
    for contact in made[:3]:
        graph.contacts.delete(ALICE, contact.contact_id)

    graph.contact_sync.run(ALICE, connection_id)
    graph.contact_sync.run(ALICE, connection_id)  # still held: the deletion marks stay

    assert all(len(by_email(user, c.email)) == 1 for c in made)
    assert held(graph) == [("crm", 3, LINKED, None)]
    assert [e.resource_id for e in published(graph)] == ["crm"]

    graph.contacts_sync_settings.decide_deletions(ALICE, decision)
    graph.contact_sync.run(ALICE, connection_id)

    gone = {c.contact_id for c in made[:3]}
    assert held(graph) == []
    remaining = [c for c in made[:3] if by_email(user, c.email)]
    if decision is Decision.APPLY:
        assert remaining == []
    else:  # kept in Google, no longer synced; made by us, so never offered for import
        assert remaining == made[:3]
        assert offered(graph) == []
        assert all(m.contact_id is None for m in graph.contact_mirror.contacts(ALICE).values() if m.key in gone)
        graph.contact_sync.run(ALICE, connection_id)  # nothing left to judge: never asked again
        assert held(graph) == []
        assert len(published(graph)) == 1
    assert len(by_email(user, made[3].email)) == 1


def test_a_quota_error_is_recorded_raised_and_cleared_by_the_next_sync(
    graph: Graph, account: tuple[str, GooglePeopleUser], stack: Any
) -> None:
    connection_id, user = account
    crm(graph, given_name="Ada", emails=["ada@example.com"])
    user.add(person("Grace", emails=("grace@example.org",)))
    before = graph.contact_mirror.cursor(ALICE, connection_id)
    fault = {"kind": "quota_429", "method": "people.people.connections.list", "email": user.email, "count": 1}
    requests.post(f"{stack.google.base_url}/_emulator/faults", json=fault, timeout=10).raise_for_status()

    with pytest.raises(RateLimited):
        graph.contact_sync.run(ALICE, connection_id)

    failed = graph.contact_mirror.cursor(ALICE, connection_id)
    assert failed.sync_token == before.sync_token is None  # the cursor did not move
    assert failed.last_error
    assert graph.contacts_sync_settings.status(ALICE).last_error == failed.last_error
    assert graph.contact_mirror.contacts(ALICE) == {}  # nothing half-written
    assert graph.candidates.all(ALICE) == []
    assert len(user.contacts()) == 1  # nothing pushed

    outcome = graph.contact_sync.run(ALICE, connection_id)  # the queue's retry

    assert outcome is not None
    assert graph.contacts_sync_settings.status(ALICE).last_error is None
    assert graph.contact_mirror.cursor(ALICE, connection_id).sync_token is not None
    assert [c.emails for c in offered(graph)] == [("grace@example.org",)]


def test_a_quota_error_on_a_later_sync_leaves_the_cursor_where_it_was(
    graph: Graph, account: tuple[str, GooglePeopleUser], stack: Any
) -> None:
    connection_id, user = account
    graph.contact_sync.run(ALICE, connection_id)
    user.add(person("Grace", emails=("grace@example.org",)))
    before = graph.contact_mirror.cursor(ALICE, connection_id)
    fault = {"kind": "rate_limit_429", "method": "people.people.connections.list", "email": user.email, "count": 1}
    requests.post(f"{stack.google.base_url}/_emulator/faults", json=fault, timeout=10).raise_for_status()

    with pytest.raises(RateLimited):
        graph.contact_sync.run(ALICE, connection_id)

    failed = graph.contact_mirror.cursor(ALICE, connection_id)
    assert failed.sync_token == before.sync_token
    assert failed.last_error
    assert offered(graph) == []
    graph.contact_sync.run(ALICE, connection_id)
    assert graph.contact_mirror.cursor(ALICE, connection_id).last_error is None
    assert [c.emails for c in offered(graph)] == [("grace@example.org",)]


def sign_in(graph: Graph, email: str, *, also: tuple[str, ...] = ()) -> Any:
    """The Integrations page's Reconnect: a plain sign-in naming the account."""
    start = graph.integrations.start_connect("google", ALICE, login_hint=email, also=also)
    params = query(consent(start.authorization_url, email, typed=True))
    return graph.integrations.complete_connect(
        "google", state=params["state"], code=params["code"], error=None, binding=start.binding
    )


def test_reconnecting_the_contacts_account_with_its_grant_alive_keeps_contacts(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """Google's include_granted_scopes: a sign-in asking for calendar only gets a token with
    every scope of the live grant, contacts included."""
    connection_id, user = account
    connection = sign_in(graph, user.email)  # calendar only, as before the fix
    assert connection.connection_id == connection_id
    assert graph.integrations.feature_granted(connection, "contacts")
    assert graph.contact_sync.run(ALICE, connection_id) is not None


def test_after_a_revoked_grant_the_contacts_accounts_reconnect_asks_for_contacts(
    graph: Graph, account: tuple[str, GooglePeopleUser], stack: Any
) -> None:
    connection_id, user = account
    user.add(person("Grace", emails=("grace@example.org",)))
    revoke = {"email": user.email, "client_id": graph.settings.google.client_id}
    requests.post(f"{stack.google.base_url}/_emulator/grants/revoke", json=revoke, timeout=10).raise_for_status()

    # Without contacts in the sign-in, the new grant lacks it: the sync says so, calls nothing.
    connection = sign_in(graph, user.email)
    assert not graph.integrations.feature_granted(connection, "contacts")
    before = user.calls()
    assert graph.contact_sync.run(ALICE, connection_id) is None
    assert user.calls() == before
    status = graph.contacts_sync_settings.status(ALICE)
    assert status.last_error is not None
    assert "contacts" in status.last_error
    assert user.email in status.last_error

    # The Reconnect of the contacts account (its email as the hint) asks for contacts too.
    assert graph.contacts_sync_settings.sign_in_features(ALICE, user.email.upper()) == ("contacts",)
    assert graph.contacts_sync_settings.sign_in_features(ALICE, "someone@example.org") == ()
    assert graph.contacts_sync_settings.sign_in_features(ALICE, None) == ()
    connection = sign_in(graph, user.email, also=graph.contacts_sync_settings.sign_in_features(ALICE, user.email))
    assert graph.integrations.feature_granted(connection, "contacts")
    assert graph.contact_sync.run(ALICE, connection_id) is not None
    status = graph.contacts_sync_settings.status(ALICE)
    assert status.last_error is None
    assert [c.emails for c in offered(graph)] == [("grace@example.org",)]


def test_a_crm_edit_while_google_deletions_are_held_waits_for_the_answer(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """Google lost every linked contact and the sync holds it; the CRM user then edits one of
    them. The edit neither unlinks the contact (that is the answer's to decide) nor is lost:
    Ignore pushes the contact to Google again with the edit."""
    from crmsync.logic.contacts import ContactInput

    connection_id, user = account
    made = linked_contacts(graph, user, connection_id)
    wipe_google(user)
    graph.contact_sync.run(ALICE, connection_id)
    edited = made[0]
    graph.contacts.change(ALICE, edited.contact_id, ContactInput(given_name="Edited"))

    graph.contact_sync.run(ALICE, connection_id)
    graph.contact_sync.run(ALICE, connection_id)

    waiting = now(graph, edited)
    assert waiting is not None
    assert waiting.google is not None  # still linked: the user has not answered
    assert [(side, decision) for side, _, _, decision in held(graph)] == [("google", None)]

    graph.contacts_sync_settings.decide_deletions(ALICE, Decision.IGNORE)
    graph.contact_sync.run(ALICE, connection_id)
    (twin,) = by_email(user, edited.email)
    assert twin["names"][0]["givenName"] == "Edited"
    back = now(graph, edited)
    assert back is not None
    assert back.google is not None
    assert back.google.resource_name == twin["resourceName"]
