"""Contract tests of the Gmail v1 emulator, driven through google-api-python-client.

One test per documented rule (PROVIDERS.md §2.3 and the Gmail reference), each named after
the rule. Every test uses a fresh account so tests do not see each other's mail.
"""

from __future__ import annotations

import base64
import email
import email.policy
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

MAIL = "https://mail.google.com/"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
METADATA = "https://www.googleapis.com/auth/gmail.metadata"
SEND = "https://www.googleapis.com/auth/gmail.send"
CALENDAR = "https://www.googleapis.com/auth/calendar"


# ---------------------------------------------------------------------- helpers


def new_address() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.com"


class Mailbox:
    """A fresh account: its Gmail client and the control API acting as the user in Gmail."""

    def __init__(self, emulator: GoogleEmulator, make: Callable[..., Any], scopes: list[str] | None = None) -> None:
        self.emulator = emulator
        self.address = new_address()
        self.gmail = make("gmail", "v1", self.address, scopes or [MAIL])
        self.http = requests.Session()

    def control(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.emulator.base_url}/_emulator/gmail/{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return dict(response.json())

    def deliver(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("from", "Marie Curie <marie@curie.example>")
        fields.setdefault("subject", "Hello")
        fields.setdefault("text", "Hello there")
        return self.control("messages", email=self.address, **fields)

    def history_id(self) -> int:
        return int(self.gmail.users().getProfile(userId="me").execute()["historyId"])

    def history(self, start: int, **params: Any) -> dict[str, Any]:
        return dict(self.gmail.users().history().list(userId="me", startHistoryId=str(start), **params).execute())


@pytest.fixture
def box(google_emulator: GoogleEmulator, google_service: Callable[..., Any]) -> Mailbox:
    return Mailbox(google_emulator, google_service)


def raw_message(text: str) -> str:
    return base64.urlsafe_b64encode(text.replace("\n", "\r\n").encode()).decode()


def http_error(call: Any) -> HttpError:
    with pytest.raises(HttpError) as caught:
        call.execute()
    return caught.value


def all_history(box: Mailbox, start: int, **params: Any) -> tuple[list[dict[str, Any]], int, int]:
    """Follow nextPageToken; returns (records, pages, final historyId)."""
    records: list[dict[str, Any]] = []
    token, pages = None, 0
    while True:
        page = box.history(start, **({"pageToken": token} if token else {}), **params)
        pages += 1
        records += page.get("history", [])
        token = page.get("nextPageToken")
        if not token:
            return records, pages, int(page["historyId"])


# ---------------------------------------------------------------------- history


def test_history_ids_increase_chronologically_but_are_not_contiguous(box: Mailbox) -> None:
    ids = [box.history_id()]
    for n in range(6):
        box.deliver(subject=f"m{n}")
        ids.append(box.history_id())
    steps = [b - a for a, b in itertools.pairwise(ids)]
    assert all(step > 0 for step in steps)
    assert any(step > 1 for step in steps)


def test_history_list_returns_every_change_kind_after_start_history_id(box: Mailbox) -> None:
    start = box.history_id()
    added = box.deliver()
    box.control(f"messages/{added['id']}/labels", email=box.address, add=["STARRED"], remove=["UNREAD"])
    box.control(f"messages/{added['id']}/delete", email=box.address)

    page = box.history(start)

    records = page["history"]
    assert all(int(r["id"]) > start for r in records)
    assert [r["id"] for r in records] == sorted((r["id"] for r in records), key=int)
    assert records[0]["messagesAdded"][0]["message"]["id"] == added["id"]
    label_change = records[1]
    assert label_change["labelsAdded"][0]["labelIds"] == ["STARRED"]
    assert label_change["labelsRemoved"][0]["labelIds"] == ["UNREAD"]
    assert records[2]["messagesDeleted"][0]["message"]["id"] == added["id"]
    assert all(r["messages"][0]["id"] == added["id"] for r in records)
    assert page["historyId"] == str(box.history_id())


def test_history_types_filter_returns_only_those_change_kinds(box: Mailbox) -> None:
    start = box.history_id()
    added = box.deliver()
    box.control(f"messages/{added['id']}/labels", email=box.address, add=["STARRED"])

    page = box.history(start, historyTypes=["labelAdded"])

    assert len(page["history"]) == 1
    assert "messagesAdded" not in page["history"][0]
    assert page["history"][0]["labelsAdded"][0]["labelIds"] == ["STARRED"]


def test_history_label_id_filter_returns_only_changes_of_messages_with_that_label(box: Mailbox) -> None:
    start = box.history_id()
    inbox = box.deliver()
    box.deliver(labelIds=["SPAM"])

    page = box.history(start, labelId="INBOX")

    assert [r["messages"][0]["id"] for r in page["history"]] == [inbox["id"]]


def test_history_pages_until_no_next_page_token_then_history_id_is_the_cursor(box: Mailbox) -> None:
    start = box.history_id()
    ids = [box.deliver(subject=f"m{n}")["id"] for n in range(5)]

    records, pages, final = all_history(box, start, maxResults=2)

    assert pages == 3
    assert [r["messagesAdded"][0]["message"]["id"] for r in records] == ids
    assert final == box.history_id()
    # Nothing new after the stored historyId: an empty answer, not a 404.
    assert "history" not in box.history(final)


def test_out_of_date_start_history_id_returns_404_then_a_full_sync_recovers(box: Mailbox) -> None:
    start = box.history_id()
    box.deliver()
    box.control("expire-history", email=box.address)

    error = http_error(box.gmail.users().history().list(userId="me", startHistoryId=str(start)))

    assert error.status_code == 404
    assert error.error_details[0]["reason"] == "notFound"
    # The documented recovery: full sync, then history from the profile's historyId works.
    assert box.gmail.users().messages().list(userId="me").execute()["resultSizeEstimate"] == 1
    assert "historyId" in box.history(box.history_id())


def test_history_id_is_valid_for_a_week_and_then_expires(
    google_emulator: GoogleEmulator, google_service: Callable[..., Any]
) -> None:
    first = Mailbox(google_emulator, google_service)
    start = first.history_id()
    first.deliver()
    google_emulator.advance_clock(6 * 86400)
    # Tokens live an hour: mint a new one after moving the clock.
    first.gmail = google_service("gmail", "v1", first.address, [MAIL])
    assert len(first.history(start)["history"]) == 1

    google_emulator.advance_clock(86400 + 60)
    first.gmail = google_service("gmail", "v1", first.address, [MAIL])

    error = http_error(first.gmail.users().history().list(userId="me", startHistoryId=str(start)))
    assert error.status_code == 404


def test_history_list_requires_start_history_id(box: Mailbox) -> None:
    error = http_error(box.gmail.users().history().list(userId="me"))
    assert error.status_code == 400


# ---------------------------------------------------------------------- messages.list


def test_messages_list_pages_with_next_page_token_newest_first(box: Mailbox) -> None:
    ids = [box.deliver(subject=f"m{n}")["id"] for n in range(5)]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = box.gmail.users().messages().list(userId="me", maxResults=2, pageToken=token).execute()
        pages += 1
        seen += [m["id"] for m in page["messages"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(ids))
    assert page["resultSizeEstimate"] >= 1


def test_page_tokens_are_bound_to_the_account_and_the_query(
    box: Mailbox, google_emulator: GoogleEmulator, google_service: Callable[..., Any]
) -> None:
    for n in range(3):
        box.deliver(subject=f"m{n}")
    token = box.gmail.users().messages().list(userId="me", maxResults=1).execute()["nextPageToken"]
    other = Mailbox(google_emulator, google_service)

    changed_query = http_error(box.gmail.users().messages().list(userId="me", maxResults=1, pageToken=token, q="m1"))
    other_account = http_error(other.gmail.users().messages().list(userId="me", maxResults=1, pageToken=token))
    forged = http_error(box.gmail.users().messages().list(userId="me", pageToken="1234"))

    assert changed_query.status_code == other_account.status_code == forged.status_code == 400


def test_label_ids_filter_requires_all_labels(box: Mailbox) -> None:
    both = box.deliver(labelIds=["INBOX", "STARRED"])
    box.deliver(labelIds=["INBOX"])
    box.deliver(labelIds=["STARRED"])

    page = box.gmail.users().messages().list(userId="me", labelIds=["INBOX", "STARRED"]).execute()

    assert [m["id"] for m in page["messages"]] == [both["id"]]


def test_spam_and_trash_are_excluded_unless_include_spam_trash(box: Mailbox) -> None:
    inbox = box.deliver()
    spam = box.deliver(labelIds=["SPAM"])
    trash = box.deliver(labelIds=["TRASH"])

    default = box.gmail.users().messages().list(userId="me").execute()
    everything = box.gmail.users().messages().list(userId="me", includeSpamTrash=True).execute()

    assert [m["id"] for m in default["messages"]] == [inbox["id"]]
    assert {m["id"] for m in everything["messages"]} == {inbox["id"], spam["id"], trash["id"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("from:marie@curie.example", {"marie"}),
        ("from:alan", {"alan"}),
        ("to:bob@example.net", {"alan"}),
        ("cc:carol@example.net", {"alan"}),
        ("subject:invoice", {"alan"}),
        ("proposal", {"marie"}),
        ('"pilot project"', {"marie"}),
        ("-from:marie", {"alan", "sent"}),
        ("in:sent", {"sent"}),
        ("in:inbox", {"marie", "alan"}),
        ("label:customers", {"marie"}),
        ("is:unread", {"alan"}),
        ("newer_than:2d", {"alan", "marie", "sent"}),
        ("older_than:2d", set()),
    ],
)
def test_search_query_supports_the_documented_operators(box: Mailbox, query: str, expected: set[str]) -> None:
    box.control("labels", email=box.address, name="Customers")
    ids = {
        "marie": box.deliver(subject="Pilot project", text="the proposal", labelIds=["INBOX", "Label_1"])["id"],
        "alan": box.deliver(
            **{"from": "Alan Turing <alan@bletchley.example>"},
            to="bob@example.net",
            cc="carol@example.net",
            subject="Invoice 42",
            labelIds=["INBOX", "UNREAD"],
        )["id"],
        "sent": box.gmail.users()
        .messages()
        .send(userId="me", body={"raw": raw_message("To: x@example.net\nSubject: out\n\nbye")})
        .execute()["id"],
    }
    page = box.gmail.users().messages().list(userId="me", q=query).execute()
    found = {name for name, message_id in ids.items() if message_id in {m["id"] for m in page.get("messages", [])}}
    assert found == expected


def test_search_rfc822msgid_finds_the_message_with_that_message_id_header(box: Mailbox) -> None:
    wanted = box.deliver(subject="One")
    box.deliver(subject="Two")
    sent = (
        box.gmail.users()
        .messages()
        .send(
            userId="me",
            body={"raw": raw_message("To: x@example.net\nMessage-ID: <Out.1@Crm.Example>\nSubject: o\n\nb")},
        )
        .execute()
    )

    def found(query: str) -> list[str]:
        page = box.gmail.users().messages().list(userId="me", q=query).execute()
        return [m["id"] for m in page.get("messages", [])]

    header = wanted["messageIdHeader"]
    assert found(f"rfc822msgid:{header}") == [wanted["id"]]
    assert found(f"rfc822msgid:{header.strip('<>')}") == [wanted["id"]]
    # The domain compares in any case; with in:sent, only what the mailbox sent.
    assert found("rfc822msgid:Out.1@crm.example in:sent") == [sent["id"]]
    assert found(f"rfc822msgid:{header} in:sent") == []
    assert found("rfc822msgid:nobody@nowhere.example") == []


def test_search_after_and_before_take_dates_and_epoch_seconds(box: Mailbox, google_emulator: GoogleEmulator) -> None:
    message = box.deliver()
    internal = int(
        box.gmail.users().messages().get(userId="me", id=message["id"], format="minimal").execute()["internalDate"]
    )
    seconds = internal // 1000

    def found(q: str) -> bool:
        page = box.gmail.users().messages().list(userId="me", q=q).execute()
        return message["id"] in {m["id"] for m in page.get("messages", [])}

    assert found(f"after:{seconds - 60}")
    assert not found(f"after:{seconds + 60}")
    assert found(f"before:{seconds + 60}")
    assert not found(f"before:{seconds - 60}")
    assert found("after:2004/01/01")
    assert not found("before:2004/01/01")


# ---------------------------------------------------------------------- messages.get


def test_messages_get_formats_minimal_metadata_full_raw(box: Mailbox) -> None:
    source = "From: Marie <marie@curie.example>\nTo: x@example.com\nSubject: Plans\nMessage-ID: <a1@curie>\n\nIt's on."
    message_id = box.control("messages", email=box.address, raw=raw_message(source))["id"]
    get = box.gmail.users().messages().get

    minimal = get(userId="me", id=message_id, format="minimal").execute()
    metadata = get(userId="me", id=message_id, format="metadata", metadataHeaders=["Subject"]).execute()
    full = get(userId="me", id=message_id, format="full").execute()
    raw = get(userId="me", id=message_id, format="raw").execute()

    assert {"id", "threadId", "labelIds", "snippet", "historyId", "internalDate", "sizeEstimate"} <= minimal.keys()
    assert "payload" not in minimal
    assert minimal["snippet"] == "It&#39;s on."
    assert [h["name"] for h in metadata["payload"]["headers"]] == ["Subject"]
    assert base64.urlsafe_b64decode(full["payload"]["body"]["data"]) == b"It's on."
    assert {h["name"]: h["value"] for h in full["payload"]["headers"]}["Message-ID"] == "<a1@curie>"
    assert b"Message-ID: <a1@curie>" in base64.urlsafe_b64decode(raw["raw"])


def test_full_format_has_multipart_parts_with_base64url_bodies(box: Mailbox) -> None:
    message_id = box.deliver(text="plain body", html="<p>html body</p>")["id"]

    full = box.gmail.users().messages().get(userId="me", id=message_id).execute()

    payload = full["payload"]
    assert payload["mimeType"] == "multipart/alternative"
    assert [p["partId"] for p in payload["parts"]] == ["0", "1"]
    assert [p["mimeType"] for p in payload["parts"]] == ["text/plain", "text/html"]
    assert base64.urlsafe_b64decode(payload["parts"][0]["body"]["data"]).strip() == b"plain body"


def test_unknown_message_id_is_404_not_found(box: Mailbox) -> None:
    error = http_error(box.gmail.users().messages().get(userId="me", id="18c0ffee00000000"))
    assert error.status_code == 404
    assert error.error_details[0]["reason"] == "notFound"


def test_metadata_scope_forbids_full_format_and_q(google_emulator: GoogleEmulator, google_service: Any) -> None:
    box = Mailbox(google_emulator, google_service, [METADATA])
    message_id = box.deliver()["id"]
    assert box.gmail.users().messages().get(userId="me", id=message_id, format="metadata").execute()["payload"]

    full = http_error(box.gmail.users().messages().get(userId="me", id=message_id, format="full"))
    search = http_error(box.gmail.users().messages().list(userId="me", q="hello"))

    assert full.status_code == search.status_code == 403


def test_another_users_mailbox_is_refused(box: Mailbox) -> None:
    error = http_error(box.gmail.users().messages().list(userId="someone-else@example.com"))
    assert error.status_code == 403


def test_missing_gmail_scope_is_403_insufficient_permissions(
    google_emulator: GoogleEmulator, google_service: Any
) -> None:
    box = Mailbox(google_emulator, google_service, [CALENDAR])
    error = http_error(box.gmail.users().messages().list(userId="me"))
    assert error.status_code == 403
    assert error.error_details[0]["reason"] == "insufficientPermissions"


def test_labels_list_has_the_system_labels_and_user_labels(box: Mailbox) -> None:
    box.control("labels", email=box.address, name="Customers")

    labels = {label["id"]: label for label in box.gmail.users().labels().list(userId="me").execute()["labels"]}

    assert {"INBOX", "SENT", "UNREAD", "STARRED", "IMPORTANT", "TRASH", "SPAM", "DRAFT", "CATEGORY_PERSONAL"} <= set(
        labels
    )
    assert labels["INBOX"]["type"] == "system"
    assert labels["Label_1"] == {**labels["Label_1"], "name": "Customers", "type": "user"}


# ---------------------------------------------------------------------- messages.send


def test_sent_message_lands_in_sent_from_the_sender_with_a_message_id(box: Mailbox) -> None:
    sent = (
        box.gmail.users()
        .messages()
        .send(userId="me", body={"raw": raw_message("From: spoof@evil.example\nTo: x@example.net\nSubject: Hi\n\nyo")})
        .execute()
    )

    assert sent["labelIds"] == ["SENT"]
    stored = box.gmail.users().messages().get(userId="me", id=sent["id"], format="metadata").execute()
    headers = {h["name"]: h["value"] for h in stored["payload"]["headers"]}
    assert box.address in headers["From"]
    assert "spoof" not in headers["From"]
    assert headers["Message-ID"].startswith("<")
    listed = box.gmail.users().messages().list(userId="me", labelIds=["SENT"]).execute()
    assert [m["id"] for m in listed["messages"]] == [sent["id"]]


def _reply_source(parent_message_id: str, subject: str, references: bool = True) -> str:
    headers = f"In-Reply-To: {parent_message_id}\nReferences: {parent_message_id}\n" if references else ""
    return f"To: marie@curie.example\nSubject: {subject}\n{headers}\nreply"


def _incoming_with_header(box: Mailbox) -> tuple[str, str]:
    incoming = box.deliver(subject="Pilot project")
    return incoming["threadId"], incoming["messageIdHeader"]


def test_send_with_thread_id_joins_the_thread_when_references_and_subject_match(box: Mailbox) -> None:
    thread_id, parent = _incoming_with_header(box)
    body = {"raw": raw_message(_reply_source(parent, "Re: Pilot project")), "threadId": thread_id}

    sent = box.gmail.users().messages().send(userId="me", body=body).execute()

    assert sent["threadId"] == thread_id
    thread = box.gmail.users().threads().get(userId="me", id=thread_id, format="minimal").execute()
    assert [m["id"] for m in thread["messages"]][-1] == sent["id"]


def test_send_with_thread_id_but_another_subject_starts_a_new_thread(box: Mailbox) -> None:
    thread_id, parent = _incoming_with_header(box)
    body = {"raw": raw_message(_reply_source(parent, "Something else")), "threadId": thread_id}

    sent = box.gmail.users().messages().send(userId="me", body=body).execute()

    assert sent["threadId"] != thread_id


def test_send_with_thread_id_but_no_references_starts_a_new_thread(box: Mailbox) -> None:
    thread_id, parent = _incoming_with_header(box)
    body = {"raw": raw_message(_reply_source(parent, "Re: Pilot project", references=False)), "threadId": thread_id}

    sent = box.gmail.users().messages().send(userId="me", body=body).execute()

    assert sent["threadId"] != thread_id


def test_send_without_thread_id_starts_a_new_thread_even_for_a_reply(box: Mailbox) -> None:
    thread_id, parent = _incoming_with_header(box)

    sent = (
        box.gmail.users()
        .messages()
        .send(userId="me", body={"raw": raw_message(_reply_source(parent, "Re: Pilot project"))})
        .execute()
    )

    assert sent["threadId"] != thread_id


def test_send_through_the_media_upload_path(box: Mailbox, google_emulator: GoogleEmulator) -> None:
    # googleapiclient keeps https when it rewrites the upload URL for an http api_endpoint,
    # so the upload protocols are exercised with plain HTTP here.
    url = f"{google_emulator.base_url}/upload/gmail/v1/users/me/messages/send"
    minted = requests.post(
        f"{google_emulator.base_url}/_emulator/tokens", json={"email": box.address, "scopes": [SEND]}, timeout=10
    )
    auth = {"Authorization": f"Bearer {minted.json()['access_token']}"}
    source = b"To: x@example.net\r\nSubject: Uploaded\r\n\r\nvia /upload"
    simple = requests.post(
        url, params={"uploadType": "media"}, data=source, headers={**auth, "Content-Type": "message/rfc822"}, timeout=10
    )
    related = (
        b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + source + b"\r\n--b--\r\n"
    )
    multipart = requests.post(
        url,
        params={"uploadType": "multipart"},
        data=related,
        headers={**auth, "Content-Type": "multipart/related; boundary=b"},
        timeout=10,
    )

    for response in (simple, multipart):
        assert response.status_code == 200, response.text
        stored = box.gmail.users().messages().get(userId="me", id=response.json()["id"], format="metadata").execute()
        assert {h["name"]: h["value"] for h in stored["payload"]["headers"]}["Subject"] == "Uploaded"
        assert stored["labelIds"] == ["SENT"]


def test_send_requires_a_raw_message_and_a_recipient(box: Mailbox) -> None:
    no_raw = http_error(box.gmail.users().messages().send(userId="me", body={}))
    no_recipient = http_error(
        box.gmail.users().messages().send(userId="me", body={"raw": raw_message("Subject: x\n\ny")})
    )
    assert no_raw.status_code == no_recipient.status_code == 400


def test_mail_to_another_emulated_account_arrives_in_its_inbox_without_bcc(
    box: Mailbox, google_emulator: GoogleEmulator, google_service: Any
) -> None:
    recipient = Mailbox(google_emulator, google_service)
    hidden = Mailbox(google_emulator, google_service)
    source = f"To: {recipient.address}\nBcc: {hidden.address}\nSubject: Intro\n\nhello"
    box.gmail.users().messages().send(userId="me", body={"raw": raw_message(source)}).execute()

    for target in (recipient, hidden):
        listed = target.gmail.users().messages().list(userId="me", labelIds=["INBOX"]).execute()
        message = (
            target.gmail.users().messages().get(userId="me", id=listed["messages"][0]["id"], format="raw").execute()
        )
        parsed = email.message_from_bytes(base64.urlsafe_b64decode(message["raw"]), policy=email.policy.default)
        assert parsed["Subject"] == "Intro"
        assert parsed["Bcc"] is None
        assert "UNREAD" in message["labelIds"]


def test_a_reply_delivered_to_the_mailbox_joins_the_thread_it_references(box: Mailbox) -> None:
    sent = (
        box.gmail.users()
        .messages()
        .send(userId="me", body={"raw": raw_message("To: marie@curie.example\nSubject: Offer\n\nhi")})
        .execute()
    )
    header = (
        box.gmail.users()
        .messages()
        .get(userId="me", id=sent["id"], format="metadata", metadataHeaders=["Message-ID"])
        .execute()["payload"]["headers"][0]["value"]
    )

    reply = box.deliver(subject="Re: Offer", source="")
    # Delivered without reply headers: a new thread.
    assert reply["threadId"] != sent["threadId"]
    source = (
        f"From: marie@curie.example\nTo: {box.address}\nSubject: RE: Offer\n"
        f"In-Reply-To: {header}\nReferences: {header}\n\nyes"
    )
    threaded = box.control("messages", email=box.address, raw=raw_message(source))
    assert threaded["threadId"] == sent["threadId"]


# ---------------------------------------------------------------------- batch


def test_batch_endpoint_answers_each_messages_get_by_content_id(box: Mailbox, google_emulator: GoogleEmulator) -> None:
    ids = [box.deliver(subject=f"m{n}")["id"] for n in range(3)]
    answers: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        answers[request_id] = exception if exception is not None else response

    batch = BatchHttpRequest(callback=collect, batch_uri=google_emulator.base_url + "/batch/gmail/v1")
    for message_id in ids:
        batch.add(box.gmail.users().messages().get(userId="me", id=message_id, format="minimal"), request_id=message_id)
    batch.add(box.gmail.users().messages().get(userId="me", id="18c0ffee00000000"), request_id="missing")
    batch.execute()

    assert {k: v["id"] for k, v in answers.items() if k != "missing"} == {i: i for i in ids}
    assert isinstance(answers["missing"], HttpError)
    assert answers["missing"].status_code == 404


def test_batch_endpoint_requires_authentication(google_emulator: GoogleEmulator) -> None:
    response = requests.post(
        google_emulator.base_url + "/batch/gmail/v1",
        data="--x\r\nContent-Type: application/http\r\n\r\nGET /gmail/v1/users/me/profile HTTP/1.1\r\n\r\n--x--\r\n",
        headers={"Content-Type": "multipart/mixed; boundary=x"},
        timeout=10,
    )
    assert response.status_code == 401


# ---------------------------------------------------------------------- attachments


def with_attachment(data: bytes, filename: str = "proposal.pdf") -> str:
    message = email.message.EmailMessage()
    message["From"] = "Marie Curie <marie@curie.example>"
    message["To"] = "someone@example.com"
    message["Subject"] = "Proposal"
    message.set_content("See attached.")
    message.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


def test_full_format_gives_attachments_an_attachment_id_that_attachments_get_reads(box: Mailbox) -> None:
    data = bytes(range(256)) * 3
    message_id = box.control("messages", email=box.address, raw=with_attachment(data))["id"]

    full = box.gmail.users().messages().get(userId="me", id=message_id).execute()
    [part] = [p for p in full["payload"]["parts"] if p["filename"] == "proposal.pdf"]
    body = part["body"]
    answer = (
        box.gmail.users().messages().attachments().get(userId="me", messageId=message_id, id=body["attachmentId"])
    ).execute()

    assert "data" not in body
    assert body["size"] == len(data)
    assert answer["size"] == len(data)
    assert answer["attachmentId"] == body["attachmentId"]
    assert base64.urlsafe_b64decode(answer["data"]) == data


def test_attachments_get_of_an_unknown_attachment_or_message_is_404(box: Mailbox) -> None:
    message_id = box.control("messages", email=box.address, raw=with_attachment(b"%PDF-1.4"))["id"]

    unknown = http_error(
        box.gmail.users().messages().attachments().get(userId="me", messageId=message_id, id="ANGjdJx")
    )
    gone = http_error(
        box.gmail.users().messages().attachments().get(userId="me", messageId="18c0ffee00000000", id="ANGjdJx")
    )

    assert unknown.status_code == 404
    assert gone.status_code == 404


# ---------------------------------------------------------------------- trash


def test_trash_adds_the_trash_label_and_untrash_removes_it_each_a_label_history_record(box: Mailbox) -> None:
    message_id = box.deliver()["id"]
    start = box.history_id()

    trashed = box.gmail.users().messages().trash(userId="me", id=message_id).execute()
    listed_while_trashed = box.gmail.users().messages().list(userId="me").execute().get("messages", [])
    in_trash = box.gmail.users().messages().list(userId="me", q="in:trash").execute()["messages"]
    restored = box.gmail.users().messages().untrash(userId="me", id=message_id).execute()
    records, _, _ = all_history(box, start)

    assert "TRASH" in trashed["labelIds"]
    assert "INBOX" in trashed["labelIds"]
    assert listed_while_trashed == []
    assert [m["id"] for m in in_trash] == [message_id]
    assert "TRASH" not in restored["labelIds"]
    assert [r.get("labelsAdded", [{}])[0].get("labelIds") for r in records] == [["TRASH"], None]
    assert records[1]["labelsRemoved"][0]["labelIds"] == ["TRASH"]
    assert records[1]["labelsRemoved"][0]["message"]["id"] == message_id


def test_trash_of_an_unknown_message_is_404(box: Mailbox) -> None:
    assert http_error(box.gmail.users().messages().trash(userId="me", id="18c0ffee00000000")).status_code == 404


# ---------------------------------------------------------------------- drafts


def draft_body(text: str = "To: marie@curie.example\nSubject: Draft\n\nNot yet.\n", **message: Any) -> dict[str, Any]:
    return {"message": {"raw": raw_message(text), **message}}


def test_a_draft_is_a_message_with_the_draft_label_added_to_history(box: Mailbox) -> None:
    start = box.history_id()

    draft = box.gmail.users().drafts().create(userId="me", body=draft_body()).execute()
    fetched = box.gmail.users().drafts().get(userId="me", id=draft["id"], format="raw").execute()
    records, _, _ = all_history(box, start)

    assert draft["id"].startswith("r")
    assert draft["message"]["labelIds"] == ["DRAFT"]
    assert fetched["id"] == draft["id"]
    assert fetched["message"]["id"] == draft["message"]["id"]
    assert b"Subject: Draft" in base64.urlsafe_b64decode(fetched["message"]["raw"])
    [added] = [r["messagesAdded"][0]["message"] for r in records]
    assert added["id"] == draft["message"]["id"]
    assert added["labelIds"] == ["DRAFT"]


def test_messages_list_includes_drafts_unless_excluded_with_minus_in_draft(box: Mailbox) -> None:
    kept = box.deliver()["id"]
    draft = box.gmail.users().drafts().create(userId="me", body=draft_body()).execute()

    everything = box.gmail.users().messages().list(userId="me").execute()["messages"]
    without = box.gmail.users().messages().list(userId="me", q="-in:draft").execute()["messages"]
    only = box.gmail.users().messages().list(userId="me", q="in:draft").execute()["messages"]

    assert {m["id"] for m in everything} == {kept, draft["message"]["id"]}
    assert [m["id"] for m in without] == [kept]
    assert [m["id"] for m in only] == [draft["message"]["id"]]


def test_drafts_list_pages_newest_first(box: Mailbox, google_emulator: GoogleEmulator) -> None:
    ids = []
    for _ in range(3):
        ids.append(box.gmail.users().drafts().create(userId="me", body=draft_body()).execute()["id"])
        google_emulator.advance_clock(1)

    first = box.gmail.users().drafts().list(userId="me", maxResults=2).execute()
    second = box.gmail.users().drafts().list(userId="me", maxResults=2, pageToken=first["nextPageToken"]).execute()

    assert [d["id"] for d in first["drafts"] + second["drafts"]] == list(reversed(ids))
    assert "nextPageToken" not in second
    assert set(first["drafts"][0]["message"]) == {"id", "threadId"}


def test_drafts_update_replaces_the_message_with_a_new_id(box: Mailbox) -> None:
    draft = box.gmail.users().drafts().create(userId="me", body=draft_body()).execute()
    start = box.history_id()

    updated = (
        box.gmail.users()
        .drafts()
        .update(userId="me", id=draft["id"], body=draft_body("To: marie@curie.example\nSubject: Better\n\nNow.\n"))
        .execute()
    )
    records, _, _ = all_history(box, start)

    assert updated["id"] == draft["id"]
    assert updated["message"]["id"] != draft["message"]["id"]
    assert http_error(box.gmail.users().messages().get(userId="me", id=draft["message"]["id"])).status_code == 404
    assert [next(k for k in r if k.startswith("messages") and k != "messages") for r in records] == [
        "messagesDeleted",
        "messagesAdded",
    ]


def test_drafts_delete_removes_the_draft_and_its_message(box: Mailbox) -> None:
    draft = box.gmail.users().drafts().create(userId="me", body=draft_body()).execute()

    box.gmail.users().drafts().delete(userId="me", id=draft["id"]).execute()

    assert http_error(box.gmail.users().drafts().get(userId="me", id=draft["id"])).status_code == 404
    assert http_error(box.gmail.users().messages().get(userId="me", id=draft["message"]["id"])).status_code == 404
    assert "drafts" not in box.gmail.users().drafts().list(userId="me").execute()


def test_drafts_send_sends_a_new_sent_message_and_deletes_the_draft(box: Mailbox) -> None:
    draft = box.gmail.users().drafts().create(userId="me", body=draft_body()).execute()

    sent = box.gmail.users().drafts().send(userId="me", body={"id": draft["id"]}).execute()

    assert sent["labelIds"] == ["SENT"]
    assert sent["id"] != draft["message"]["id"]
    assert sent["threadId"] == sent["id"]
    assert http_error(box.gmail.users().drafts().get(userId="me", id=draft["id"])).status_code == 404
    raw = box.gmail.users().messages().get(userId="me", id=sent["id"], format="raw").execute()["raw"]
    assert f"<{box.address}>".encode() in base64.urlsafe_b64decode(raw)


def test_a_draft_reply_sent_joins_the_thread_by_the_threading_rule(box: Mailbox) -> None:
    original = box.deliver(subject="Project kickoff")
    header = box.gmail.users().messages().get(userId="me", id=original["id"], format="metadata").execute()
    message_id = next(h["value"] for h in header["payload"]["headers"] if h["name"].lower() == "message-id")
    reply = f"To: marie@curie.example\nSubject: Re: Project kickoff\nIn-Reply-To: {message_id}\n\nYes.\n"
    draft = box.gmail.users().drafts().create(userId="me", body=draft_body(reply, threadId=original["threadId"]))
    created = draft.execute()

    sent = box.gmail.users().drafts().send(userId="me", body={"id": created["id"]}).execute()

    assert created["message"]["threadId"] == original["threadId"]
    assert sent["threadId"] == original["threadId"]


def test_drafts_send_without_a_draft_id_is_400_and_of_an_unknown_one_404(box: Mailbox) -> None:
    assert http_error(box.gmail.users().drafts().send(userId="me", body={})).status_code == 400
    assert http_error(box.gmail.users().drafts().send(userId="me", body={"id": "r1"})).status_code == 404


# ---------------------------------------------------------------------- per-user quota


@pytest.fixture
def frozen(google_emulator: GoogleEmulator) -> Iterator[GoogleEmulator]:
    """The emulator clock stands still (moved only by advance_clock) during the test."""
    google_emulator.freeze_clock()
    try:
        yield google_emulator
    finally:
        google_emulator.freeze_clock(False)


def set_quota(emulator: GoogleEmulator, **body: Any) -> None:
    response = requests.post(f"{emulator.base_url}/_emulator/gmail/quota", json=body, timeout=10)
    assert response.status_code == 200, response.text


def batch_get(box: Mailbox, emulator: GoogleEmulator, ids: list[str]) -> dict[str, Any]:
    answers: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        answers[request_id] = exception if exception is not None else response

    batch = BatchHttpRequest(callback=collect, batch_uri=emulator.base_url + "/batch/gmail/v1")
    for n, message_id in enumerate(ids):
        batch.add(box.gmail.users().messages().get(userId="me", id=message_id, format="minimal"), request_id=str(n))
    batch.execute()
    return answers


def test_quota_is_off_by_default(box: Mailbox, frozen: GoogleEmulator) -> None:
    message_id = box.deliver()["id"]

    answers = batch_get(box, frozen, [message_id] * 60)

    assert not [a for a in answers.values() if isinstance(a, HttpError)]


def test_quota_allows_250_units_per_second_counting_each_batch_part_then_403_user_rate_limit(
    box: Mailbox, frozen: GoogleEmulator
) -> None:
    message_id = box.deliver()["id"]
    set_quota(frozen, email=box.address, enabled=True)

    answers = batch_get(box, frozen, [message_id] * 51)  # messages.get costs 5 units: 50 fit

    refused = [a for a in answers.values() if isinstance(a, HttpError)]
    assert len(refused) == 1
    assert refused[0].status_code == 403
    assert refused[0].reason == "User Rate Limit Exceeded"
    assert refused[0].error_details[0] == {
        "message": "User Rate Limit Exceeded",
        "domain": "usageLimits",
        "reason": "userRateLimitExceeded",
    }
    assert answers["50"] is refused[0]
    status = requests.get(f"{frozen.base_url}/_emulator/gmail/quota", params={"email": box.address}, timeout=10)
    assert status.json() == {"email": box.address, "units_per_second": 250, "used": 250, "refused": 1}


def test_quota_is_a_moving_window_of_one_second(box: Mailbox, frozen: GoogleEmulator) -> None:
    message_id = box.deliver()["id"]
    set_quota(frozen, email=box.address, enabled=True, units_per_second=10)
    get = box.gmail.users().messages().get(userId="me", id=message_id, format="minimal")

    get.execute()
    frozen.advance_clock(0.6)
    get.execute()
    refused = http_error(get)  # 10 units spent in the last second
    frozen.advance_clock(0.5)  # the first get left the window, the second has not
    get.execute()

    assert refused.status_code == 403
    assert http_error(get).status_code == 403


def test_quota_charges_each_method_its_documented_units(box: Mailbox, frozen: GoogleEmulator) -> None:
    set_quota(frozen, email=box.address, enabled=True, units_per_second=100)
    profile = box.gmail.users().getProfile(userId="me")

    send = box.gmail.users().messages().send(userId="me", body={"raw": raw_message("To: a@example.net\n\nHi\n")})
    send.execute()  # 100 units: the whole second's budget
    refused = http_error(profile)
    frozen.advance_clock(1.01)
    for _ in range(98):
        profile.execute()  # 1 unit each
    history = box.gmail.users().history().list(userId="me", startHistoryId=str(box.history_id() - 1))
    history_refused = http_error(history)  # 99 spent: history.list's 2 units do not fit

    assert refused.status_code == 403
    assert history_refused.status_code == 403


def test_quota_switched_on_globally_applies_to_every_mailbox_without_its_own_setting(
    box: Mailbox, frozen: GoogleEmulator, google_service: Callable[..., Any]
) -> None:
    other = Mailbox(frozen, google_service)
    set_quota(frozen, enabled=True, units_per_second=1)
    try:
        set_quota(frozen, email=other.address, enabled=False)
        profile = box.gmail.users().getProfile(userId="me")
        profile.execute()
        refused = http_error(profile)
        for _ in range(3):
            other.gmail.users().getProfile(userId="me").execute()
    finally:
        set_quota(frozen, enabled=False)

    assert refused.status_code == 403
    box.gmail.users().getProfile(userId="me").execute()


def test_quota_control_refuses_bad_input(box: Mailbox, google_emulator: GoogleEmulator) -> None:
    url = f"{google_emulator.base_url}/_emulator/gmail/quota"
    for body in ({}, {"enabled": "yes"}, {"enabled": True, "units_per_second": 0}, {"enabled": True, "email": 3}):
        assert requests.post(url, json=body, timeout=10).status_code == 400
    unknown = requests.post(url, json={"enabled": True, "email": "nobody@example.invalid"}, timeout=10)
    assert unknown.status_code == 404
