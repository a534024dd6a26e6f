"""CRM contacts as a resource through the local stack (issue 13, deliverable 1): create, read,
change, delete; each email and phone belongs to one contact; phones in E.164 with the
tenant's region; bad input refused with nothing written; contacts logged before F10 read and
change compatibly."""

from __future__ import annotations

import uuid

import pytest

from crmsync.models import user_pk
from crmsync.models.mail import CONTACT_EMAIL_SK_PREFIX, CONTACT_SK_PREFIX
from tests.e2e.test_integrations_api import Browser

pytestmark = [pytest.mark.e2e]

PROBLEM = "application/problem+json"


def problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == PROBLEM
    return dict(response.json())


def contacts(who: Browser) -> list[dict]:
    listed = who.api("GET", "/v1/contacts", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


def test_a_contact_is_created_read_changed_and_deleted(alice: Browser) -> None:
    made = alice.api(
        "POST",
        "/v1/contacts",
        json={
            "given_name": " Ada ",
            "family_name": "Lovelace",
            "emails": ["Ada@Example.COM", "ada@example.com", "ada@work.example.org"],
            "phones": ["(212) 736-5000", "ext. 12"],
            "organization": "Analytical Engines",
            "contact_type": "client",
            "consent": "express",
        },
    )
    assert made.status_code == 201, made.text
    contact = made.json()
    assert contact["name"] == "Ada Lovelace"
    assert contact["emails"] == ["ada@example.com", "ada@work.example.org"]
    assert contact["email"] == "ada@example.com"
    assert [p["number"] for p in contact["phones"]] == ["+12127365000", "ext. 12"]
    assert contact["phones"][1]["e164"] is None
    assert (contact["source"], contact["contact_type"], contact["consent"], contact["version"]) == (
        "crm",
        "client",
        "express",
        1,
    )
    assert alice.api("GET", f"/v1/contacts/{contact['id']}").json() == contact
    assert [c["id"] for c in contacts(alice)] == [contact["id"]]

    changed = alice.api(
        "PATCH", f"/v1/contacts/{contact['id']}", json={"emails": ["ada@work.example.org"], "title": "Countess"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["emails"] == ["ada@work.example.org"]
    assert changed.json()["title"] == "Countess"
    assert changed.json()["given_name"] == "Ada"  # left out: kept
    assert changed.json()["version"] == 2
    # The email it gave up is free again.
    assert alice.api("POST", "/v1/contacts", json={"emails": ["ada@example.com"]}).status_code == 201

    assert alice.api("DELETE", f"/v1/contacts/{contact['id']}").status_code == 204
    problem(alice.api("GET", f"/v1/contacts/{contact['id']}"), 404)
    problem(alice.api("DELETE", f"/v1/contacts/{contact['id']}"), 404)
    assert alice.api("POST", "/v1/contacts", json={"emails": ["ada@work.example.org"]}).status_code == 201


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"emails": ["grace@example.com"]}, {"emails": ["GRACE@example.com "]}),
        ({"phones": ["+1 212 736 5000"]}, {"phones": ["(212) 736-5000"]}),
        ({"phones": ["call reception"]}, {"phones": ["Call  Reception"]}),
    ],
    ids=["email", "phone in another format", "unreadable phone"],
)
def test_an_email_or_phone_belongs_to_one_contact(alice: Browser, first: dict, second: dict) -> None:
    one = alice.api("POST", "/v1/contacts", json={"given_name": "One", **first})
    assert one.status_code == 201, one.text
    clash = problem(alice.api("POST", "/v1/contacts", json={"given_name": "Two", **second}), 409)
    assert clash["type"] == "urn:crmsync:problem:duplicate-contact"
    assert clash["contact_id"] == one.json()["id"]
    other = alice.api("POST", "/v1/contacts", json={"given_name": "Three"})
    problem(alice.api("PATCH", f"/v1/contacts/{other.json()['id']}", json=second), 409)
    assert sorted(c["name"] for c in contacts(alice)) == ["One", "Three"]


@pytest.mark.parametrize(
    "body",
    [
        {"emails": ["not an email"]},
        {"emails": ["a@b"]},
        {"given_name": "X", "contact_type": "enemy"},
        {},
        {"given_name": "   "},
        {"emails": [f"p{i}@example.com" for i in range(21)]},
        {"phones": ["1" * 65]},
        {"given_name": "x" * 257},
        {"given_name": "X", "consent": "maybe"},
        {"given_name": "X", "unknown": 1},
    ],
)
def test_bad_input_is_a_problem_and_writes_nothing(alice: Browser, body: dict) -> None:
    problem(alice.api("POST", "/v1/contacts", json=body), 422)
    assert contacts(alice) == []


