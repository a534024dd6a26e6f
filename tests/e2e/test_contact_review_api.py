"""The import review's API through the local stack: bad input and other users' rows get
problem documents, and nothing is half-written (issue 13 acceptance: tenant isolation and bad
input, 10,000-row selections, unknown types)."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.test_contacts_api import problem
from tests.e2e.test_contacts_sync_schedule import contacts_account
from tests.e2e.test_integrations_api import Browser
from tests.support.google_people import person

pytestmark = [pytest.mark.e2e]


def rows(who: Browser, status: str = "offered") -> dict:
    listed = who.api("GET", "/v1/contacts/review", params={"status": status})
    assert listed.status_code == 200, listed.text
    return dict(listed.json())


def test_bad_review_requests_are_problems_and_change_nothing(alice: Browser, stack) -> None:
    _, google = contacts_account(alice, stack)
    google.add(person("Row", "One", ("row.one@example.org",)))
    assert alice.api("POST", "/v1/contacts/sync/run", json={}).status_code == 202
    stack.drain()
    [row] = rows(alice)["items"]

    problem(
        alice.api("POST", "/v1/contacts/review/select", json={"candidate_ids": [f"r{i}" for i in range(10_000)]}), 422
    )
    problem(alice.api("PATCH", f"/v1/contacts/review/{row['id']}", json={"contact_type": "enemy"}), 422)
    problem(alice.api("PATCH", f"/v1/contacts/review/{row['id']}", json={"selected": "yes"}), 422)
    problem(alice.api("PATCH", f"/v1/contacts/review/{row['id']}", json={"consent": "maybe"}), 422)
    problem(alice.api("PATCH", "/v1/contacts/review/" + "x" * 65, json={"selected": True}), 422)
    problem(alice.api("PATCH", "/v1/contacts/review/nosuchrow", json={"selected": True}), 404)
    problem(alice.api("POST", "/v1/contacts/review/answer", json={"action": "import-everything"}), 422)
    problem(alice.api("GET", "/v1/contacts/review", params={"status": "imported"}), 422)
    assert rows(alice)["items"] == [row]  # nothing changed

    mallory = Browser(stack, "tenant-" + uuid.uuid4().hex[:10], "alice")
    problem(mallory.api("PATCH", f"/v1/contacts/review/{row['id']}", json={"selected": True}), 404)
    assert mallory.api("POST", "/v1/contacts/review/select", json={"candidate_ids": [row["id"]]}).json() == {"rows": 0}
    assert rows(mallory)["items"] == []
    assert rows(alice)["items"] == [row]


def test_a_rows_type_and_consent_can_be_taken_back(alice: Browser, stack) -> None:
    """``null`` sets a choice back to not chosen; a field the request leaves out is kept."""
    _, google = contacts_account(alice, stack)
    google.add(person("Row", "Two", ("row.two@example.org",)))
    assert alice.api("POST", "/v1/contacts/sync/run", json={}).status_code == 202
    stack.drain()
    [row] = rows(alice)["items"]
    path = f"/v1/contacts/review/{row['id']}"

    chosen = alice.api("PATCH", path, json={"contact_type": "client", "consent": "express", "selected": True})
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["contact_type"], chosen.json()["consent"]) == ("client", "express")
    kept = alice.api("PATCH", path, json={"selected": False}).json()
    assert (kept["contact_type"], kept["consent"]) == ("client", "express")
    cleared = alice.api("PATCH", path, json={"contact_type": None}).json()
    assert (cleared["contact_type"], cleared["consent"]) == (None, "express")
    cleared = alice.api("PATCH", path, json={"consent": None}).json()
    assert (cleared["contact_type"], cleared["consent"]) == (None, None)
    assert rows(alice)["items"][0]["contact_type"] is None
