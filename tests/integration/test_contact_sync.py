"""F10: the contacts sync against DynamoDB Local and the People emulator, through the real
Google adapter: push, fetch, candidates, two-way changes, conflicts, expired tokens, the
propagation delay and the deletion rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.client
import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.domain.contacts import CandidateStatus, Contact
from crmsync.logic.contacts import ContactInput
from crmsync.messaging.messages import ContactSyncRequest, sync_message_adapter
from crmsync.sync.contact_requests import ContactSyncRequests
from crmsync.sync.contact_sync import ContactSync
from tests.fakes.world import RecordingQueue
from tests.support.google_consent import consent, query
from tests.support.google_people import GooglePeopleUser, person

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")


@pytest.fixture
def graph(service_env: dict[str, str]) -> Graph:
    """The production graph with the contacts feature on (the stack's default is calendar only)."""
    settings = Settings.from_env(service_env)
    google = settings.google.model_copy(update={"features": ("calendar", "contacts")})
    return Graph(settings.model_copy(update={"google": google}))


@pytest.fixture
def account(stack, graph: Graph, ada: str) -> Iterator[tuple[str, GooglePeopleUser]]:
    """Ada's Google account connected with the contacts scope and made her contacts account."""
    integrations = graph.integrations
    start = integrations.start_connect("google", ALICE, features=["calendar", "contacts"])
    params = query(consent(start.authorization_url, ada, typed=True))
    connection = integrations.complete_connect(
        "google", state=params["state"], code=params["code"], error=None, binding=start.binding
    )
    graph.contacts_sync_store.set(ALICE, connection.connection_id)
    user = GooglePeopleUser(stack.google.base_url, ada)
    yield connection.connection_id, user
    user.propagation(0)


def crm(graph: Graph, **fields: Any) -> Contact:
    return graph.contacts.create(ALICE, ContactInput(**fields))


def by_email(user: GooglePeopleUser, email: str) -> list[dict[str, Any]]:
    return [p for p in user.contacts() if email in [e["value"].lower() for e in p.get("emailAddresses", [])]]


def offered(graph: Graph) -> list[Any]:
    return graph.candidates.page(ALICE, CandidateStatus.OFFERED, None, 200).candidates


def test_the_first_sync_pushes_crm_contacts_in_batches_and_offers_googles_own(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    made = [crm(graph, given_name=f"P{i}", emails=[f"p{i}@example.com"]) for i in range(4)]
    nameless = crm(graph, given_name="Only A Name")  # recognised by its key alone
    theirs = user.add(person("Grace", "Hopper", emails=("grace@example.org",), organization="Navy"))
    before = user.calls()

    outcome = graph.contact_sync.run(ALICE, connection_id)

    assert outcome is not None
    assert outcome.full
    assert outcome.created == 5
    assert graph.contact_store.get(ALICE, nameless.contact_id).google is not None  # type: ignore[union-attr]
    # One listing, one group lookup and creation, one batch create, one group membership call.
    assert user.calls() - before <= 5
    for contact in made:
        linked = graph.contact_store.get(ALICE, contact.contact_id)
        assert linked is not None
        assert linked.google is not None
        assert linked.google.ours
        assert len(by_email(user, contact.email)) == 1
    candidates = offered(graph)
    assert [(c.name, c.emails, c.organization) for c in candidates] == [
        ("Grace Hopper", ("grace@example.org",), "Navy")
    ]
    assert candidates[0].members == ((connection_id, theirs),)
    # Our own contacts come back at the next syncs and are never offered, never re-created,
    # even when the mirror lost them (a run interrupted after its creates): by their key.
    graph.contact_sync.run(ALICE, connection_id)
    graph.contact_mirror.remove(ALICE, connection_id, [name for _, name in graph.contact_mirror.contacts(ALICE)])
    user.expire_sync_tokens()
    graph.contact_sync.run(ALICE, connection_id)
    assert [c.name for c in offered(graph)] == ["Grace Hopper"]
    assert all(len(by_email(user, c.email)) == 1 for c in made)


def test_a_google_contact_with_a_crm_contacts_email_or_phone_is_linked_not_offered(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    ada = crm(graph, given_name="Ada", emails=["ada@example.com"])
    bob = crm(graph, given_name="Bob", phones=["+1 650 253 0000"])
    user.add(person("Ada", emails=("ADA@example.com",), organization="Engines"))
    user.add(person("Bobby", phones=("(650) 253-0000",)))

    graph.contact_sync.run(ALICE, connection_id)

    assert offered(graph) == []
    assert len(by_email(user, "ada@example.com")) == 1  # linked, not pushed a second time
    # A Google contact made later for a CRM contact already synced is linked too.
    user.add(person("Ada L.", emails=("ada@example.com",)))
    graph.contact_sync.run(ALICE, connection_id)
    assert offered(graph) == []
    linked = graph.contact_store.get(ALICE, ada.contact_id)
    assert linked is not None
    assert linked.google is not None
    assert not linked.google.ours
    assert linked.fields.organization == "Engines"  # an empty CRM field takes Google's
    bob_now = graph.contact_store.get(ALICE, bob.contact_id)
    assert bob_now is not None
    assert bob_now.google is not None


def test_google_contacts_sharing_an_email_are_one_candidate(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    user.add(person("Linus", emails=("linus@example.net",)))
    user.add(person("L. T.", emails=("linus@example.net", "lt@example.net"), phones=("+44 20 7946 0000",)))
    user.add(person("Other", emails=("other@example.net",)))

    graph.contact_sync.run(ALICE, connection_id)

    candidates = {c.emails[0]: c for c in offered(graph)}
    assert len(candidates) == 2
    linus = candidates["linus@example.net"]
    assert set(linus.emails) == {"linus@example.net", "lt@example.net"}
    assert len(linus.members) == 2
    page = graph.candidates.page(ALICE, CandidateStatus.OFFERED, None, 1)
    assert page.total == 2
    assert len(page.candidates) == 1
    assert page.cursor is not None
    rest = graph.candidates.page(ALICE, CandidateStatus.OFFERED, page.cursor, 1)
    assert rest.cursor is None
    assert rest.candidates[0].candidate_id != page.candidates[0].candidate_id


def test_choices_and_statuses_survive_the_next_syncs_and_deleted_contacts_leave(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    kept = user.add(person("Kept", emails=("kept@example.net",)))
    gone = user.add(person("Gone", emails=("gone@example.net",)))
    matched = user.add(person("Match", emails=("match@example.net",)))
    graph.contact_sync.run(ALICE, connection_id)
    ids = {c.emails[0]: c.candidate_id for c in offered(graph)}
    graph.candidates.set_choices(ALICE, ids["kept@example.net"], selected=True, contact_type="client")
    graph.candidates.mark(ALICE, [ids["match@example.net"]], CandidateStatus.DECLINED)
    user.edit(kept, person("Kept Renamed", emails=("kept@example.net",)))
    user.delete(gone)
    crm(graph, given_name="Matched", emails=["match@example.net"])  # starts matching a CRM contact

    graph.contact_sync.run(ALICE, connection_id)

    remaining = graph.candidates.all(ALICE)
    assert [(c.name, c.selected, c.contact_type) for c in remaining] == [("Kept Renamed", True, "client")]
    assert matched
    assert len(by_email(user, "match@example.net")) == 1


def test_edits_reach_the_other_side_at_the_next_sync(graph: Graph, account: tuple[str, GooglePeopleUser]) -> None:
    connection_id, user = account
    ada = crm(graph, given_name="Ada", emails=["ada@example.com"])
    graph.contact_sync.run(ALICE, connection_id)
    twin = by_email(user, "ada@example.com")[0]["resourceName"]

    user.edit(twin, person("Ada", "Lovelace", emails=("ada@example.com",), organization="Analytical"))
    graph.contact_sync.run(ALICE, connection_id)
    now = graph.contact_store.get(ALICE, ada.contact_id)
    assert now is not None
    assert (now.fields.family_name, now.fields.organization) == ("Lovelace", "Analytical")

    graph.contacts.change(ALICE, ada.contact_id, ContactInput(title="Countess", phones=["+1 650 253 0001"]))
    graph.contact_sync.run(ALICE, connection_id)
    google = by_email(user, "ada@example.com")[0]
    assert google["organizations"][0].get("title") == "Countess"
    assert google["phoneNumbers"][0]["value"] == "+1 650 253 0001"
    assert google["names"][0]["familyName"] == "Lovelace"


def test_both_sides_edited_merge_field_by_field_the_later_change_wins(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    ada = crm(graph, given_name="Ada", emails=["ada@example.com"], organization="Old")
    graph.contact_sync.run(ALICE, connection_id)
    twin = by_email(user, "ada@example.com")[0]["resourceName"]
    # The CRM changes the title and the organization first; Google then changes the
    # family name and the organization (its organization is the later change) ...
    graph.contacts.change(ALICE, ada.contact_id, ContactInput(title="Countess", organization="CRM Org"))
    user.edit(
        twin,
        person("Ada", "Byron", emails=("ada@example.com",), organization="Google Org", phones=("+1 650 253 0002",)),
    )
    # ... and the CRM changes the phone last: the CRM's phone is the later change.
    graph.contacts.change(ALICE, ada.contact_id, ContactInput(phones=["+1 650 253 0003"]))

    graph.contact_sync.run(ALICE, connection_id)

    now = graph.contact_store.get(ALICE, ada.contact_id)
    assert now is not None
    assert (now.fields.family_name, now.fields.title, now.fields.organization) == ("Byron", "Countess", "Google Org")
    assert [p.e164 for p in now.fields.phones] == ["+16502530003"]
    google = by_email(user, "ada@example.com")[0]
    assert google["names"][0]["familyName"] == "Byron"
    assert [p["value"] for p in google["phoneNumbers"]] == ["+1 650 253 0003"]
    assert google["organizations"][0] == {**google["organizations"][0], "name": "Google Org", "title": "Countess"}


def test_an_etag_conflict_is_merged_not_lost(graph: Graph, account: tuple[str, GooglePeopleUser]) -> None:
    """Google's edit has not reached the sync yet (propagation delay): our update meets a stale
    etag, reads the contact again, merges and writes again."""
    connection_id, user = account
    ada = crm(graph, given_name="Ada", emails=["ada@example.com"])
    graph.contact_sync.run(ALICE, connection_id)
    twin = by_email(user, "ada@example.com")[0]["resourceName"]
    user.propagation(600)
    user.edit(twin, person("Ada", "Byron", emails=("ada@example.com",)))
    graph.contacts.change(ALICE, ada.contact_id, ContactInput(title="Countess"))

    graph.contact_sync.run(ALICE, connection_id)

    google = by_email(user, "ada@example.com")[0]
    assert google["names"][0]["familyName"] == "Byron"
    assert google["organizations"][0]["title"] == "Countess"
    now = graph.contact_store.get(ALICE, ada.contact_id)
    assert now is not None
    assert now.fields.family_name == "Byron"
    assert now.fields.title == "Countess"


def test_an_expired_sync_token_recovers_without_duplicates_or_loss(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    crm(graph, given_name="Ada", emails=["ada@example.com"])
    user.add(person("Grace", emails=("grace@example.org",)))
    gone = user.add(person("Gone", emails=("gone@example.org",)))
    graph.contact_sync.run(ALICE, connection_id)
    user.add(person("Linus", emails=("linus@example.net",)))
    user.delete(gone)  # a full listing no longer lists it: what it lacks is gone
    user.expire_sync_tokens()

    outcome = graph.contact_sync.run(ALICE, connection_id)

    assert outcome is not None
    assert outcome.full
    assert sorted(c.emails[0] for c in offered(graph)) == ["grace@example.org", "linus@example.net"]
    assert len(by_email(user, "ada@example.com")) == 1
    assert len(graph.contact_store.page(ALICE, None, 50).items) == 1


def test_with_the_propagation_delay_the_sync_converges_once_the_writes_propagate(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    user.propagation(300)
    ada = crm(graph, given_name="Ada", emails=["ada@example.com"])
    graph.contact_sync.run(ALICE, connection_id)
    twin = by_email(user, "ada@example.com")[0]["resourceName"]
    user.edit(twin, person("Ada", "Byron", emails=("ada@example.com",)))
    user.add(person("Grace", emails=("grace@example.org",)))

    graph.contact_sync.run(ALICE, connection_id)
    held = graph.contact_store.get(ALICE, ada.contact_id)
    assert held is not None
    assert held.fields.family_name is None
    user.propagation(0)  # the delay is over (moving the shared emulator clock would reach other tests)
    graph.contact_sync.run(ALICE, connection_id)

    now = graph.contact_store.get(ALICE, ada.contact_id)
    assert now is not None
    assert now.fields.family_name == "Byron"
    assert [c.emails for c in offered(graph)] == [("grace@example.org",)]
    assert len(by_email(user, "ada@example.com")) == 1


def test_deletion_rules_both_ways(graph: Graph, account: tuple[str, GooglePeopleUser]) -> None:
    connection_id, user = account
    ours = crm(graph, given_name="Ours", emails=["ours@example.com"])
    kept_in_crm = crm(graph, given_name="Unlinked", emails=["unlinked@example.com"])
    theirs = user.add(person("Theirs", emails=("theirs@example.com",)))
    crm(graph, given_name="Theirs", emails=["theirs@example.com"])  # linked by email, not ours
    graph.contact_sync.run(ALICE, connection_id)
    theirs_contact = graph.contact_store.owners(ALICE, emails=["theirs@example.com"])["theirs@example.com"]

    # Deleted in Google → unlinked in the CRM, never deleted.
    user.delete(by_email(user, "unlinked@example.com")[0]["resourceName"])
    # Deleted in the CRM: ours → deleted in Google; not ours → only unlinked.
    graph.contacts.delete(ALICE, ours.contact_id)
    graph.contacts.delete(ALICE, theirs_contact)
    graph.contact_sync.run(ALICE, connection_id)

    still = graph.contact_store.get(ALICE, kept_in_crm.contact_id)
    assert still is not None
    assert still.google is None
    assert by_email(user, "ours@example.com") == []
    assert [p["resourceName"] for p in by_email(user, "theirs@example.com")] == [theirs]
    assert offered(graph) == []  # the unlinked Google contact is not offered again ...
    declined = graph.candidates.page(ALICE, CandidateStatus.DECLINED).candidates
    assert [c.emails for c in declined] == [("theirs@example.com",)]  # ... but can be brought back


def test_a_no_op_incremental_sync_costs_one_google_and_two_dynamodb_requests(
    graph: Graph, account: tuple[str, GooglePeopleUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_id, user = account
    crm(graph, given_name="Ada", emails=["ada@example.com"])
    user.add(person("Grace", emails=("grace@example.org",)))
    graph.contact_sync.run(ALICE, connection_id)
    graph.contact_sync.run(ALICE, connection_id)  # our own writes come back once
    sync: ContactSync = graph.contact_sync
    dynamodb = []
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def counted(self: Any, operation: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            dynamodb.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    before = user.calls()
    outcome = sync.run(ALICE, connection_id)
    assert outcome is not None
    assert not outcome.full
    assert user.calls() - before == 1
    assert len(dynamodb) <= 2, dynamodb


def test_disconnecting_deletes_the_mirror_cursor_and_candidates_never_crm_contacts(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, user = account
    ada = crm(graph, given_name="Ada", emails=["ada@example.com"])
    user.add(person("Grace", emails=("grace@example.org",)))
    graph.contact_sync.run(ALICE, connection_id)

    graph.integrations.disconnect(ALICE, connection_id)

    assert graph.candidates.all(ALICE) == []
    assert graph.contact_mirror.contacts(ALICE) == {}
    assert graph.contact_mirror.cursor(ALICE, connection_id).version is None
    assert graph.contact_store.get(ALICE, ada.contact_id) is not None


def test_the_schedule_enqueues_one_sync_per_user_with_contacts_sync_on_in_the_users_group(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    connection_id, _ = account
    graph.contacts_sync_store.set(Principal("tenant-a", "bob"), None)  # sync off: not enqueued
    queue = RecordingQueue()
    requests = ContactSyncRequests(settings=graph.contacts_sync_store, queue=queue)

    assert requests.enqueue_all("scheduled@bucket-1") == 1
    assert requests.request(ALICE, reason="login", occasion="login@1")
    assert not requests.request(Principal("tenant-a", "bob"), reason="login", occasion="login@1")

    scheduled, login = queue.take()
    assert isinstance(scheduled, ContactSyncRequest)
    assert (scheduled.tenant_id, scheduled.user_id, scheduled.connection_id) == ("tenant-a", "alice", connection_id)
    assert scheduled.group_id == login.group_id  # one FIFO group per user: syncs run one at a time
    assert scheduled.deduplication_id != login.deduplication_id
    assert sync_message_adapter.validate_json(scheduled.model_dump_json()) == scheduled
    outcome = graph.contact_sync.run(Principal(scheduled.tenant_id, scheduled.user_id), scheduled.connection_id)
    assert outcome is not None
    assert outcome.full


def test_only_the_users_contacts_account_is_synced(graph: Graph, account: tuple[str, GooglePeopleUser]) -> None:
    connection_id, _ = account
    graph.contacts_sync_store.set(ALICE, None)
    assert graph.contact_sync.run(ALICE, connection_id) is None
    assert graph.contact_sync.run(Principal("tenant-b", "alice"), connection_id) is None


def test_the_mirror_reads_every_account_besides_one(graph: Graph) -> None:
    """The candidates rebuild reads the other accounts' mirrors only (it holds its own): the
    connections sorting just before and just after the one left out are read, it is not."""
    from crmsync.dal.gcontacts import MirroredContact

    mirror = graph.contact_mirror
    principal = Principal("tenant-mirror", "alice")
    for connection_id in ("c0", "c1", "c1a", "c1-b", "c2"):
        mirror.save(principal, connection_id, [MirroredContact(f"people/{connection_id}", '"1"')])
    others = mirror.contacts(principal, besides="c1")
    assert sorted(others) == [(c, f"people/{c}") for c in ("c0", "c1-b", "c1a", "c2")]
    assert sorted(mirror.contacts(principal)) == sorted([*others, ("c1", "people/c1")])
    assert list(mirror.contacts(principal, "c1")) == [("c1", "people/c1")]


def test_a_first_link_by_phone_unites_the_emails_and_phones(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """Matched by a phone, the CRM contact and the Google contact each have an email of the
    person: both keep both (neither side's address replaces the other's)."""
    connection_id, user = account
    grace = crm(graph, given_name="Grace", emails=["grace@work.example"], phones=["+1 650 253 0001"])
    user.add(person("Grace", emails=("grace@home.example",), phones=("+1 650 253 0001", "+1 650 253 0002")))

    graph.contact_sync.run(ALICE, connection_id)

    now = graph.contact_store.get(ALICE, grace.contact_id)
    assert now is not None
    assert now.google is not None
    assert set(now.fields.emails) == {"grace@work.example", "grace@home.example"}
    assert {p.e164 for p in now.fields.phones} == {"+16502530001", "+16502530002"}
    [google] = by_email(user, "grace@work.example")
    assert {e["value"] for e in google["emailAddresses"]} == {"grace@work.example", "grace@home.example"}
    assert offered(graph) == []


def test_a_crm_contact_claims_every_google_duplicate_of_its_person(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """Google holds the person twice; a CRM contact made later with their email takes both
    out of the review (not only the first), and when Google deletes the linked one, the other
    becomes the link instead of the CRM contact being left unlinked."""
    connection_id, user = account
    user.add(person("Alan", "Turing", emails=("alan@example.org",)))
    user.add(person("A.", "Turing", emails=("alan@example.org",), organization="Bletchley"))
    graph.contact_sync.run(ALICE, connection_id)
    assert len(offered(graph)) == 1  # one candidate for both

    alan = crm(graph, given_name="Alan", family_name="Turing", emails=["alan@example.org"])
    graph.contact_sync.run(ALICE, connection_id)
    assert offered(graph) == []
    assert graph.candidates.all(ALICE) == []
    assert len(by_email(user, "alan@example.org")) == 2  # matched: nothing pushed

    linked = graph.contact_store.get(ALICE, alan.contact_id)
    assert linked is not None
    assert linked.google is not None
    user.delete(linked.google.resource_name)
    graph.contact_sync.run(ALICE, connection_id)

    after = graph.contact_store.get(ALICE, alan.contact_id)
    assert after is not None
    [left] = by_email(user, "alan@example.org")
    assert after.google is not None
    assert after.google.resource_name == left["resourceName"]
    assert offered(graph) == []


def test_a_lost_update_answer_never_makes_a_later_crm_edit_lose(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """A run merges a Google edit into the CRM, then Google applies our update but the answer
    is lost (the run fails). The CRM user then edits the same field; Google gets another edit
    (its contact is dated later). The next run keeps the CRM's edit: the failed run saved
    the state both sides had reached, so Google's field reads as unchanged since."""
    from crmsync.errors import ProviderError
    from tests.support.access import LostAnswers, contact_sync_losing

    connection_id, user = account
    lose = LostAnswers()
    sync = contact_sync_losing(graph, lose, ["update"])
    ada = crm(graph, given_name="Ada", family_name="Byron", emails=["ada@example.com"])
    sync.run(ALICE, connection_id)
    [google] = by_email(user, "ada@example.com")
    name = google["resourceName"]

    user.edit(name, {"names": [{"givenName": "Augusta", "familyName": "Byron"}]})
    graph.contacts.change(ALICE, ada.contact_id, ContactInput(organization="Engines"))
    lose.left = 1
    with pytest.raises(ProviderError):
        sync.run(ALICE, connection_id)  # the CRM took "Augusta"; Google took "Engines", unanswered
    graph.contacts.change(ALICE, ada.contact_id, ContactInput(given_name="Countess"))
    user.edit(name, {"organizations": [{"name": "Engines", "title": "Analyst"}]})  # Google's is dated later

    sync.run(ALICE, connection_id)

    now = graph.contact_store.get(ALICE, ada.contact_id)
    assert now is not None
    assert (now.fields.given_name, now.fields.organization, now.fields.title) == ("Countess", "Engines", "Analyst")
    [after] = by_email(user, "ada@example.com")
    assert after["names"][0]["givenName"] == "Countess"


def test_a_number_shared_with_another_crm_contact_stays_in_google_and_out_of_the_crm_contact(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """Bob's Google contact has the office number Carol has in the CRM: Bob's CRM contact is
    linked (by his email) without the number (a number belongs to one CRM contact), Google
    keeps it, nothing is offered, and the next syncs leave both sides alone."""
    connection_id, user = account
    bob = crm(graph, given_name="Bob", emails=["bob@example.com"])
    carol = crm(graph, given_name="Carol", emails=["carol@example.com"], phones=["+1 650 253 0009"])
    user.add(person("Bob", emails=("bob@example.com",), phones=("+1 650 253 0009", "+1 650 253 0010")))

    graph.contact_sync.run(ALICE, connection_id)

    bob_now = graph.contact_store.get(ALICE, bob.contact_id)
    carol_now = graph.contact_store.get(ALICE, carol.contact_id)
    assert bob_now is not None
    assert carol_now is not None
    assert bob_now.google is not None
    assert [p.e164 for p in bob_now.fields.phones] == ["+16502530010"]
    assert [p.e164 for p in carol_now.fields.phones] == ["+16502530009"]
    [google] = by_email(user, "bob@example.com")
    assert len(google["phoneNumbers"]) == 2
    assert offered(graph) == []

    calls = user.calls()
    graph.contacts.change(ALICE, bob.contact_id, ContactInput(title="Engineer"))
    graph.contact_sync.run(ALICE, connection_id)
    graph.contact_sync.run(ALICE, connection_id)
    [after] = by_email(user, "bob@example.com")
    assert after.get("organizations", [{}])[0].get("title") == "Engineer"
    assert len(after["phoneNumbers"]) == 2  # the shared number is not taken from Google
    assert user.calls() - calls <= 4  # a listing and one update, then a listing: no churn


def test_an_imported_row_shown_before_a_google_edit_does_not_undo_the_edit(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """The review shows a row as of the last sync (here the person twice at Google). The user
    deletes the contact the row is linked through and edits the other at Google, then imports
    the row (its old name). The import is Google's data as of then, not a CRM edit: when the
    other contact becomes the link, Google's later edit wins instead of being undone."""
    from crmsync.domain.contacts import ReviewAction

    connection_id, user = account
    user.add(person("Old", "Name", ("row@example.com",)))
    user.add(person("Old", "Name", ("row@example.com",)))
    graph.contact_sync.run(ALICE, connection_id)
    [row] = offered(graph)
    first, other = (name for _, name in row.members)
    user.delete(first)
    user.edit(other, {"names": [{"givenName": "New", "familyName": "Name"}]})

    graph.contact_review.choose(ALICE, row.candidate_id, selected=True)
    graph.contact_review.answer(ALICE, ReviewAction.IMPORT_DONE)
    graph.contact_review.run_answer(ALICE)
    graph.contact_sync.run(ALICE, connection_id)

    [contact] = [c for c in graph.contact_store.page(ALICE, None, 50).items if "row@example.com" in c.fields.emails]
    assert contact.google is not None
    assert contact.google.resource_name == other
    assert contact.fields.given_name == "New"
    [google] = by_email(user, "row@example.com")
    assert google["names"][0]["givenName"] == "New"


def test_a_contact_deleted_in_the_crm_after_its_create_lost_its_answer_leaves_google_too(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """The sync creates a CRM contact in Google but the answer is lost (the run fails); the
    user deletes the contact in the CRM. The next sync finds the Google contact we made and
    deletes it: no contact of ours outlives its CRM contact."""
    from crmsync.errors import ProviderError
    from tests.support.access import LostAnswers, contact_sync_losing

    connection_id, user = account
    lost = LostAnswers()
    sync = contact_sync_losing(graph, lost, ["create"])
    sync.run(ALICE, connection_id)
    gone = crm(graph, given_name="Brief", emails=["brief@example.com"])
    lost.left = 1
    with pytest.raises(ProviderError):
        sync.run(ALICE, connection_id)
    assert len(by_email(user, "brief@example.com")) == 1  # Google made it
    graph.contacts.delete(ALICE, gone.contact_id)

    sync.run(ALICE, connection_id)

    assert by_email(user, "brief@example.com") == []
    assert offered(graph) == []


def test_a_google_contact_matching_a_number_the_crm_contact_just_gained_is_not_offered(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """Ann's Google contact brings her office number into the CRM; another Google contact
    with that number (the front desk) matches a CRM contact from then on: it is not offered."""
    connection_id, user = account
    ann = crm(graph, given_name="Ann", emails=["ann@example.com"])
    twin = user.add(person("Ann", emails=("ann@example.com",)))
    graph.contact_sync.run(ALICE, connection_id)  # linked; nothing of Ann's is pending now
    user.edit(twin, {"phoneNumbers": [{"value": "+1 650 253 0005"}]})
    user.add(person("Front", "Desk", emails=("desk@example.com",), phones=("+1 650 253 0005",)))

    graph.contact_sync.run(ALICE, connection_id)

    now = graph.contact_store.get(ALICE, ann.contact_id)
    assert now is not None
    assert [p.e164 for p in now.fields.phones] == ["+16502530005"]
    assert offered(graph) == []
    graph.contact_sync.run(ALICE, connection_id)
    assert offered(graph) == []


def test_a_lost_create_of_a_person_google_already_had_leaves_one_contact_in_google(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """The user adds Lin in both places; Google's copy has not reached the sync's listing yet
    (propagation delay), so the sync creates Lin in Google, and that answer is lost. Once both
    show, the CRM contact is linked to one of them and the copy we made is deleted."""
    from crmsync.errors import ProviderError
    from tests.support.access import LostAnswers, contact_sync_losing

    connection_id, user = account
    lost = LostAnswers()
    sync = contact_sync_losing(graph, lost, ["create"])
    sync.run(ALICE, connection_id)
    user.propagation(600)
    user.add(person("Lin", emails=("lin@example.com",)))
    lin = crm(graph, given_name="Lin", emails=["lin@example.com"])
    lost.left = 1
    with pytest.raises(ProviderError):
        sync.run(ALICE, connection_id)
    assert len(by_email(user, "lin@example.com")) == 2
    user.propagation(0)

    sync.run(ALICE, connection_id)
    sync.run(ALICE, connection_id)

    [left] = by_email(user, "lin@example.com")
    linked = graph.contact_store.get(ALICE, lin.contact_id)
    assert linked is not None
    assert linked.google is not None
    assert linked.google.resource_name == left["resourceName"]
    assert offered(graph) == []


def test_a_lost_create_seen_only_after_the_crm_deleted_the_contact_is_deleted_in_google(
    graph: Graph, account: tuple[str, GooglePeopleUser]
) -> None:
    """The create's answer is lost and Google's listing shows the new contact only minutes
    later (propagation delay); meanwhile the user deletes the contact in the CRM and a sync
    carries the deletion out. When the contact finally shows, it is ours for a deleted CRM
    contact: deleted in Google."""
    from crmsync.errors import ProviderError
    from tests.support.access import LostAnswers, contact_sync_losing

    connection_id, user = account
    lost = LostAnswers()
    sync = contact_sync_losing(graph, lost, ["create"])
    sync.run(ALICE, connection_id)
    user.propagation(600)
    brief = crm(graph, given_name="Brief", emails=["brief@example.com"])
    lost.left = 1
    with pytest.raises(ProviderError):
        sync.run(ALICE, connection_id)
    graph.contacts.delete(ALICE, brief.contact_id)
    sync.run(ALICE, connection_id)  # the deletion, before Google's listing shows the contact
    assert len(by_email(user, "brief@example.com")) == 1
    user.propagation(0)

    sync.run(ALICE, connection_id)

    assert by_email(user, "brief@example.com") == []
    assert offered(graph) == []