def test_a_retried_create_with_the_same_key_makes_one_contact(alice: Browser) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = alice.api("POST", "/v1/contacts", json={"emails": ["once@example.com"]}, headers=key)
    again = alice.api("POST", "/v1/contacts", json={"emails": ["once@example.com"]}, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(contacts(alice)) == 1


def test_another_tenant_or_user_cannot_reach_a_contact(alice: Browser, bob: Browser, stack) -> None:
    mallory = Browser(stack, "tenant-" + uuid.uuid4().hex[:10], "alice")
    made = alice.api("POST", "/v1/contacts", json={"emails": ["secret@example.com"]}).json()
    for intruder in (bob, mallory):
        problem(intruder.api("GET", f"/v1/contacts/{made['id']}"), 404)
        problem(intruder.api("PATCH", f"/v1/contacts/{made['id']}", json={"title": "x"}), 404)
        problem(intruder.api("DELETE", f"/v1/contacts/{made['id']}"), 404)
        assert contacts(intruder) == []
        # Emails are unique per user, not across users.
        assert intruder.api("POST", "/v1/contacts", json={"emails": ["secret@example.com"]}).status_code == 201
    assert alice.api("GET", f"/v1/contacts/{made['id']}").json()["version"] == 1


def test_the_contact_types_and_the_tenants_phone_region(alice: Browser, bob: Browser, stack, unique: str) -> None:
    choices = alice.api("GET", "/v1/contact-types").json()
    assert [t["id"] for t in choices["contact_types"]] == ["lead", "client", "vendor", "partner", "other"]
    assert [c["id"] for c in choices["consent"]] == ["express", "implied", "none"]
    assert choices["default_region"] == "US"

    refused = problem(alice.api("PUT", "/v1/settings/contacts", json={"default_region": "GB"}), 403)
    assert "admin" in refused["detail"]
    admin = Browser(stack, f"tenant-{unique}", "carol")
    admin.token = stack.issue_token(f"tenant-{unique}", "carol", crm_admin=True)
    problem(admin.api("PUT", "/v1/settings/contacts", json={"default_region": "XX"}), 422)
    set_ = admin.api("PUT", "/v1/settings/contacts", json={"default_region": "gb"})
    assert set_.status_code == 200, set_.text
    assert set_.json()["default_region"] == "GB"

    # The whole tenant reads numbers without a country code as British now.
    made = bob.api("POST", "/v1/contacts", json={"phones": ["020 7946 0958"]})
    assert made.json()["phones"][0]["e164"] == "+442079460958"
    assert alice.api("GET", "/v1/contact-types").json()["default_region"] == "GB"


def test_a_contact_logged_before_f10_reads_and_changes_compatibly(alice: Browser, stack, unique: str) -> None:
    """What BCC logging stored before contacts had more than one email: no version, one
    ``email`` and a display ``name``; its email reserved."""
    dynamodb = stack.aws_client("dynamodb")
    table = stack.function_environment("ApiFunction")["CONNECTIONS_TABLE"]
    pk = user_pk(f"tenant-{unique}", "alice")
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": pk},
            "sk": {"S": CONTACT_SK_PREFIX + "clegacy1"},
            "contact_id": {"S": "clegacy1"},
            "email": {"S": "old@example.com"},
            "name": {"S": "Old Friend"},
            "source": {"S": "bcc"},
            "email_sync": {"BOOL": True},
            "created_at": {"S": "2020-01-02T03:04:05.000000+0000"},
        },
    )
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": pk},
            "sk": {"S": CONTACT_EMAIL_SK_PREFIX + "old@example.com"},
            "contact_id": {"S": "clegacy1"},
        },
    )
    read = alice.api("GET", "/v1/contacts/clegacy1").json()
    assert (read["emails"], read["name"], read["source"], read["version"], read["email_sync"]) == (
        ["old@example.com"],
        "Old Friend",
        "bcc",
        0,
        False,
    )
    problem(alice.api("POST", "/v1/contacts", json={"emails": ["old@example.com"]}), 409)
    changed = alice.api("PATCH", "/v1/contacts/clegacy1", json={"phones": ["+44 20 7946 0958"], "given_name": "Old"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["emails"] == ["old@example.com"]
    assert changed.json()["version"] == 1
    assert changed.json()["name"] == "Old"
