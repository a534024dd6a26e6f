"""The contacts port's contract, run over the Google People adapter (against the emulator,
through google-api-python-client, with a refresh token from the emulator's consent flow)
and over the in-memory fake. Whatever passes here, issue 13's sync may rely on."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from crmsync.config import GoogleSettings
from crmsync.ports.contacts import (
    BATCH_CREATE_LIMIT,
    BATCH_DELETE_LIMIT,
    BATCH_UPDATE_LIMIT,
    ContactDraft,
    ContactsPort,
    ContactUpdate,
    ProviderContact,
)
from crmsync.ports.errors import CursorInvalid, PreconditionFailed, ProviderError, ProviderNotFound
from crmsync.providers.google.api import forget_credentials
from crmsync.providers.google.people import GooglePeople
from devstack.google import GoogleEmulator
from tests.fakes.contacts import FakeContacts
from tests.support.google_consent import consent, query

pytestmark = pytest.mark.integration

CLIENT_ID = "contacts-port-client"
CLIENT_SECRET = "contacts-port-secret"
REDIRECT_URI = "http://127.0.0.1/oauth/callback"
SCOPES = "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/contacts"
PAGE_SIZE = 3


@dataclass
class Side:
    """The port under test, and the user acting in (Google) Contacts out of band."""

    port: ContactsPort
    user_add: Callable[[ContactDraft], str]
    user_edit: Callable[[str, ContactDraft], object]
    user_delete: Callable[[str], None]
    expire: Callable[[], None]
    set_propagation: Callable[[float], object]
    advance: Callable[[float], object]


def _person(draft: ContactDraft) -> dict[str, Any]:
    """What the user types in Google Contacts (no key: that is ours only)."""
    person: dict[str, Any] = {"emailAddresses": [{"value": e} for e in draft.emails]}
    name = {k: v for k, v in (("givenName", draft.given_name), ("familyName", draft.family_name)) if v}
    person["names"] = [name] if name else []
    person["phoneNumbers"] = [{"value": p} for p in draft.phones]
    org = {k: v for k, v in (("name", draft.organization), ("title", draft.title)) if v}
    person["organizations"] = [org] if org else []
    return person


def _refresh_token(emulator: GoogleEmulator, email: str) -> str:
    """A refresh token for ``email`` the way production gets one: consent, then the code."""
    emulator.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    emulator.add_account(email)
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": SCOPES,
        "access_type": "offline",
        "prompt": "consent",
    }
    url = requests.Request("GET", emulator.endpoints["auth_uri"], params=params).prepare().url
    assert url
    code = query(consent(url, email))["code"]
    answer = requests.post(
        emulator.endpoints["token_uri"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["refresh_token"])


def _google_side(emulator: GoogleEmulator) -> Side:
    email = f"contacts-{uuid.uuid4().hex[:12]}@example.com"
    settings = GoogleSettings(
        client_id=CLIENT_ID,
        client_secret_arn="arn:aws:secretsmanager:us-east-1:000000000000:secret:unused",
        token_uri=emulator.endpoints["token_uri"],
        api_root=emulator.base_url,
    )
    port = GooglePeople(settings, _refresh_token(emulator, email), lambda: CLIENT_SECRET, page_size=PAGE_SIZE)
    control = f"{emulator.base_url}/_emulator/people"

    def call(method: str, path: str, body: dict[str, Any]) -> Any:
        where = {"params": {"email": email}} if method == "DELETE" else {"json": {"email": email, **body}}
        answer = requests.request(method, f"{control}{path}", timeout=10, **where)
        answer.raise_for_status()
        return answer.json()

    def cid(resource_name: str) -> str:
        return resource_name.removeprefix("people/")

    return Side(
        port=port,
        user_add=lambda d: str(call("POST", "/contacts", {"person": _person(d)})["resourceName"]),
        user_edit=lambda rn, d: call("PATCH", f"/contacts/{cid(rn)}", {"person": _person(d)}),
        user_delete=lambda rn: call("DELETE", f"/contacts/{cid(rn)}", {}),
        expire=lambda: call("POST", "/expire-sync-tokens", {}),
        set_propagation=lambda seconds: call("POST", "/propagation", {"seconds": seconds}),
        advance=emulator.advance_clock,
    )


def _fake_side() -> Side:
    fake = FakeContacts(page_size=PAGE_SIZE)
    return Side(
        port=fake,
        user_add=lambda d: fake.user_add(d).resource_name,
        user_edit=lambda rn, d: fake.user_edit(rn, d),
        user_delete=fake.user_delete,
        expire=fake.expire_cursors,
        set_propagation=fake.set_propagation,
        advance=fake.advance,
    )


@pytest.fixture(params=["google", "fake"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    if request.param == "google":
        emulator: GoogleEmulator = request.getfixturevalue("google_emulator")
        yield _google_side(emulator)
        forget_credentials()
    else:
        yield _fake_side()


def draft(n: int, **fields: Any) -> ContactDraft:
    values: dict[str, Any] = {
        "given_name": f"Given{n}",
        "family_name": f"Family{n}",
        "emails": (f"person{n}@example.com",),
        "phones": (f"+1 202 555 {n:04d}",),
        "organization": f"Org {n}",
        "title": f"Title {n}",
    }
    return ContactDraft(**{**values, **fields})


def listing(port: ContactsPort, cursor: str | None) -> tuple[list[ProviderContact], str, list[str | None]]:
    """Every page of a listing: (contacts, final cursor, each page's cursor)."""
    contacts: list[ProviderContact] = []
    cursors: list[str | None] = []
    for page in port.contact_pages(cursor=cursor):
        contacts += page.contacts
        cursors.append(page.cursor)
    final = cursors[-1]
    assert final, "the last page carries the cursor"
    return contacts, final, cursors


def test_full_listing_pages_and_ends_with_a_cursor(side: Side) -> None:
    names = [side.user_add(draft(n)) for n in range(7)]

    contacts, _, cursors = listing(side.port, None)

    assert len(cursors) == 3  # 7 contacts, 3 a page
    assert all(c is None for c in cursors[:-1])
    assert sorted(c.resource_name for c in contacts) == sorted(names)
    third = next(c for c in contacts if c.resource_name == names[3])
    assert (third.given_name, third.family_name, third.emails, third.phones) == (
        "Given3",
        "Family3",
        ("person3@example.com",),
        ("+1 202 555 0003",),
    )
    assert (third.organization, third.title, third.key, third.deleted) == ("Org 3", "Title 3", None, False)
    assert third.etag
    assert third.updated_at is not None


def test_incremental_listing_returns_only_what_changed_out_of_band(side: Side) -> None:
    kept, edited, removed = (side.user_add(draft(n)) for n in range(3))
    _, cursor, _ = listing(side.port, None)

    added = side.user_add(draft(10))
    side.user_edit(edited, draft(11, given_name="Renamed"))
    side.user_delete(removed)
    changes, next_cursor, _ = listing(side.port, cursor)

    by_name = {c.resource_name: c for c in changes}
    assert set(by_name) == {added, edited, removed}
    assert kept not in by_name
    assert by_name[removed].deleted
    assert not by_name[added].deleted
    assert by_name[added].given_name == "Given10"
    assert by_name[edited].given_name == "Renamed"
    assert not by_name[edited].deleted
    again, _, _ = listing(side.port, next_cursor)
    assert again == []


def test_an_expired_cursor_is_cursor_invalid_and_a_full_listing_recovers(side: Side) -> None:
    name = side.user_add(draft(1))
    _, cursor, _ = listing(side.port, None)
    side.expire()

    with pytest.raises(CursorInvalid):
        listing(side.port, cursor)

    contacts, _, _ = listing(side.port, None)
    assert [c.resource_name for c in contacts] == [name]


def test_create_a_batch_over_the_provider_limit_and_read_it_back(side: Side) -> None:
    drafts = [draft(n, key=f"crm-{n:04d}") for n in range(BATCH_CREATE_LIMIT + 1)]

    created = side.port.create(drafts)

    assert [c.key for c in created] == [d.key for d in drafts]
    assert len({c.resource_name for c in created}) == len(drafts)
    last = side.port.get(created[-1].resource_name)
    assert (last.given_name, last.emails, last.organization, last.key) == (
        f"Given{BATCH_CREATE_LIMIT}",
        (f"person{BATCH_CREATE_LIMIT}@example.com",),
        f"Org {BATCH_CREATE_LIMIT}",
        f"crm-{BATCH_CREATE_LIMIT:04d}",
    )
    contacts, _, _ = listing(side.port, None)
    assert sorted(c.key or "" for c in contacts) == sorted(d.key or "" for d in drafts)


def test_update_with_the_current_etag_and_a_stale_one(side: Side) -> None:
    (created,) = side.port.create([draft(1, key="crm-1")])
    assert created.etag

    updated = side.port.update(created.resource_name, created.etag, draft(2, emails=(), organization=None))

    assert updated.etag
    assert updated.etag != created.etag
    read = side.port.get(created.resource_name)
    assert (read.given_name, read.emails, read.organization, read.title) == ("Given2", (), None, "Title 2")
    assert read.key == "crm-1", "an update without a key keeps the contact's"
    with pytest.raises(PreconditionFailed):
        side.port.update(created.resource_name, created.etag, draft(3))
    side.user_edit(created.resource_name, draft(4))
    with pytest.raises(PreconditionFailed):
        side.port.update(created.resource_name, updated.etag, draft(5))
    assert side.port.get(created.resource_name).given_name == "Given4"


def test_delete_then_delete_again_is_not_found(side: Side) -> None:
    (created,) = side.port.create([draft(1)])

    side.port.delete(created.resource_name)

    with pytest.raises(ProviderNotFound):
        side.port.delete(created.resource_name)
    with pytest.raises(ProviderNotFound):
        side.port.get(created.resource_name)
    assert created.etag
    with pytest.raises(ProviderNotFound):
        side.port.update(created.resource_name, created.etag, draft(2))


def test_ensure_group_is_idempotent_and_membership_shows_on_the_contact(side: Side) -> None:
    one, two = side.port.create([draft(1), draft(2)])
    _, cursor, _ = listing(side.port, None)

    group = side.port.ensure_group("Acme CRM")
    assert side.port.ensure_group("Acme CRM") == group
    assert side.port.ensure_group("Other CRM") != group
    side.port.add_members(group, [one.resource_name])
    side.port.add_members(group, [one.resource_name])  # already a member: nothing changes

    assert group.resource_name in side.port.get(one.resource_name).groups
    assert group.resource_name not in side.port.get(two.resource_name).groups
    changes, _, _ = listing(side.port, cursor)
    assert [(c.resource_name, group.resource_name in c.groups) for c in changes] == [(one.resource_name, True)]
    with pytest.raises(ProviderNotFound):
        side.port.add_members(group, [two.resource_name, "people/c404"])
    assert group.resource_name in side.port.get(two.resource_name).groups, "the others are added"


def test_update_many_over_the_limit_reports_stale_and_gone_contacts_one_by_one(side: Side) -> None:
    created = side.port.create([draft(n, key=f"crm-{n:04d}") for n in range(BATCH_UPDATE_LIMIT + 12)])
    stale, gone = created[3], created[BATCH_UPDATE_LIMIT + 1]
    keyless = {1, 2}  # a draft without a key keeps the contact's; more than a batch have one
    side.user_edit(stale.resource_name, draft(900))
    side.user_delete(gone.resource_name)
    updates = [
        ContactUpdate(c.resource_name, c.etag or "", draft(1000 + n, key=None if n in keyless else f"new-{n}"))
        for n, c in enumerate(created)
    ]

    outcomes = side.port.update_many(updates)

    assert len(outcomes) == len(updates)
    assert isinstance(outcomes[3], PreconditionFailed)
    assert isinstance(outcomes[BATCH_UPDATE_LIMIT + 1], ProviderNotFound)
    applied = [(n, o) for n, o in enumerate(outcomes) if isinstance(o, ProviderContact)]
    assert len(applied) == len(updates) - 2
    for n, contact in applied:
        assert contact.resource_name == created[n].resource_name
        assert contact.given_name == f"Given{1000 + n}"
        assert contact.key == (created[n].key if n in keyless else f"new-{n}")
        assert contact.etag != created[n].etag
    last = side.port.get(created[BATCH_UPDATE_LIMIT].resource_name)
    number = 1000 + BATCH_UPDATE_LIMIT
    assert (last.given_name, last.emails) == (f"Given{number}", (f"person{number}@example.com",))
    assert side.port.get(stale.resource_name).given_name == "Given900", "the stale update was not applied"


def test_update_many_refuses_a_contact_named_twice(side: Side) -> None:
    (created,) = side.port.create([draft(1)])
    twice = [ContactUpdate(created.resource_name, created.etag or "", draft(n)) for n in (2, 3)]

    with pytest.raises(ProviderError):
        side.port.update_many(twice)

    assert side.port.get(created.resource_name).given_name == "Given1"


def test_delete_many_over_the_limit_returns_the_contacts_already_gone(side: Side) -> None:
    created = side.port.create([draft(n) for n in range(BATCH_DELETE_LIMIT + 2)])
    kept = side.user_add(draft(9999))
    gone = created[BATCH_DELETE_LIMIT // 2].resource_name
    side.user_delete(gone)
    _, cursor, _ = listing(side.port, None)
    names = [c.resource_name for c in created]

    assert side.port.delete_many([*names, names[0]]) == [gone]

    changes, _, _ = listing(side.port, cursor)
    assert sorted(c.resource_name for c in changes) == sorted(n for n in names if n != gone)
    assert all(c.deleted for c in changes)
    assert side.port.get(kept).given_name == "Given9999"
    assert side.port.delete_many([names[0]]) == [names[0]]


def test_updated_at_is_the_providers_time_of_the_last_change(side: Side) -> None:
    (created,) = side.port.create([draft(1)])
    assert created.updated_at is not None
    side.advance(90)

    updated = side.port.update(created.resource_name, created.etag or "", draft(2))

    assert updated.updated_at is not None
    assert (updated.updated_at - created.updated_at).total_seconds() >= 90
    assert side.port.get(created.resource_name).updated_at == updated.updated_at


def test_writes_reach_incremental_listings_only_after_the_propagation_delay(side: Side) -> None:
    (ours,) = side.port.create([draft(1, key="crm-1")])
    _, cursor, _ = listing(side.port, None)
    side.set_propagation(120)

    (updated,) = side.port.update_many([ContactUpdate(ours.resource_name, ours.etag or "", draft(2))])
    theirs = side.user_add(draft(3))

    assert isinstance(updated, ProviderContact)
    assert side.port.get(ours.resource_name).given_name == "Given2", "a read sees the write at once"
    changes, cursor, _ = listing(side.port, cursor)
    assert changes == []
    full, _, _ = listing(side.port, None)
    assert {c.resource_name for c in full} == {ours.resource_name, theirs}, "a full listing is not delayed"
    side.advance(121)
    changes, cursor, _ = listing(side.port, cursor)
    assert [(c.resource_name, c.given_name) for c in changes] == [(ours.resource_name, "Given2"), (theirs, "Given3")]
    assert listing(side.port, cursor)[0] == []
