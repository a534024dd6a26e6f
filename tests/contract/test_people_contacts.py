"""Contract tests of the People v1 emulator: reading and writing contacts, and acting as
the user through the control API and the HTML page.

Driven through google-api-python-client. Each test is one documented rule of people.get,
createContact, updateContact or deleteContact (PROVIDERS.md §2.4,
https://developers.google.com/people/api/rest/v1/people/updateContact).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator
from devstack.google.apis.people import PeopleStore
from devstack.google.state import State

pytestmark = pytest.mark.integration

CONTACTS = "https://www.googleapis.com/auth/contacts"
CONTACTS_READONLY = "https://www.googleapis.com/auth/contacts.readonly"
FIELDS = "names,emailAddresses,phoneNumbers,organizations,metadata"


@pytest.fixture
def http(google_emulator: GoogleEmulator) -> Iterator[Callable[..., requests.Response]]:
    """``http("POST", "/people/contacts", json=...)`` → the response of a control route."""
    with requests.Session() as session:

        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            kwargs.setdefault("allow_redirects", False)
            return session.request(method, f"{google_emulator.base_url}{path}", timeout=10, **kwargs)

        yield call


def create(people: Any, given: str = "Ada", family: str = "Lovelace", **extra: Any) -> dict[str, Any]:
    body = {"names": [{"givenName": given, "familyName": family}], **extra}
    return dict(people.people().createContact(body=body, personFields=FIELDS).execute())


def sync_changes(people: Any, token: str) -> tuple[list[dict[str, Any]], str]:
    page = (
        people.people()
        .connections()
        .list(resourceName="people/me", personFields=FIELDS, requestSyncToken=True, syncToken=token)
        .execute()
    )
    return page.get("connections", []), page["nextSyncToken"]


def sync_token(people: Any) -> str:
    # Same parameters as sync_changes: "all other request parameters must match the first call".
    page = (
        people.people()
        .connections()
        .list(resourceName="people/me", personFields=FIELDS, requestSyncToken=True)
        .execute()
    )
    return str(page["nextSyncToken"])


# ---------------------------------------------------------------------- create and read


def test_create_contact_returns_new_resource_name_and_etag(people: Any) -> None:
    first = create(people, emailAddresses=[{"value": "ada@example.com"}])
    second = create(people, "Grace", "Hopper")
    assert first["resourceName"].startswith("people/c")
    assert first["resourceName"][len("people/c") :].isdigit()
    assert first["resourceName"] != second["resourceName"]
    assert first["etag"]
    assert first["etag"] != second["etag"]
    [source] = first["metadata"]["sources"]
    assert source["type"] == "CONTACT"
    assert source["etag"]
    assert "updateTime" in source
    assert first["names"][0]["displayName"] == "Ada Lovelace"
    assert first["emailAddresses"][0]["value"] == "ada@example.com"
    fetched = people.people().get(resourceName=first["resourceName"], personFields=FIELDS).execute()
    assert fetched["etag"] == first["etag"]


def test_get_requires_person_fields(people: Any) -> None:
    contact = create(people)
    with pytest.raises(HttpError) as caught:
        people.people().get(resourceName=contact["resourceName"]).execute()
    assert caught.value.status_code == 400
    assert caught.value.reason.startswith("personFields mask is required")


def test_responses_include_only_requested_fields(people: Any) -> None:
    contact = create(people, phoneNumbers=[{"value": "+1 555 0100"}], emailAddresses=[{"value": "a@x.example"}])
    got = people.people().get(resourceName=contact["resourceName"], personFields="phoneNumbers").execute()
    assert set(got) == {"resourceName", "etag", "phoneNumbers"}
    listed = people.people().connections().list(resourceName="people/me", personFields="names").execute()["connections"]
    assert set(listed[0]) == {"resourceName", "etag", "names"}


def test_get_people_me_returns_the_users_profile(people: Any, email: str) -> None:
    me = people.people().get(resourceName="people/me", personFields="names,emailAddresses,metadata").execute()
    assert me["emailAddresses"][0]["value"] == email
    assert me["metadata"]["sources"][0]["type"] == "PROFILE"
    assert me["resourceName"] == f"people/{me['metadata']['sources'][0]['id']}"


def test_get_of_a_missing_contact_is_404(people: Any) -> None:
    with pytest.raises(HttpError) as caught:
        people.people().get(resourceName="people/c1234567890123456789", personFields="names").execute()
    assert caught.value.status_code == 404


def test_batch_get_answers_each_resource_name_separately(people: Any) -> None:
    contact = create(people)
    missing = "people/c1234567890123456789"
    answer = (
        people.people()
        .getBatchGet(resourceNames=[contact["resourceName"], missing, "people/me"], personFields="names")
        .execute()
    )
    statuses = [(r["requestedResourceName"], r["httpStatusCode"]) for r in answer["responses"]]
    assert statuses == [(contact["resourceName"], 200), (missing, 404), ("people/me", 200)]
    assert answer["responses"][0]["person"]["names"][0]["givenName"] == "Ada"


def test_read_only_scope_cannot_write(google_service: Callable[..., Any], email: str) -> None:
    readonly = google_service("people", "v1", email, [CONTACTS_READONLY])
    readonly.people().connections().list(resourceName="people/me", personFields="names").execute()
    with pytest.raises(HttpError) as caught:
        readonly.people().createContact(body={"names": [{"givenName": "X"}]}).execute()
    assert caught.value.status_code == 403
    assert caught.value.error_details[0]["reason"] == "insufficientPermissions"


# ---------------------------------------------------------------------- update and delete


def test_update_contact_requires_update_person_fields(people: Any) -> None:
    contact = create(people)
    with pytest.raises(HttpError) as caught:
        people.people().updateContact(
            resourceName=contact["resourceName"], body={**contact, "names": [{"givenName": "Ada"}]}
        ).execute()
    assert caught.value.status_code == 400
    assert caught.value.reason.startswith("updatePersonFields mask is required")


def test_update_contact_requires_metadata_sources(people: Any) -> None:
    contact = create(people)
    body = {"etag": contact["etag"], "names": [{"givenName": "Augusta"}]}
    with pytest.raises(HttpError) as caught:
        people.people().updateContact(
            resourceName=contact["resourceName"], updatePersonFields="names", body=body
        ).execute()
    assert caught.value.status_code == 400
    assert "metadata.sources" in caught.value.reason


def test_update_contact_with_a_stale_etag_fails_precondition(people: Any) -> None:
    contact = create(people)
    people.people().updateContact(
        resourceName=contact["resourceName"],
        updatePersonFields="names",
        body={**contact, "names": [{"givenName": "Augusta"}]},
    ).execute()
    with pytest.raises(HttpError) as caught:  # the same, stale, metadata.sources.etag again
        people.people().updateContact(
            resourceName=contact["resourceName"],
            updatePersonFields="names",
            body={**contact, "names": [{"givenName": "Ada"}]},
        ).execute()
    error = caught.value
    assert error.status_code == 400
    assert error.error_details[0]["reason"] == "failedPrecondition"
    assert '"status": "FAILED_PRECONDITION"' in error.content.decode()
    assert "get the latest person and merge" in error.reason
    # The contact was not changed by the rejected update.
    got = people.people().get(resourceName=contact["resourceName"], personFields="names").execute()
    assert got["names"][0]["givenName"] == "Augusta"


def test_sequential_updates_use_the_etag_of_the_previous_response(people: Any) -> None:
    person = create(people)
    etags = {person["etag"]}
    for n in range(3):
        person = (
            people.people()
            .updateContact(
                resourceName=person["resourceName"],
                updatePersonFields="phoneNumbers",
                personFields=FIELDS,
                body={**person, "phoneNumbers": [{"value": f"+1 555 010{n}"}]},
            )
            .execute()
        )
        etags.add(person["etag"])
    assert len(etags) == 4
    assert person["phoneNumbers"][0]["value"] == "+1 555 0102"


def test_update_contact_replaces_only_the_named_fields(people: Any) -> None:
    contact = create(people, emailAddresses=[{"value": "ada@x.example"}], phoneNumbers=[{"value": "+1 555 0100"}])
    updated = (
        people.people()
        .updateContact(
            resourceName=contact["resourceName"],
            updatePersonFields="emailAddresses,organizations",
            personFields=FIELDS,
            # phoneNumbers is in the body but not in the mask: kept. organizations is in the
            # mask but not in the body: cleared (it was empty anyway). emailAddresses: replaced.
            body={
                "metadata": contact["metadata"],
                "emailAddresses": [{"value": "countess@x.example"}],
                "phoneNumbers": [],
            },
        )
        .execute()
    )
    assert [e["value"] for e in updated["emailAddresses"]] == ["countess@x.example"]
    assert [p["value"] for p in updated["phoneNumbers"]] == ["+1 555 0100"]
    assert updated["names"][0]["givenName"] == "Ada"


def test_update_contact_bumps_the_sync_state(people: Any) -> None:
    contact = create(people)
    token = sync_token(people)
    updated = (
        people.people()
        .updateContact(
            resourceName=contact["resourceName"],
            updatePersonFields="names",
            personFields=FIELDS,
            body={**contact, "names": [{"givenName": "Augusta"}]},
        )
        .execute()
    )
    changes, _ = sync_changes(people, token)
    assert [(p["resourceName"], p["etag"]) for p in changes] == [(contact["resourceName"], updated["etag"])]


def test_delete_contact_returns_empty_then_the_contact_is_gone(people: Any) -> None:
    contact = create(people)
    token = sync_token(people)
    assert people.people().deleteContact(resourceName=contact["resourceName"]).execute() == {}
    with pytest.raises(HttpError) as caught:
        people.people().get(resourceName=contact["resourceName"], personFields="names").execute()
    assert caught.value.status_code == 404
    with pytest.raises(HttpError) as caught:
        people.people().deleteContact(resourceName=contact["resourceName"]).execute()
    assert caught.value.status_code == 404
    changes, _ = sync_changes(people, token)
    assert [p["metadata"].get("deleted") for p in changes] == [True]


# ---------------------------------------------------------------------- acting as the user


def test_changes_made_as_the_user_bump_sync_state_like_api_writes(
    people: Any, http: Callable[..., requests.Response], email: str
) -> None:
    contact = create(people)
    token = sync_token(people)
    cid = contact["resourceName"].split("/")[1]
    edited = http(
        "PATCH", f"/_emulator/people/contacts/{cid}", json={"email": email, "person": {"names": [{"givenName": "Bo"}]}}
    )
    assert edited.status_code == 200
    added = http("POST", "/_emulator/people/contacts", json={"email": email, "person": {"names": [{"givenName": "C"}]}})
    assert added.status_code == 201
    changes, token = sync_changes(people, token)
    assert [p["resourceName"] for p in changes] == [contact["resourceName"], added.json()["resourceName"]]
    assert changes[0]["names"][0]["givenName"] == "Bo"
    # The user's edit made the client's copy stale, exactly as an edit in Google Contacts would.
    with pytest.raises(HttpError) as caught:
        people.people().updateContact(
            resourceName=contact["resourceName"],
            updatePersonFields="names",
            body={**contact, "names": [{"givenName": "Ada"}]},
        ).execute()
    assert caught.value.error_details[0]["reason"] == "failedPrecondition"
    assert http("DELETE", f"/_emulator/people/contacts/{cid}", params={"email": email}).status_code == 200
    changes, _ = sync_changes(people, token)
    assert [(p["resourceName"], p["metadata"].get("deleted")) for p in changes] == [(contact["resourceName"], True)]


def test_contacts_page_shows_escaped_data_and_its_forms_edit_contacts(
    people: Any, http: Callable[..., requests.Response], email: str
) -> None:
    contact = create(people, "<script>alert(1)</script>", "O'Hara")
    token = sync_token(people)
    page = http("GET", "/_emulator/ui/people", params={"email": email})
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    cid = contact["resourceName"].split("/")[1]
    form = {"email": email, "givenName": "Scarlett", "familyName": "O'Hara", "emailAddress": "s@tara.example"}
    posted = http("POST", f"/_emulator/people/contacts/{cid}/update", data=form)
    assert posted.status_code == 303
    assert posted.headers["Location"].startswith("/_emulator/ui/people?email=")
    changes, _ = sync_changes(people, token)
    assert changes[0]["names"][0]["givenName"] == "Scarlett"
    assert changes[0]["emailAddresses"][0]["value"] == "s@tara.example"


def test_demo_address_books_are_deterministic_and_seeded_once(
    google_service: Callable[..., Any], http: Callable[..., requests.Response]
) -> None:
    first, second = PeopleStore(State()), PeopleStore(State())
    assert first.seed_demo("grace@example.org") == second.seed_demo("grace@example.org") > 0
    assert first.seed_demo("grace@example.org") == 0

    def names(store: PeopleStore) -> list[tuple[str, str]]:
        sub = store.state.add_account("grace@example.org").sub
        return [(c.resource_name, c.etag) for c in store.live(sub, "connections")]

    assert names(first) == names(second)
    assert http("POST", "/_emulator/people/seed", json={"email": "linus@example.net"}).json()["added"] > 0
    linus = google_service("people", "v1", "linus@example.net", [CONTACTS])
    listed = linus.people().connections().list(resourceName="people/me", personFields="names").execute()
    assert "Tanenbaum" in [p["names"][0].get("familyName") for p in listed["connections"]]
