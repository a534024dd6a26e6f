"""The never-log list through the local stack: listed, added (201, then 200 for the same entry
however it is spelled), removed (204, then 404), garbage refused with a problem document, one
user's list invisible to others, and BCC logging refusing mail to the list's addresses."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.test_bcc_logging import Client, deliver, message, verified_sender

pytestmark = [pytest.mark.e2e]

PATH = "/v1/settings/never-log"


def test_entries_are_added_idempotently_listed_and_removed(stack: Any, unique: str) -> None:
    ada = Client(stack, f"tenant-{unique}", "ada")
    assert ada.ok("GET", PATH) == {"items": [], "limit": 1000}

    added = ada.call("POST", PATH, json={"entry": " Anna@Example.COM "})
    assert added.status_code == 201, added.text
    assert added.json() == {"entry": "anna@example.com", "kind": "address"}
    again = ada.call("POST", PATH, json={"entry": "anna@example.com"})
    assert (again.status_code, again.json()) == (200, added.json())

    domain = ada.call("POST", PATH, json={"entry": "@Bücher.example"})
    assert domain.status_code == 201, domain.text
    assert domain.json() == {"entry": "xn--bcher-kva.example", "kind": "domain"}
    assert ada.ok("GET", PATH)["items"] == [
        {"entry": "anna@example.com", "kind": "address"},
        {"entry": "xn--bcher-kva.example", "kind": "domain"},
    ]

    # Another user of the tenant, and the same user id in another tenant, have their own lists.
    for other in (Client(stack, f"tenant-{unique}", "bruno"), Client(stack, f"other-{unique}", "ada")):
        assert other.ok("GET", PATH)["items"] == []
        assert other.call("DELETE", f"{PATH}/{quote('anna@example.com')}").status_code == 404

    removed = ada.call("DELETE", f"{PATH}/{quote('ANNA@example.com')}")
    assert removed.status_code == 204, removed.text
    gone = ada.call("DELETE", f"{PATH}/{quote('anna@example.com')}")
    assert gone.status_code == 404
    assert gone.headers["Content-Type"] == "application/problem+json"
    assert gone.json()["detail"] == "anna@example.com is not on your never-log list."
    assert ada.call("DELETE", f"{PATH}/{quote('bücher.example')}").status_code == 204
    assert ada.ok("GET", PATH)["items"] == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"entry": "example"}, "'example' is not a domain"),
        ({"entry": "anna@"}, "'anna@' is not an email address"),
        ({"entry": "http://example.com/x"}, "is not a domain"),
        ({"entry": "   "}, "Enter an email address (anna@example.com) or a domain (example.com)."),
        ({"entry": ""}, None),
        ({"entry": "example.com", "extra": 1}, None),
        ({}, None),
        ({"entry": "x" * 321}, None),
    ],
)
def test_garbage_is_refused_with_a_problem(stack: Any, unique: str, body: dict[str, Any], detail: str | None) -> None:
    ada = Client(stack, f"tenant-{unique}", "ada")
    response = ada.call("POST", PATH, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["detail"]
    if detail is not None:
        assert detail in problem["detail"]
    assert ada.ok("GET", PATH)["items"] == []
    bad_path = ada.call("DELETE", f"{PATH}/{quote('not a domain', safe='')}")
    assert bad_path.status_code == 422
    assert bad_path.headers["Content-Type"] == "application/problem+json"


def test_bcc_mail_only_to_never_log_addresses_is_not_logged(stack: Any, unique: str) -> None:
    ada = Client(stack, f"tenant-{unique}", "ada")
    bcc = ada.ok("GET", "/v1/settings/bcc-address")["address"]
    sender = f"ada-{unique}@sender.example"
    verified_sender(stack, ada, bcc, sender)
    ada.ok("POST", PATH, json={"entry": "home.example"})

    private = message(sender, ["partner@home.example"], "Dinner", cc=[bcc])
    [outcome] = deliver(stack, private, sender, [bcc])
    assert outcome["outcome"] == "refused: never_log"
    assert ada.ok("GET", "/v1/contacts")["items"] == []

    mixed = message(sender, ["bob@client.example", "kid@school.home.example"], "Offer", cc=[bcc])
    [outcome] = deliver(stack, mixed, sender, [bcc])
    assert outcome["outcome"] == "logged"
    assert [c["email"] for c in ada.ok("GET", "/v1/contacts")["items"]] == ["bob@client.example"]
