"""Enable Google Contacts sync (F10, seed 004 steps 1–5) through the local stack: incremental
authorization on an existing account, a new account, an unticked scope, the linked calendar,
and bad input as problem documents."""

from __future__ import annotations

import pytest

from tests.e2e.test_integrations_api import Browser, needs_reauth
from tests.support.google_consent import consent, query
from tests.support.google_user import GoogleCalendarUser

pytestmark = [pytest.mark.e2e]

CONTACTS = "https://www.googleapis.com/auth/contacts"


def connect_calendar_only(alice: Browser, email: str) -> str:
    response = alice.api("POST", "/v1/integrations/google/authorize", json={"features": ["calendar"]})
    assert response.status_code == 200, response.text
    return alice.callback(consent(response.json()["authorization_url"], email))["connected"]


def enable(alice: Browser, connection_id: str | None = None) -> dict:
    response = alice.api("POST", "/v1/contacts/sync", json={"connection_id": connection_id} if connection_id else {})
    assert response.status_code == 200, response.text
    return response.json()


def sync_state(alice: Browser) -> dict:
    response = alice.api("GET", "/v1/contacts/sync")
    assert response.status_code == 200, response.text
    return response.json()


def scopes_of(alice: Browser, connection_id: str) -> set[str]:
    return set(next(i for i in alice.integrations() if i["id"] == connection_id)["scopes"])


def linked(alice: Browser) -> dict | None:
    return alice.api("GET", "/v1/settings/calendar").json()["linked_calendar"]


def test_a_plain_sign_in_does_not_ask_for_contacts(alice: Browser, stack) -> None:
    connection_id = alice.connect(GoogleCalendarUser.new(stack.google.base_url, "ada").email)["connected"]
    assert CONTACTS not in scopes_of(alice, connection_id)
    assert sync_state(alice)["state"] == "off"


def test_enable_on_an_existing_account_adds_the_scope_and_links_the_primary_calendar(alice: Browser, stack) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    connection_id = connect_calendar_only(alice, ada)
    stack.drain()  # its calendar list is known
    assert linked(alice) is None

    started = enable(alice, connection_id)
    assert started["sync"]["state"] == "off"
    params = query(started["authorization_url"])
    assert params["login_hint"] == ada
    assert params["include_granted_scopes"] == "true"
    assert CONTACTS in params["scope"].split()
    assert alice.callback(consent(started["authorization_url"], ada)) == {"connected": connection_id}

    assert CONTACTS in scopes_of(alice, connection_id)
    state = sync_state(alice)
    # The first sync was queued when it was enabled; it may already have run.
    assert state["state"] in ("syncing", "complete")
    assert (state["connection_id"], state["account_email"]) == (connection_id, ada)
    assert linked(alice)["calendar_id"] == ada  # the primary calendar
    stack.drain()
    done = sync_state(alice)
    assert (done["state"], done["candidates"], done["last_error"]) == ("complete", 0, None)
    assert done["last_synced_at"]

    # Enabled already: enabling again needs no consent.
    again = enable(alice, connection_id)
    assert again["authorization_url"] is None
    assert again["sync"]["state"] == "complete"
    # Off, and on again.
    assert alice.api("DELETE", "/v1/contacts/sync").status_code == 204
    assert sync_state(alice)["state"] == "off"
    assert enable(alice, connection_id)["sync"]["connection_id"] == connection_id


def test_unticking_the_contacts_scope_leaves_sync_off(alice: Browser, stack) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    connection_id = connect_calendar_only(alice, ada)
    url = enable(alice, connection_id)["authorization_url"]
    assert alice.callback(consent(url, ada, untick=(CONTACTS,))) == {"error": "contacts_scope_missing"}
    assert sync_state(alice)["state"] == "off"
    assert CONTACTS not in scopes_of(alice, connection_id)
    stack.drain()
    assert linked(alice) is None  # nothing of the enable step happened


def test_enable_without_an_account_connects_one_with_calendar_and_contacts(alice: Browser, stack) -> None:
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace").email
    started = enable(alice)
    assert "login_hint" not in query(started["authorization_url"])
    connection_id = alice.callback(consent(started["authorization_url"], grace))["connected"]
    scopes = scopes_of(alice, connection_id)
    assert CONTACTS in scopes
    assert "https://www.googleapis.com/auth/calendar.events" in scopes
    assert sync_state(alice)["connection_id"] == connection_id
    # A new account's calendar list comes with the connection check: then the primary is linked.
    assert linked(alice) is None
    stack.drain()
    assert linked(alice)["calendar_id"] == grace


def test_a_linked_calendar_already_set_is_kept_and_another_account_takes_over(alice: Browser, stack) -> None:
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email
    first = alice.connect(ada)["connected"]
    stack.drain()
    team = next(c for c in alice.api("GET", "/v1/calendars").json()["items"] if c["name"] == "Team")
    chosen = {"connection_id": team["connection_id"], "calendar_id": team["calendar_id"]}
    assert alice.api("PUT", "/v1/settings/linked-calendar", json=chosen).status_code == 200

    alice.callback(consent(enable(alice, first)["authorization_url"], ada))
    grace = GoogleCalendarUser.new(stack.google.base_url, "grace").email
    second = alice.callback(consent(enable(alice)["authorization_url"], grace))["connected"]
    stack.drain()
    assert sync_state(alice)["connection_id"] == second  # one contacts account: it moved
    assert linked(alice)["calendar_id"] == team["calendar_id"]
    # Disconnecting the contacts account turns contacts sync off.
    assert alice.api("DELETE", f"/v1/integrations/{second}").status_code == 204
    assert sync_state(alice)["state"] == "off"


def test_bad_enable_requests_are_problem_documents(alice: Browser, stack, unique: str) -> None:
    mallory = Browser(stack, f"other-{unique}", "mallory")
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    connection_id = connect_calendar_only(alice, ada)

    def refused(browser: Browser, body: dict, status: int) -> dict:
        response = browser.api("POST", "/v1/contacts/sync", json=body)
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/problem+json"
        return response.json()

    assert "gone-0" in refused(alice, {"connection_id": "gone-0"}, 404)["detail"]
    refused(mallory, {"connection_id": connection_id}, 404)  # another tenant's account
    refused(alice, {"connection_id": "no spaces"}, 422)
    refused(alice, {"connection_id": connection_id, "extra": 1}, 422)
    needs_reauth(stack, ada)
    assert "connected again" in refused(alice, {"connection_id": connection_id}, 409)["detail"]
    assert sync_state(alice)["state"] == "off"
    assert sync_state(mallory)["state"] == "off"
