"""F8: mail sent from the CRM through the user's Gmail, against DynamoDB Local, the S3 of the
local stack and the Gmail emulator, through the real Google adapter: a reply lands in its
Gmail thread and once in the conversation, a retried key never sends twice (also when Gmail's
answer was lost), attachments go through a presigned upload, other users' contacts stay
unreachable."""

from __future__ import annotations

import email
import email.policy
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import Principal, StoredConnection
from crmsync.domain.mail_records import LoggedMessage
from crmsync.errors import NotFound, ProviderError, Unprocessable
from crmsync.logic.contacts import ContactInput
from crmsync.logic.mail_send import MailSend, OutgoingDraft, SendUnavailable
from crmsync.ports.errors import ProviderNotFound
from crmsync.ports.mail import MailAccess, MailPort, MessageRef, OutgoingMessage
from tests.fakes.world import RecordingQueue
from tests.support.gmail_user import GmailUser, message
from tests.support.google_consent import consent, query

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
MARIE = "marie@curie.example"
PIERRE = "pierre@curie.example"


@pytest.fixture
def graph(service_env: dict[str, str]) -> Graph:
    """The production graph with the email feature on; the queue records (the test is the worker)."""
    settings = Settings.from_env(service_env)
    google = settings.google.model_copy(update={"features": ("calendar", "contacts", "email")})
    graph = Graph(settings.model_copy(update={"google": google}))
    graph.__dict__["queue"] = RecordingQueue()
    return graph


@pytest.fixture
def mailbox(stack, graph: Graph, ada: str) -> tuple[str, GmailUser]:
    """Ada's Google account connected with Gmail's scopes and made her mail account, backfilled."""
    integrations = graph.integrations
    start = integrations.start_connect("google", ALICE, features=["calendar", "email"])
    params = query(consent(start.authorization_url, ada, typed=True))
    connection = integrations.complete_connect(
        "google", state=params["state"], code=params["code"], error=None, binding=start.binding
    )
    graph.mail_sync_settings.complete(ALICE, connection)
    graph.mail_sync.run(ALICE, connection.connection_id, reason="enabled")
    return connection.connection_id, GmailUser(stack.google.base_url, ada)


def contact(graph: Graph, email_: str, name: str = "Someone", principal: Principal = ALICE) -> str:
    return graph.contacts.create(principal, ContactInput(given_name=name, emails=[email_])).contact_id


def conversation(graph: Graph, contact_id: str) -> list[LoggedMessage]:
    return graph.contacts.conversation(ALICE, contact_id, None, 100).items


def sent(user: GmailUser) -> list[dict[str, Any]]:
    return [m for m in user.mailbox()["messages"] if "SENT" in m["labelIds"]]


