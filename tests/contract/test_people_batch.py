"""Contract tests of the People v1 emulator: batchUpdateContacts, batchDeleteContacts and the
propagation delay of writes to sync requests.

Driven through google-api-python-client. Each test is one documented rule
(https://developers.google.com/people/api/rest/v1/people/batchUpdateContacts,
https://developers.google.com/people/api/rest/v1/BatchUpdateContactsErrorDetails,
https://developers.google.com/people/api/rest/v1/people/batchDeleteContacts, and
people.connections.list: "Writes may have a propagation delay of several minutes for sync
requests"), or the emulator's documented choice where Google says nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

FIELDS = "names,emailAddresses,metadata"
ERROR_DETAILS = "type.googleapis.com/google.people.v1.BatchUpdateContactsErrorDetails"


@pytest.fixture
def control(google_emulator: GoogleEmulator) -> Iterator[Callable[..., requests.Response]]:
    """``control("POST", "/people/propagation", json=...)`` → the response of a control route."""
    with requests.Session() as session:

        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            return session.request(method, f"{google_emulator.base_url}/_emulator{path}", timeout=10, **kwargs)

        yield call


def add(control: Callable[..., requests.Response], email: str, count: int) -> list[dict[str, Any]]:
    """``count`` contacts made by the user (control API), given names P0, P1, ..."""
    people = [{"names": [{"givenName": f"P{n}"}]} for n in range(count)]
    answer = control("POST", "/people/contacts", json={"email": email, "people": people})
    answer.raise_for_status()
    return list(answer.json()["people"])


def edit(person: dict[str, Any], given: str) -> dict[str, Any]:
    """The person with a new given name, carrying the etags it was read with."""
    return {"etag": person["etag"], "metadata": person["metadata"], "names": [{"givenName": given}]}


def given(people: Any, resource_name: str) -> str:
    got = people.people().get(resourceName=resource_name, personFields="names").execute()
    return str(got["names"][0]["givenName"])


def sync_token(people: Any) -> str:
    page = (
        people.people()
        .connections()
        .list(resourceName="people/me", personFields=FIELDS, pageSize=1000, requestSyncToken=True)
        .execute()
    )
    return str(page["nextSyncToken"])


def sync_changes(people: Any, token: str) -> tuple[list[dict[str, Any]], str]:
    page = (
        people.people()
        .connections()
        .list(resourceName="people/me", personFields=FIELDS, pageSize=1000, requestSyncToken=True, syncToken=token)
        .execute()
    )
    return page.get("connections", []), str(page["nextSyncToken"])


def batch_update(people: Any, contacts: dict[str, Any], **body: Any) -> dict[str, Any]:
    request = {"contacts": contacts, "updateMask": "names", "readMask": FIELDS, **body}
    return dict(people.people().batchUpdateContacts(body=request).execute())


# ---------------------------------------------------------------------- batchUpdateContacts


def test_batch_update_replaces_the_mask_fields_and_answers_each_person(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    one, two = add(control, email, 2)

    answer = batch_update(people, {one["resourceName"]: edit(one, "Uno"), two["resourceName"]: edit(two, "Dos")})

    result = answer["updateResult"]
    assert set(result) == {one["resourceName"], two["resourceName"]}
    updated = result[one["resourceName"]]
    assert updated["httpStatusCode"] == 200
    assert updated["requestedResourceName"] == one["resourceName"]
    assert updated["person"]["names"][0]["givenName"] == "Uno"
    [source] = updated["person"]["metadata"]["sources"]
    assert source["etag"] != one["metadata"]["sources"][0]["etag"]
    assert given(people, two["resourceName"]) == "Dos"


def test_batch_update_sets_the_contact_source_update_time(
    people: Any, control: Callable[..., requests.Response], email: str, google_emulator: GoogleEmulator
) -> None:
    (one,) = add(control, email, 1)
    before = datetime.fromisoformat(one["metadata"]["sources"][0]["updateTime"])
    google_emulator.advance_clock(90)

    answer = batch_update(people, {one["resourceName"]: edit(one, "Later")})

    stamp = answer["updateResult"][one["resourceName"]]["person"]["metadata"]["sources"][0]["updateTime"]
    assert stamp.endswith("Z")
    assert (datetime.fromisoformat(stamp) - before).total_seconds() >= 90


def test_batch_update_with_an_empty_read_mask_returns_no_people(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    (one,) = add(control, email, 1)

    answer = batch_update(people, {one["resourceName"]: edit(one, "Quiet")}, readMask="")

    assert "updateResult" not in answer
    assert given(people, one["resourceName"]) == "Quiet"


def test_batch_update_allows_at_most_200_contacts(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    created = add(control, email, 201)
    contacts = {p["resourceName"]: edit(p, "Many") for p in created}

    with pytest.raises(HttpError) as caught:
        batch_update(people, contacts)
    assert caught.value.status_code == 400
    assert "at most 200" in caught.value.reason
    assert given(people, created[0]["resourceName"]) == "P0"

    del contacts[created[-1]["resourceName"]]
    assert len(batch_update(people, contacts)["updateResult"]) == 200


def test_batch_update_requires_the_update_mask_and_a_contact(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    (one,) = add(control, email, 1)
    with pytest.raises(HttpError) as caught:
        people.people().batchUpdateContacts(
            body={"contacts": {one["resourceName"]: edit(one, "X")}, "readMask": FIELDS}
        ).execute()
    assert caught.value.status_code == 400
    assert caught.value.reason.startswith("updateMask mask is required")
    with pytest.raises(HttpError) as caught:
        batch_update(people, {})
    assert caught.value.status_code == 400
    with pytest.raises(HttpError) as caught:
        batch_update(people, {one["resourceName"]: edit(one, "X")}, updateMask="photos")
    assert caught.value.status_code == 400
    assert given(people, one["resourceName"]) == "P0"


def test_batch_update_with_a_stale_etag_fails_the_whole_request_and_names_the_contact(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    fresh, stale = add(control, email, 2)
    batch_update(people, {stale["resourceName"]: edit(stale, "Changed")})  # stale's etags are now old

    with pytest.raises(HttpError) as caught:
        batch_update(people, {fresh["resourceName"]: edit(fresh, "Fresh"), stale["resourceName"]: edit(stale, "Old")})

    error = caught.value
    assert error.status_code == 400
    body = json.loads(error.content)["error"]
    assert (body["errors"][0]["reason"], body["status"]) == ("failedPrecondition", "FAILED_PRECONDITION")
    details = [d for d in error.error_details if isinstance(d, dict) and d.get("@type") == ERROR_DETAILS]
    assert len(details) == 1
    assert list(details[0]["contactErrors"]) == [stale["resourceName"]]
    assert details[0]["contactErrors"][stale["resourceName"]]["code"] == 9  # google.rpc.Code FAILED_PRECONDITION
    # All or nothing: the contact with the current etag was not updated either.
    assert given(people, fresh["resourceName"]) == "P0"
    assert given(people, stale["resourceName"]) == "Changed"


def test_batch_update_of_a_missing_contact_fails_the_whole_request(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    kept, gone = add(control, email, 2)
    people.people().deleteContact(resourceName=gone["resourceName"]).execute()

    with pytest.raises(HttpError) as caught:
        batch_update(people, {kept["resourceName"]: edit(kept, "Kept"), gone["resourceName"]: edit(gone, "Gone")})

    assert caught.value.status_code == 404
    details = [d for d in caught.value.error_details if isinstance(d, dict) and d.get("@type") == ERROR_DETAILS]
    assert details[0]["contactErrors"][gone["resourceName"]]["code"] == 5  # NOT_FOUND
    assert given(people, kept["resourceName"]) == "P0"


def test_batch_update_requires_the_contact_source_etag(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    (one,) = add(control, email, 1)
    with pytest.raises(HttpError) as caught:
        batch_update(people, {one["resourceName"]: {"names": [{"givenName": "NoEtag"}]}})
    assert caught.value.status_code == 400
    details = [d for d in caught.value.error_details if isinstance(d, dict) and d.get("@type") == ERROR_DETAILS]
    assert details[0]["contactErrors"][one["resourceName"]]["code"] == 3  # INVALID_ARGUMENT
    assert given(people, one["resourceName"]) == "P0"


# ---------------------------------------------------------------------- batchDeleteContacts


def test_batch_deleted_contacts_come_back_deleted_in_the_next_sync(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    kept, one, two = add(control, email, 3)
    token = sync_token(people)

    assert people.people().batchDeleteContacts(
        body={"resourceNames": [one["resourceName"], two["resourceName"]]}
    ).execute() in ({}, None, "")

    changes, _ = sync_changes(people, token)
    assert {c["resourceName"] for c in changes} == {one["resourceName"], two["resourceName"]}
    assert all(c["metadata"]["deleted"] for c in changes)
    with pytest.raises(HttpError) as caught:
        people.people().get(resourceName=one["resourceName"], personFields="names").execute()
    assert caught.value.status_code == 404
    assert given(people, kept["resourceName"]) == "P0"


def test_batch_delete_allows_at_most_500_resource_names(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    created = add(control, email, 501)
    names = [p["resourceName"] for p in created]

    with pytest.raises(HttpError) as caught:
        people.people().batchDeleteContacts(body={"resourceNames": names}).execute()
    assert caught.value.status_code == 400
    assert "at most 500" in caught.value.reason
    assert given(people, names[0]) == "P0"

    people.people().batchDeleteContacts(body={"resourceNames": names[:500]}).execute()
    assert given(people, names[500]) == "P500"
    with pytest.raises(HttpError):
        given(people, names[499])


def test_batch_delete_requires_resource_names_and_deletes_nothing_if_one_is_missing(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    (one,) = add(control, email, 1)
    with pytest.raises(HttpError) as caught:
        people.people().batchDeleteContacts(body={"resourceNames": []}).execute()
    assert caught.value.status_code == 400

    with pytest.raises(HttpError) as caught:
        people.people().batchDeleteContacts(
            body={"resourceNames": [one["resourceName"], "people/c1234567890123456789"]}
        ).execute()
    assert caught.value.status_code == 404
    assert given(people, one["resourceName"]) == "P0"


# ---------------------------------------------------------------------- propagation delay


def test_writes_reach_incremental_sync_only_after_the_propagation_delay(
    people: Any, control: Callable[..., requests.Response], email: str, google_emulator: GoogleEmulator
) -> None:
    (existing,) = add(control, email, 1)
    token = sync_token(people)
    answer = control("POST", "/people/propagation", json={"email": email, "seconds": 120})
    assert answer.status_code == 200
    assert answer.json()["accounts"][email] == 120

    batch_update(people, {existing["resourceName"]: edit(existing, "Delayed")})
    (added,) = add(control, email, 1)

    # Reads see the writes at once; the incremental sync does not, and its token keeps them.
    assert given(people, existing["resourceName"]) == "Delayed"
    assert given(people, added["resourceName"]) == "P0"
    changes, token = sync_changes(people, token)
    assert changes == []
    google_emulator.advance_clock(119)
    changes, token = sync_changes(people, token)
    assert changes == []

    google_emulator.advance_clock(2)
    changes, token = sync_changes(people, token)
    assert [c["resourceName"] for c in changes] == [existing["resourceName"], added["resourceName"]]
    assert changes[0]["names"][0]["givenName"] == "Delayed"
    assert sync_changes(people, token)[0] == [], "each change comes once"


def test_a_full_listing_is_not_delayed(people: Any, control: Callable[..., requests.Response], email: str) -> None:
    control("POST", "/people/propagation", json={"email": email, "seconds": 600}).raise_for_status()
    (added,) = add(control, email, 1)

    page = people.people().connections().list(resourceName="people/me", personFields=FIELDS).execute()

    assert [p["resourceName"] for p in page["connections"]] == [added["resourceName"]]


def test_deletions_are_delayed_too_and_turning_the_delay_off_releases_them(
    people: Any, control: Callable[..., requests.Response], email: str
) -> None:
    (one,) = add(control, email, 1)
    token = sync_token(people)
    control("POST", "/people/propagation", json={"email": email, "seconds": 300}).raise_for_status()
    people.people().batchDeleteContacts(body={"resourceNames": [one["resourceName"]]}).execute()

    changes, token = sync_changes(people, token)
    assert changes == []

    control("POST", "/people/propagation", json={"email": email, "seconds": 0}).raise_for_status()
    changes, _ = sync_changes(people, token)
    assert [(c["resourceName"], c["metadata"].get("deleted")) for c in changes] == [(one["resourceName"], True)]


def test_the_global_propagation_delay_applies_to_accounts_without_their_own(
    people: Any, control: Callable[..., requests.Response], email: str, google_emulator: GoogleEmulator
) -> None:
    token = sync_token(people)
    try:
        answer = control("POST", "/people/propagation", json={"seconds": 60})
        assert answer.json()["seconds"] == 60
        assert control("GET", "/people/propagation").json()["seconds"] == 60
        add(control, email, 1)
        changes, token = sync_changes(people, token)
        assert changes == []
        google_emulator.advance_clock(61)
        changes, _ = sync_changes(people, token)
        assert len(changes) == 1
    finally:
        control("POST", "/people/propagation", json={"seconds": 0}).raise_for_status()


def test_the_propagation_control_rejects_bad_input(control: Callable[..., requests.Response], email: str) -> None:
    assert control("POST", "/people/propagation", json={"seconds": -1}).status_code == 400
    assert control("POST", "/people/propagation", json={"seconds": "soon"}).status_code == 400
    assert control("POST", "/people/propagation", json={"seconds": 5, "email": email}).status_code == 404
    assert control("GET", "/people/propagation").json()["seconds"] == 0
