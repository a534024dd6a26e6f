"""Contacts sync through the whole local stack (issue 13 acceptance): a contact edited in
Google shows in the CRM after the scheduled sync, and the reverse; the account's state reads
"N contacts found" once Google has contacts the CRM lacks."""

from __future__ import annotations

import pytest

from crmsync.domain.sweeps import Sweep
from tests.e2e.test_contacts_sync_api import connect_calendar_only, enable, sync_state
from tests.e2e.test_integrations_api import Browser
from tests.support.google_consent import consent
from tests.support.google_people import GooglePeopleUser, person
from tests.support.google_user import GoogleCalendarUser
from tests.support.sweeps import fire_sweep_for

pytestmark = [pytest.mark.e2e]


def contacts_account(alice: Browser, stack) -> tuple[str, GooglePeopleUser]:  # type: ignore[no-untyped-def]
    ada = GoogleCalendarUser.new(stack.google.base_url, "ada").email
    connection_id = connect_calendar_only(alice, ada)
    started = enable(alice, connection_id)
    alice.callback(consent(started["authorization_url"], ada))
    stack.drain()
    return connection_id, GooglePeopleUser(stack.google.base_url, ada)


def crm_contacts(alice: Browser) -> list[dict]:
    return list(alice.api("GET", "/v1/contacts", params={"limit": 100}).json()["items"])


def scheduled_sync(stack, alice: Browser) -> None:  # type: ignore[no-untyped-def]
    """The contacts schedule at the tick whose slot holds alice (each tick takes a third)."""
    fire_sweep_for(stack, Sweep.CONTACTS, alice.tenant, alice.user)
    stack.drain()


def test_edits_reach_the_other_side_at_the_scheduled_sync(alice: Browser, stack) -> None:
    _, google = contacts_account(alice, stack)
    made = alice.api(
        "POST", "/v1/contacts", json={"given_name": "Grace", "family_name": "Hopper", "emails": ["grace@navy.example"]}
    )
    assert made.status_code == 201, made.text
    scheduled_sync(stack, alice)
    [twin] = [p for p in google.contacts() if p.get("emailAddresses")]
    assert twin["names"][0]["givenName"] == "Grace"

    # Edited in Google: in the CRM after the next scheduled sync.
    google.edit(
        twin["resourceName"],
        {**person("Grace", "Hopper", ("grace@navy.example",)), "organizations": [{"name": "US Navy"}]},
    )
    scheduled_sync(stack, alice)
    [contact] = crm_contacts(alice)
    assert contact["organization"] == "US Navy"
    assert contact["google"] is not None

    # Edited in the CRM: in Google after the next scheduled sync.
    changed = alice.api("PATCH", f"/v1/contacts/{contact['id']}", json={"title": "Rear Admiral"})
    assert changed.status_code == 200, changed.text
    scheduled_sync(stack, alice)
    [twin] = [p for p in google.contacts() if p.get("emailAddresses")]
    assert twin["organizations"][0].get("title") == "Rear Admiral"


def test_google_contacts_the_crm_lacks_are_found_for_the_review(alice: Browser, stack) -> None:
    _, google = contacts_account(alice, stack)
    assert sync_state(alice)["state"] == "complete"
    for i in range(3):
        google.add(person(f"New{i}", "Person", (f"new{i}@example.org",)))
    ran = alice.api("POST", "/v1/contacts/sync/run", json={"reason": "login"})
    assert ran.status_code == 202, ran.text
    stack.drain()
    state = sync_state(alice)
    assert (state["state"], state["candidates"]) == ("contacts_found", 3)
    assert crm_contacts(alice) == []  # offered, not imported