def raw_of(graph: Graph, connection_id: str, gmail_id: str) -> email.message.EmailMessage:
    """The message as Gmail stores it, read through the real adapter."""
    stored = graph.connection_store.get_stored(ALICE, connection_id)
    assert stored is not None
    [found] = graph.connectors.mail(stored).get_messages([gmail_id])
    parsed = email.message_from_bytes(found.raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def key() -> str:
    return str(uuid.uuid4())


def test_a_reply_lands_in_the_gmail_thread_and_once_in_the_conversation_after_the_history_sync(
    graph: Graph, mailbox: tuple[str, GmailUser]
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE, "Marie")
    first = user.receive(
        message(f"Marie <{MARIE}>", [user.email], "Radium samples", "Found it", message_id="<r1@curie.example>")
    )
    second = user.receive(
        message(MARIE, [user.email], "Re: Radium samples", "And more", in_reply_to="<r1@curie.example>"),
        thread_of=first,
    )
    graph.mail_sync.run(ALICE, connection_id)
    [parent] = [m for m in conversation(graph, marie) if m.gmail and m.gmail.message_id == second]
    thread_id = parent.gmail.thread_id if parent.gmail else ""

    entry = graph.mail_send.send(
        ALICE, marie, OutgoingDraft(text="Thanks, Marie", in_reply_to=parent.message_key), key()
    ).message

    assert entry.gmail is not None
    assert entry.gmail.thread_id == thread_id
    assert (entry.source, entry.direction, entry.subject) == ("crm", "outbound", "Re: Radium samples")
    # At the emulator: in the thread, threaded by Gmail's rule.
    thread = [m for m in user.mailbox()["messages"] if m["threadId"] == thread_id]
    assert {m["id"] for m in thread} == {first, second, entry.gmail.message_id}
    raw = raw_of(graph, connection_id, entry.gmail.message_id)
    assert raw["In-Reply-To"] == f"<{parent.message_id}>"
    assert raw["References"].split() == [*(f"<{r}>" for r in parent.references), f"<{parent.message_id}>"]
    assert raw["Subject"] == "Re: Radium samples"
    assert raw["To"] == MARIE
    assert raw["Message-ID"] == f"<{entry.message_id}>"

    # The history sync sees it in Sent and recognises it: the conversation holds it once.
    outcome = graph.mail_sync.run(ALICE, connection_id)
    assert outcome is not None
    assert outcome.logged == 0
    entries = [m for m in conversation(graph, marie) if m.message_id == entry.message_id]
    assert [m.message_key for m in entries] == [entry.message_key]
    shown = graph.contacts.message(ALICE, marie, entry.message_key)
    assert shown.text.strip() == "Thanks, Marie"


def test_a_new_message_goes_to_the_contacts_first_email_and_every_recipient_contact_logs_it(
    graph: Graph, mailbox: tuple[str, GmailUser]
) -> None:
    _, user = mailbox
    marie = contact(graph, MARIE, "Marie")
    pierre = contact(graph, PIERRE, "Pierre")
    draft = OutgoingDraft(subject="Polonium", text="plain", html="<p>rich<script>x()</script></p>", cc=[PIERRE])

    content = graph.mail_send.send(ALICE, marie, draft, key())

    assert content.message.to[0].email == MARIE
    assert set(content.message.contact_ids) == {marie, pierre}
    assert "<script" not in content.html
    assert "rich" in content.html
    assert [m.message_key for m in conversation(graph, pierre)] == [content.message.message_key]
    [out] = sent(user)
    assert (out["subject"], out["to"]) == ("Polonium", MARIE)


def test_the_same_idempotency_key_twice_sends_once(graph: Graph, mailbox: tuple[str, GmailUser]) -> None:
    _, user = mailbox
    marie = contact(graph, MARIE)
    draft = OutgoingDraft(subject="Once", text="only once")
    same = key()

    first = graph.mail_send.send(ALICE, marie, draft, same)
    again = graph.mail_send.send(ALICE, marie, draft, same)
    other = graph.mail_send.send(ALICE, marie, draft, key())

    assert again.message.message_key == first.message.message_key
    assert other.message.message_key != first.message.message_key
    assert sorted(m["subject"] for m in sent(user)) == ["Once", "Once"]  # the first key's and the other's
    assert len(conversation(graph, marie)) == 2


class LosingAnswers:
    """Opens mailboxes whose ``send`` reaches Gmail and then loses its answer (a timeout,
    the function dying) — the first ``losses`` times; ``threads``: the thread ids asked for.
    ``refuse_threads``: Gmail refuses every ``threadId`` as gone (404) before sending."""

    def __init__(self, inner: MailAccess, losses: int = 1, refuse_threads: bool = False) -> None:
        self.inner = inner
        self.losses = losses
        self.refuse_threads = refuse_threads
        self.sends = 0
        self.threads: list[str | None] = []

    def mail(self, stored: StoredConnection) -> MailPort:
        port = self.inner.mail(stored)
        outer = self

        class Losing:
            def __getattr__(self, name: str) -> Any:
                return getattr(port, name)

            def send(self, outgoing: OutgoingMessage) -> MessageRef:
                outer.threads.append(outgoing.thread_id)
                if outer.refuse_threads and outgoing.thread_id is not None:
                    raise ProviderNotFound("messages.send: no such thread.")
                ref = port.send(outgoing)
                outer.sends += 1
                if outer.losses > 0:
                    outer.losses -= 1
                    raise ProviderError("Gmail's answer was lost.", retryable=True)
                return ref

        return Losing()


def test_an_answer_lost_after_gmail_accepted_is_found_in_sent_on_retry_and_not_sent_again(
    graph: Graph, mailbox: tuple[str, GmailUser]
) -> None:
    _, user = mailbox
    marie = contact(graph, MARIE)
    access = LosingAnswers(graph.connectors)
    sender = sender_over(graph, access)
    draft = OutgoingDraft(subject="Lost answer", text="did it go?")
    same = key()

    with pytest.raises(ProviderError):
        sender.send(ALICE, marie, draft, same)
    assert conversation(graph, marie) == []  # nothing logged yet
    retried = sender.send(ALICE, marie, draft, same)

    assert access.sends == 1
    [out] = sent(user)
    assert out["subject"] == "Lost answer"
    assert retried.message.gmail is not None
    assert retried.message.gmail.message_id == out["id"]
    assert [m.message_key for m in conversation(graph, marie)] == [retried.message.message_key]


def test_a_send_binned_between_its_lost_answer_and_the_retry_is_found_not_sent_again(
    graph: Graph, mailbox: tuple[str, GmailUser]
) -> None:
    """Gmail's search hides trash unless asked: the retry still finds what went out, and the
    entry says where it is now."""
    _, user = mailbox
    marie = contact(graph, MARIE)
    access = LosingAnswers(graph.connectors)
    sender = sender_over(graph, access)
    draft = OutgoingDraft(subject="Binned at once", text="oops")
    same = key()
    with pytest.raises(ProviderError):
        sender.send(ALICE, marie, draft, same)
    [out] = sent(user)
    user.label(out["id"], add=["TRASH"])

    retried = sender.send(ALICE, marie, draft, same)

    assert access.sends == 1
    assert len(sent(user)) == 1
    assert retried.message.gmail is not None
    assert (retried.message.gmail.message_id, retried.message.gmail.state) == (out["id"], "trashed")


def test_a_reply_to_a_message_deleted_in_gmail_is_sent_in_a_thread_of_its_own(
    graph: Graph, mailbox: tuple[str, GmailUser]
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE, "Marie")
    gone = user.receive(message(MARIE, [user.email], "Polonium", "Here", message_id="<p1@curie.example>"))
    graph.mail_sync.run(ALICE, connection_id)
    user.delete(gone)
    graph.mail_sync.run(ALICE, connection_id)
    [parent] = conversation(graph, marie)
    assert parent.gmail is not None
    assert parent.gmail.state == "deleted"
    access = LosingAnswers(graph.connectors, losses=0)

    entry = sender_over(graph, access).send(
        ALICE, marie, OutgoingDraft(text="Got it", in_reply_to=parent.message_key), key()
    )

    assert access.threads == [None]  # not the deleted thread
    [out] = sent(user)
    assert entry.message.gmail is not None
    assert out["id"] == entry.message.gmail.message_id
    assert out["threadId"] != parent.gmail.thread_id
    assert raw_of(graph, connection_id, out["id"])["In-Reply-To"] == "<p1@curie.example>"


def test_a_reply_whose_thread_gmail_refuses_as_gone_goes_out_once_in_a_new_thread(
    graph: Graph, mailbox: tuple[str, GmailUser]
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE, "Marie")
    user.receive(message(MARIE, [user.email], "Uranium", "Look", message_id="<u1@curie.example>"))
    graph.mail_sync.run(ALICE, connection_id)
    [parent] = conversation(graph, marie)
    access = LosingAnswers(graph.connectors, losses=0, refuse_threads=True)

    entry = sender_over(graph, access).send(
        ALICE, marie, OutgoingDraft(text="Seen", in_reply_to=parent.message_key), key()
    )

    assert parent.gmail is not None
    assert access.threads == [parent.gmail.thread_id, None]
    [out] = sent(user)
    assert entry.message.gmail is not None
    assert out["id"] == entry.message.gmail.message_id


def sender_over(graph: Graph, access: MailAccess) -> MailSend:
    return MailSend(
        contacts=graph.contact_store,
        connections=graph.connection_store,
        sync=graph.mail_sync_store,
        access=access,
        log_store=graph.mail_log,
        bucket=graph.mail_bucket,
        publisher=graph.events,
        message_id_domain=graph.settings.logging_domain,
    )


def upload(graph: Graph, filename: str, content_type: str, data: bytes, principal: Principal = ALICE) -> str:
    ticket = graph.uploads.start(principal, filename, content_type, len(data))
    put = requests.request(ticket.method, ticket.url, data=data, headers=ticket.headers, timeout=10)
    assert put.status_code == 200, put.text
    return ticket.upload_id


def test_attachments_uploaded_through_the_presigned_put_arrive(graph: Graph, mailbox: tuple[str, GmailUser]) -> None:
    connection_id, _ = mailbox
    marie = contact(graph, MARIE)
    pdf = b"%PDF-1.4 radium " * 1000
    ids = [upload(graph, "Résumé 2.pdf", "application/pdf", pdf), upload(graph, "notes.txt", "text/plain", b"hi")]

    content = graph.mail_send.send(ALICE, marie, OutgoingDraft(subject="Files", text="see", attachments=ids), key())

    stored = content.message.attachments
    assert [(a.filename, a.content_type, a.size) for a in stored] == [
        ("Résumé 2.pdf", "application/pdf", len(pdf)),
        ("notes.txt", "text/plain", 2),
    ]
    assert all(a.s3_key and a.s3_key.startswith("attachments/") for a in stored)
    assert graph.mail_bucket.read_bytes(stored[0].s3_key or "", len(pdf)) == pdf
    assert content.message.gmail is not None
    raw = raw_of(graph, connection_id, content.message.gmail.message_id)
    parts = list(raw.iter_attachments())
    assert [p.get_filename() for p in parts] == ["Résumé 2.pdf", "notes.txt"]
    assert parts[0].get_content() == pdf


def test_an_upload_is_signed_for_its_size_and_type_and_refused_past_gmails_limit(graph: Graph) -> None:
    ticket = graph.uploads.start(ALICE, "a.pdf", "application/pdf", 1234)
    signed = parse_qs(urlparse(ticket.url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-type", "x-amz-meta-filename"} <= set(signed)
    assert f"/uploads/{ALICE.tenant_id}/{ALICE.user_id}/{ticket.upload_id}" in ticket.url
    assert "a.pdf" not in urlparse(ticket.url).path
    with pytest.raises(Unprocessable):
        graph.uploads.start(ALICE, "big.bin", "application/octet-stream", 25 * 1024 * 1024 + 1)


def test_unknown_foreign_or_unsent_uploads_are_refused_and_nothing_is_sent(
    graph: Graph, mailbox: tuple[str, GmailUser]
) -> None:
    _, user = mailbox
    marie = contact(graph, MARIE)
    theirs = upload(graph, "x.pdf", "application/pdf", b"x", principal=Principal("tenant-b", "alice"))
    never_put = graph.uploads.start(ALICE, "y.pdf", "application/pdf", 10).upload_id

    for ids in (["A" * 24], [theirs], [never_put], ["../../bodies"]):
        with pytest.raises(Unprocessable):
            graph.mail_send.send(ALICE, marie, OutgoingDraft(subject="x", text="x", attachments=ids), key())
    assert sent(user) == []
    assert conversation(graph, marie) == []


def test_another_tenants_or_users_contact_is_not_found(graph: Graph, mailbox: tuple[str, GmailUser]) -> None:
    _, user = mailbox
    other_tenant = contact(graph, MARIE, principal=Principal("tenant-b", "alice"))
    other_user = contact(graph, MARIE, principal=Principal("tenant-a", "bob"))

    for contact_id in (other_tenant, other_user, "nobody"):
        with pytest.raises(NotFound):
            graph.mail_send.send(ALICE, contact_id, OutgoingDraft(subject="x", text="x"), key())
    assert sent(user) == []


def test_a_reply_to_a_message_of_another_conversation_is_refused(graph: Graph, mailbox: tuple[str, GmailUser]) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    pierre = contact(graph, PIERRE)
    user.receive(message(PIERRE, [user.email], "Pierre's", "x"))
    graph.mail_sync.run(ALICE, connection_id)
    [pierres] = conversation(graph, pierre)

    for reply_to in (pierres.message_key, "m" + "0" * 64):
        with pytest.raises(Unprocessable):
            graph.mail_send.send(ALICE, marie, OutgoingDraft(text="x", in_reply_to=reply_to), key())
    assert sent(user) == []


def test_without_mail_sync_sending_is_unavailable(graph: Graph, stack) -> None:
    marie = contact(graph, MARIE)
    with pytest.raises(SendUnavailable):
        graph.mail_send.send(ALICE, marie, OutgoingDraft(subject="x", text="x"), key())


@pytest.mark.parametrize(
    "draft",
    [
        OutgoingDraft(subject="Hi\r\nBcc: spy@evil.example", text="x"),
        OutgoingDraft(subject="x" * 501, text="x"),
        OutgoingDraft(subject="Hi", text="x", to=["marie@curie.example\r\nBcc: spy@evil.example"]),
        OutgoingDraft(subject="Hi", text="x", cc=["not an address"]),
        OutgoingDraft(subject="Hi"),
        OutgoingDraft(text="no subject"),
    ],
)
def test_drafts_that_cannot_be_sent_safely_are_refused(
    graph: Graph, mailbox: tuple[str, GmailUser], draft: OutgoingDraft
) -> None:
    _, user = mailbox
    marie = contact(graph, MARIE)
    with pytest.raises(Unprocessable):
        graph.mail_send.send(ALICE, marie, draft, key())
    assert sent(user) == []
