"""Contract tests of the People v1 emulator: listing, paging and sync tokens.

Driven through google-api-python-client, the library the product uses. Each test is one
documented rule of people.connections.list / otherContacts.list (PROVIDERS.md §2.4,
https://developers.google.com/people/api/rest/v1/people.connections/list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

CONTACTS = "https://www.googleapis.com/auth/contacts"
OTHER = "https://www.googleapis.com/auth/contacts.other.readonly"
FIELDS = "names,emailAddresses,metadata"
WEEK = 7 * 24 * 3600


@pytest.fixture
def people(google_service: Callable[..., Any], email: str) -> Any:
    """With "other contacts" too (the suite checks they are apart from connections)."""
    return google_service("people", "v1", email, [CONTACTS, OTHER])


@pytest.fixture
def control(google_emulator: GoogleEmulator) -> Iterator[Callable[..., Any]]:
    """``control("POST", "/people/contacts", json=...)`` → the JSON answer of a control route."""
    with requests.Session() as session:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            response = session.request(method, f"{google_emulator.base_url}/_emulator{path}", timeout=10, **kwargs)
            response.raise_for_status()
            return response.json()

        yield call


def add(control: Callable[..., Any], email: str, *names: str, kind: str = "contacts") -> list[dict[str, Any]]:
    """Create people as the user (control API); ``names`` are given names."""
    people = [{"names": [{"givenName": n}], "emailAddresses": [{"value": f"{n.lower()}@x.example"}]} for n in names]
    return list(control("POST", f"/people/{kind}", json={"email": email, "people": people})["people"])


def full_sync(people: Any, **params: Any) -> tuple[list[dict[str, Any]], str | None, int]:
    """Page through connections.list; returns (people, nextSyncToken, pages)."""
    items: list[dict[str, Any]] = []
    request = people.people().connections().list(resourceName="people/me", personFields=FIELDS, **params)
    pages, token = 0, None
    while request is not None:
        page = request.execute()
        pages += 1
        items += page.get("connections", [])
        token = page.get("nextSyncToken")
        request = people.people().connections().list_next(request, page)
    return items, token, pages


def detail_reasons(error: HttpError) -> list[str]:
    return [str(d.get("reason")) for d in error.error_details if isinstance(d, dict)]


def given_names(items: list[dict[str, Any]]) -> list[str]:
    return [p["names"][0]["givenName"] for p in items if p.get("names")]


# ---------------------------------------------------------------------- request rules


def test_person_fields_mask_is_required(people: Any) -> None:
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(resourceName="people/me").execute()
    assert caught.value.status_code == 400
    assert caught.value.reason.startswith("personFields mask is required. Please specify one or more valid paths")


def test_unknown_person_field_path_is_rejected(people: Any) -> None:
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(resourceName="people/me", personFields="names,shoeSize").execute()
    assert caught.value.status_code == 400
    assert "shoeSize" in caught.value.reason


def test_connections_resource_name_must_be_people_me(people: Any, control: Callable[..., Any], email: str) -> None:
    [contact] = add(control, email, "Ada")
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(resourceName=contact["resourceName"], personFields=FIELDS).execute()
    assert caught.value.status_code == 400


def test_page_size_must_be_between_1_and_1000(people: Any) -> None:
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(resourceName="people/me", personFields=FIELDS, pageSize=1001).execute()
    assert caught.value.status_code == 400
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(resourceName="people/me", personFields=FIELDS, pageSize=-1).execute()
    assert caught.value.status_code == 400
    # "Defaults to 100 if not set or set to 0."
    people.people().connections().list(resourceName="people/me", personFields=FIELDS, pageSize=0).execute()
    people.people().connections().list(resourceName="people/me", personFields=FIELDS, pageSize=1000).execute()


def test_page_size_defaults_to_100(people: Any, control: Callable[..., Any], email: str) -> None:
    add(control, email, *[f"P{i}" for i in range(101)])
    page = people.people().connections().list(resourceName="people/me", personFields="names").execute()
    assert len(page["connections"]) == 100
    assert "nextPageToken" in page
    assert page["totalItems"] == 101


# ---------------------------------------------------------------------- paging and sync


def test_pages_return_every_contact_exactly_once(people: Any, control: Callable[..., Any], email: str) -> None:
    created = add(control, email, *[f"P{i}" for i in range(7)])
    items, _, pages = full_sync(people, pageSize=3)
    assert pages == 3
    assert sorted(p["resourceName"] for p in items) == sorted(p["resourceName"] for p in created)


def test_next_sync_token_only_on_last_page(people: Any, control: Callable[..., Any], email: str) -> None:
    add(control, email, *[f"P{i}" for i in range(5)])
    request = (
        people.people()
        .connections()
        .list(resourceName="people/me", personFields=FIELDS, pageSize=2, requestSyncToken=True)
    )
    pages = []
    while request is not None:
        page = request.execute()
        pages.append(page)
        request = people.people().connections().list_next(request, page)
    assert len(pages) == 3
    assert [("nextSyncToken" in p) for p in pages] == [False, False, True]
    assert [("nextPageToken" in p) for p in pages] == [True, True, False]


def test_next_sync_token_only_when_requested(people: Any, control: Callable[..., Any], email: str) -> None:
    add(control, email, "Ada")
    page = people.people().connections().list(resourceName="people/me", personFields=FIELDS).execute()
    assert "nextSyncToken" not in page


def test_sync_token_returns_only_people_changed_since(people: Any, control: Callable[..., Any], email: str) -> None:
    add(control, email, "Old1", "Old2")
    _, token, _ = full_sync(people, requestSyncToken=True)
    new = people.people().createContact(body={"names": [{"givenName": "New"}]}).execute()
    # Writes are visible to sync at once in the emulator (Google: "may have a propagation delay").
    items, next_token, _ = full_sync(people, requestSyncToken=True, syncToken=token)
    assert [p["resourceName"] for p in items] == [new["resourceName"]]
    assert next_token
    assert next_token != token
    again, _, _ = full_sync(people, requestSyncToken=True, syncToken=next_token)
    assert again == []


def test_deleted_people_come_back_with_metadata_deleted(people: Any, control: Callable[..., Any], email: str) -> None:
    [keep, gone] = add(control, email, "Keep", "Gone")
    _, token, _ = full_sync(people, requestSyncToken=True)
    assert people.people().deleteContact(resourceName=gone["resourceName"]).execute() == {}
    items, _, _ = full_sync(people, requestSyncToken=True, syncToken=token)
    assert len(items) == 1
    [tombstone] = items
    assert tombstone["resourceName"] == gone["resourceName"]
    assert tombstone["metadata"]["deleted"] is True
    assert "names" not in tombstone
    full, _, _ = full_sync(people)
    assert [p["resourceName"] for p in full] == [keep["resourceName"]]
    assert "deleted" not in full[0]["metadata"]


def test_changes_made_while_paging_come_in_the_next_sync(people: Any, control: Callable[..., Any], email: str) -> None:
    add(control, email, "A", "B", "C")
    first = (
        people.people()
        .connections()
        .list(resourceName="people/me", personFields=FIELDS, pageSize=2, requestSyncToken=True)
        .execute()
    )
    late = people.people().createContact(body={"names": [{"givenName": "Late"}]}).execute()
    last = (
        people.people()
        .connections()
        .list(
            resourceName="people/me",
            personFields=FIELDS,
            pageSize=2,
            requestSyncToken=True,
            pageToken=first["nextPageToken"],
        )
        .execute()
    )
    items, _, _ = full_sync(people, pageSize=2, requestSyncToken=True, syncToken=last["nextSyncToken"])
    assert late["resourceName"] in [p["resourceName"] for p in items]


def test_page_token_requires_the_same_parameters_as_the_first_call(
    people: Any, control: Callable[..., Any], email: str
) -> None:
    add(control, email, "A", "B", "C")
    first = people.people().connections().list(resourceName="people/me", personFields=FIELDS, pageSize=2).execute()
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(
            resourceName="people/me", personFields="names", pageSize=2, pageToken=first["nextPageToken"]
        ).execute()
    assert caught.value.status_code == 400
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(
            resourceName="people/me",
            personFields=FIELDS,
            pageSize=2,
            sortOrder="FIRST_NAME_ASCENDING",
            pageToken=first["nextPageToken"],
        ).execute()
    assert caught.value.status_code == 400


def test_sync_token_requires_the_same_parameters_as_the_first_call(
    people: Any, control: Callable[..., Any], email: str
) -> None:
    add(control, email, "A")
    _, token, _ = full_sync(people, requestSyncToken=True)
    with pytest.raises(HttpError) as caught:
        people.people().connections().list(
            resourceName="people/me", personFields="names", requestSyncToken=True, syncToken=token
        ).execute()
    assert caught.value.status_code == 400
    # The same mask in another order is the same request.
    people.people().connections().list(
        resourceName="people/me", personFields="metadata,emailAddresses,names", requestSyncToken=True, syncToken=token
    ).execute()


def test_sync_tokens_expire_7_days_after_the_full_sync(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any], people: Any, email: str
) -> None:
    _, token, _ = full_sync(people, requestSyncToken=True)
    google_emulator.advance_clock(WEEK - 60)
    # Access tokens live an hour: a client that syncs a week later has a fresh one.
    people = google_service("people", "v1", email, [CONTACTS, OTHER])
    _, newer, _ = full_sync(people, requestSyncToken=True, syncToken=token)  # still valid
    google_emulator.advance_clock(120)
    people = google_service("people", "v1", email, [CONTACTS, OTHER])
    for stale in (token, newer):  # incremental syncs do not extend the full sync's week
        with pytest.raises(HttpError) as caught:
            full_sync(people, requestSyncToken=True, syncToken=stale)
        assert caught.value.status_code == 400
        assert "EXPIRED_SYNC_TOKEN" in detail_reasons(caught.value)
    _, fresh, _ = full_sync(people, requestSyncToken=True)
    full_sync(people, requestSyncToken=True, syncToken=fresh)


def test_expired_sync_token_error_names_expired_sync_token(
    people: Any, control: Callable[..., Any], email: str
) -> None:
    _, token, _ = full_sync(people, requestSyncToken=True)
    assert control("POST", "/people/expire-sync-tokens", json={"email": email}) == {"expired": 1}
    with pytest.raises(HttpError) as caught:
        full_sync(people, requestSyncToken=True, syncToken=token)
    error = caught.value
    assert error.status_code == 400
    assert error.reason == "Sync token is expired. Clear local cache and retry call without the sync token."
    body = error.content.decode()
    assert '"status": "FAILED_PRECONDITION"' in body
    assert error.error_details == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "EXPIRED_SYNC_TOKEN",
            "domain": "people.googleapis.com",
        }
    ]


def test_tokens_are_bound_to_the_account(
    google_service: Callable[..., Any], people: Any, control: Callable[..., Any], email: str
) -> None:
    add(control, email, "A", "B")
    _, token, _ = full_sync(people, requestSyncToken=True)
    page = people.people().connections().list(resourceName="people/me", personFields=FIELDS, pageSize=1).execute()
    assert len(token or "") >= 32
    assert email.split("@")[0] not in (token or "")
    intruder = google_service("people", "v1", f"other-{email}", [CONTACTS])
    with pytest.raises(HttpError) as caught:
        full_sync(intruder, requestSyncToken=True, syncToken=token)
    assert caught.value.status_code == 400
    with pytest.raises(HttpError) as caught:
        intruder.people().connections().list(
            resourceName="people/me", personFields=FIELDS, pageSize=1, pageToken=page["nextPageToken"]
        ).execute()
    assert caught.value.status_code == 400


def test_first_page_of_a_full_sync_has_an_extra_quota(people: Any, control: Callable[..., Any], email: str) -> None:
    add(control, email, "A", "B")
    control("POST", "/people/full-sync-quota", json={"limit": 1, "window_seconds": 60, "email": email})
    try:
        first = (
            people.people()
            .connections()
            .list(resourceName="people/me", personFields=FIELDS, pageSize=1, requestSyncToken=True)
            .execute()
        )
        with pytest.raises(HttpError) as caught:
            people.people().connections().list(resourceName="people/me", personFields=FIELDS).execute()
        assert caught.value.status_code == 429
        assert '"status": "RESOURCE_EXHAUSTED"' in caught.value.content.decode()
        # Only the first page of a full sync counts: later pages and incremental syncs do not.
        last = (
            people.people()
            .connections()
            .list(
                resourceName="people/me",
                personFields=FIELDS,
                pageSize=1,
                requestSyncToken=True,
                pageToken=first["nextPageToken"],
            )
            .execute()
        )
        people.people().connections().list(
            resourceName="people/me",
            personFields=FIELDS,
            pageSize=1,
            requestSyncToken=True,
            syncToken=last["nextSyncToken"],
        ).execute()
    finally:
        control("POST", "/people/full-sync-quota", json={"limit": 0})


# ---------------------------------------------------------------------- other contacts


def test_other_contacts_read_mask_is_required(people: Any) -> None:
    with pytest.raises(HttpError) as caught:
        people.otherContacts().list().execute()
    assert caught.value.status_code == 400
    assert caught.value.reason.startswith("readMask mask is required")
    with pytest.raises(HttpError) as caught:  # only these paths with the default CONTACT source
        people.otherContacts().list(readMask="organizations").execute()
    assert caught.value.status_code == 400


def test_other_contacts_are_separate_from_connections(people: Any, control: Callable[..., Any], email: str) -> None:
    [mine] = add(control, email, "Mine")
    [other] = add(control, email, "Stranger", kind="otherContacts")
    assert other["resourceName"].startswith("otherContacts/c")
    connections, _, _ = full_sync(people)
    assert [p["resourceName"] for p in connections] == [mine["resourceName"]]
    listed = people.otherContacts().list(readMask="names,emailAddresses").execute()
    assert [p["resourceName"] for p in listed["otherContacts"]] == [other["resourceName"]]
    assert listed["otherContacts"][0]["emailAddresses"][0]["value"] == "stranger@x.example"


def test_other_contacts_have_the_same_sync_semantics(people: Any, control: Callable[..., Any], email: str) -> None:
    first = add(control, email, "O1", "O2", "O3", kind="otherContacts")
    request = people.otherContacts().list(readMask="names,metadata", pageSize=2, requestSyncToken=True)
    pages = []
    while request is not None:
        page = request.execute()
        pages.append(page)
        request = people.otherContacts().list_next(request, page)
    assert [("nextSyncToken" in p) for p in pages] == [False, True]
    token = pages[-1]["nextSyncToken"]
    cid = first[0]["resourceName"].split("/")[1]
    control("DELETE", f"/people/otherContacts/{cid}", params={"email": email})
    changed = people.otherContacts().list(readMask="names,metadata", pageSize=2, requestSyncToken=True, syncToken=token)
    result = changed.execute()
    assert [(p["resourceName"], p["metadata"].get("deleted")) for p in result["otherContacts"]] == [
        (first[0]["resourceName"], True)
    ]
    # A token of one collection means nothing to the other.
    with pytest.raises(HttpError) as caught:
        full_sync(people, pageSize=2, requestSyncToken=True, syncToken=token)
    assert caught.value.status_code == 400
    control("POST", "/people/expire-sync-tokens", json={"email": email})
    with pytest.raises(HttpError) as caught:
        people.otherContacts().list(
            readMask="names,metadata", pageSize=2, requestSyncToken=True, syncToken=result["nextSyncToken"]
        ).execute()
    assert "EXPIRED_SYNC_TOKEN" in detail_reasons(caught.value)
