"""F9 end to end through the local stack: the API issues the address and verifies a sender by
mail; a message handed to the local SES (as the SMTP server does) lands in S3, inbound_mail
logs it, and the conversation API shows it — once, and only to its owner."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.e2e]


class Client:
    def __init__(self, stack: Any, tenant: str, user: str) -> None:
        self.base = stack.api_url
        self.headers = {"Authorization": f"Bearer {stack.issue_token(tenant, user)}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base + path, headers=self.headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code in (200, 201, 204), (response.status_code, response.text)
        return response.json() if response.content else None


def message(sender: str, to: list[str], subject: str, cc: Sequence[str] = (), body: str = "Hello!\n") -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    if cc:
        mail["Cc"] = ", ".join(cc)
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="sender.example")
    mail.set_content(body)
    mail.add_alternative(f"<p>{body}</p><script>alert(1)</script>", subtype="html")
    return mail.as_bytes()


def deliver(stack: Any, raw: bytes, mail_from: str, rcpt_to: list[str], **verdicts: str) -> list[dict[str, Any]]:
    received = stack.deliver_mail(raw, mail_from, rcpt_to, verdicts or None)
    deliveries = [d for d in stack.mail_drain() if d.source_id == received.message_id]
    assert deliveries, "inbound_mail was not invoked"
    assert all(d.ok for d in deliveries), [d.result.error for d in deliveries]
    return [o for d in deliveries for o in d.result.payload["outcomes"]]


def verified_sender(stack: Any, client: Client, bcc: str, email: str) -> None:
    added = client.ok("POST", "/v1/settings/sender-addresses", json={"email": email})
    assert added["status"] == "pending"
    [outcome] = deliver(stack, message(email, [bcc], f"Verify {added['code']}"), email, [bcc])
    assert outcome["outcome"] == "sender verified"
    statuses = {s["email"]: s["status"] for s in client.ok("GET", "/v1/settings/sender-addresses")["items"]}
    assert statuses[email] == "verified"


def test_a_bcc_message_reaches_the_contacts_conversation_once(stack: Any, unique: str) -> None:
    ada = Client(stack, f"tenant-{unique}", "ada")
    bcc = ada.ok("GET", "/v1/settings/bcc-address")["address"]
    assert bcc.endswith("@" + stack.parameters.get("LoggingDomain", bcc.split("@")[1]))
    sender = f"ada-{unique}@sender.example"
    verified_sender(stack, ada, bcc, sender)

    raw = message(f"Ada <{sender}>", ["Bob <bob@client.example>"], "Offer", cc=[bcc], body="Here is the offer.")
    [outcome] = deliver(stack, raw, sender, [bcc])
    assert outcome["outcome"] == "logged"
    [again] = deliver(stack, raw, sender, [bcc])  # resent: a new SES message, the same mail
    assert again["outcome"] == "duplicate"

    [contact] = ada.ok("GET", "/v1/contacts")["items"]
    assert (contact["email"], contact["source"], contact["email_sync"]) == ("bob@client.example", "bcc", False)
    page = ada.ok("GET", f"/v1/contacts/{contact['id']}/conversation")
    [entry] = page["items"]
    assert page["next_cursor"] is None
    assert (entry["subject"], entry["direction"], entry["from"]["email"]) == ("Offer", "outbound", sender)
    assert [a["email"] for a in entry["cc"]] == []  # the BCC address is never shown
    full = ada.ok("GET", f"/v1/contacts/{contact['id']}/conversation/{entry['message_key']}")
    assert "Here is the offer." in full["text"]
    assert "<script" not in full["html"]

    logged = [e for e in stack.bus_events("EmailLogged") if e["detail"]["tenant_id"] == f"tenant-{unique}"]
    assert len(logged) == 1
    assert logged[0]["detail"]["contact_ids"] == [contact["id"]]

    # Another user, and another tenant, see none of it.
    for other in (Client(stack, f"tenant-{unique}", "bruno"), Client(stack, f"other-{unique}", "ada")):
        assert other.ok("GET", "/v1/contacts")["items"] == []
        for path in (
            f"/v1/contacts/{contact['id']}/conversation",
            f"/v1/contacts/{contact['id']}/conversation/{entry['message_key']}",
        ):
            response = other.call("GET", path)
            assert response.status_code == 404
            assert response.headers["Content-Type"] == "application/problem+json"


def test_refused_mail_writes_nothing_and_a_rotated_address_stops(stack: Any, unique: str) -> None:
    ada = Client(stack, f"tenant-{unique}", "ada")
    bcc = ada.ok("GET", "/v1/settings/bcc-address")["address"]
    sender = f"ada-{unique}@sender.example"
    verified_sender(stack, ada, bcc, sender)

    spoofed = message(f"Ada <ada-{unique}@evil.example>", ["bob@client.example"], "Spoof", cc=[bcc])
    [outcome] = deliver(stack, spoofed, sender, [bcc])
    assert outcome["outcome"] == "refused: sender_not_own"
    [outcome] = deliver(stack, message(sender, ["bob@client.example"], "Bad DKIM"), sender, [bcc], dkim="FAIL")
    assert outcome["outcome"] == "refused: dkim_fail"
    assert ada.ok("GET", "/v1/contacts")["items"] == []

    new = ada.ok("POST", "/v1/settings/bcc-address/rotate")["address"]
    assert new != bcc
    assert ada.ok("GET", "/v1/settings/bcc-address")["address"] == new
    [outcome] = deliver(stack, message(sender, ["bob@client.example"], "Old address"), sender, [bcc])
    assert outcome["outcome"] == "refused: unknown_recipient"
    [outcome] = deliver(stack, message(sender, ["bob@client.example"], "New address"), sender, [new])
    assert outcome["outcome"] == "logged"


def test_the_local_smtp_server_delivers_to_inbound_mail(stack: Any, unique: str) -> None:
    """What a person does with any mail client against `make dev`."""
    ada = Client(stack, f"tenant-{unique}", "ada")
    bcc = ada.ok("GET", "/v1/settings/bcc-address")["address"]
    sender = f"ada-{unique}@sender.example"
    verified_sender(stack, ada, bcc, sender)
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        smtp.sendmail(sender, [bcc], message(sender, ["carol@client.example"], "Through SMTP"))
    outcomes = [o for d in stack.mail_drain() for o in d.result.payload["outcomes"]]
    assert [o["outcome"] for o in outcomes] == ["logged"]
    [contact] = ada.ok("GET", "/v1/contacts")["items"]
    assert contact["email"] == "carol@client.example"


def test_api_errors_are_problem_documents(stack: Any, unique: str) -> None:
    ada = Client(stack, f"tenant-{unique}", "ada")
    for method, path, kwargs, status in [
        ("GET", "/v1/contacts?cursor=not-a-cursor", {}, 400),
        ("GET", "/v1/contacts?limit=0", {}, 422),
        ("GET", "/v1/contacts/cnope/conversation", {}, 404),
        ("POST", "/v1/settings/sender-addresses", {"json": {"email": "not an email"}}, 422),
        ("POST", "/v1/settings/sender-addresses", {"json": {"email": "x@y.example", "extra": 1}}, 422),
        ("DELETE", "/v1/settings/sender-addresses/nobody%40nowhere.example", {}, 404),
    ]:
        response = ada.call(method, path, **kwargs)
        assert response.status_code == status, (path, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["detail"]
    assert requests.get(stack.api_url + "/v1/settings/bcc-address", timeout=10).status_code == 401
