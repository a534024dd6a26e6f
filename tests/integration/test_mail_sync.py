"""F8: two-way Gmail sync against DynamoDB Local, the S3 of the local stack and the Gmail
emulator, through the real Google adapter: backfill, history, trash and deletion marks,
expired history, messages seen through BCC logging too, new contacts' past mail, disable."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.domain.mail_records import LoggedMessage
from crmsync.domain.message import ParsedMail
from crmsync.logic.contacts import ContactInput
from crmsync.logic.mail_send import OutgoingDraft
from crmsync.mail import logbook
from crmsync.mail.parse import parse_message
from crmsync.messaging.messages import MailSyncRequest
from crmsync.sync.mail_sync import MailSyncEngine
from tests.fakes.world import RecordingQueue
from tests.support.gmail_user import GmailUser, message
from tests.support.google_consent import consent, query

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
MARIE = "marie@curie.example"
PIERRE = "pierre@curie.example"
STRANGER = "someone@elsewhere.example"


@pytest.fixture
def graph(service_env: dict[str, str]) -> Graph:
    """The production graph with the email feature on; the queue records (the test is the worker)."""
    settings = Settings.from_env(service_env)
    google = settings.google.model_copy(update={"features": ("calendar", "contacts", "email")})
    graph = Graph(settings.model_copy(update={"google": google}))
    graph.__dict__["queue"] = RecordingQueue()
    return graph


@pytest.fixture
def queue(graph: Graph) -> RecordingQueue:
    return graph.queue  # type: ignore[return-value]


@pytest.fixture
def mailbox(stack, graph: Graph, ada: str) -> tuple[str, GmailUser]:
    """Ada's Google account connected with Gmail's scopes and made her mail account."""
    integrations = graph.integrations
    start = integrations.start_connect("google", ALICE, features=["calendar", "email"])
    params = query(consent(start.authorization_url, ada, typed=True))
    connection = integrations.complete_connect(
        "google", state=params["state"], code=params["code"], error=None, binding=start.binding
    )
    graph.mail_sync_settings.complete(ALICE, connection)
    return connection.connection_id, GmailUser(stack.google.base_url, ada)


@pytest.fixture
def engine(graph: Graph) -> MailSyncEngine:
    return graph.mail_sync


def contact(graph: Graph, email: str, name: str = "Someone") -> str:
    return graph.contacts.create(ALICE, ContactInput(given_name=name, emails=[email])).contact_id


def conversation(graph: Graph, contact_id: str) -> list[LoggedMessage]:
    return graph.contacts.conversation(ALICE, contact_id, None, 100).items


def subjects(graph: Graph, contact_id: str) -> list[str]:
    return [m.subject for m in conversation(graph, contact_id)]


def test_the_backfill_logs_the_mail_of_crm_contacts_once_and_nothing_else(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], queue: RecordingQueue
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE, "Marie")
    first = user.receive(message(f"Marie <{MARIE}>", [user.email], "Radium", "Found it"))
    user.receive(message(user.email, [MARIE], "Re: Radium", "Great"), labels=["SENT"], thread_of=first)
    user.receive(message(STRANGER, [user.email], "Offer", "Buy now"))
    user.receive(message(MARIE, [user.email], "Junk", "spam"), labels=["SPAM"])
    user.receive(message(MARIE, [user.email], "Binned", "trash"), labels=["TRASH"])
    user.receive(message(user.email, [MARIE], "Draft", "not sent"), labels=["DRAFT"])
    # Enabling queued the backfill; creating Marie queued the pull of her past mail.
    assert [m.reason for m in queue.take() if isinstance(m, MailSyncRequest)] == ["enabled", "contacts"]

    outcome = engine.run(ALICE, connection_id, reason="enabled")

    assert outcome is not None
    assert (outcome.mode, outcome.logged, outcome.more) == ("backfill", 2, False)
    entries = conversation(graph, marie)
    assert sorted(m.subject for m in entries) == ["Radium", "Re: Radium"]
    assert {m.direction for m in entries} == {"inbound", "outbound"}
    assert all(m.source == "gmail" and m.gmail is not None for m in entries)
    assert len({m.gmail.thread_id for m in entries if m.gmail}) == 1  # one Gmail thread
    state = graph.mail_sync_store.get(ALICE)
    assert state.live
    assert state.history_cursor is not None
    status = graph.mail_sync_settings.status(ALICE)
    assert status.state == "live"

    # Nothing changed in Gmail: nothing logged again, nothing fetched.
    again = engine.run(ALICE, connection_id)
    assert again is not None
    assert (again.mode, again.checked, again.logged) == ("incremental", 0, 0)
    assert len(conversation(graph, marie)) == 2


def test_new_mail_trash_spam_and_deletion_reach_the_conversation_through_history(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser]
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    engine.run(ALICE, connection_id)
    hello = user.receive(message(MARIE, [user.email], "Hello", "New mail"))
    user.receive(message(STRANGER, [user.email], "Not a contact", "x"))

    outcome = engine.run(ALICE, connection_id, reason="push")
    assert outcome is not None
    assert (outcome.mode, outcome.logged) == ("incremental", 1)
    assert subjects(graph, marie) == ["Hello"]

    def state() -> str | None:
        entry = conversation(graph, marie)[0]
        return entry.gmail.state if entry.gmail else None

    user.label(hello, add=["TRASH"], remove=["INBOX"])
    engine.run(ALICE, connection_id)
    assert state() == "trashed"  # kept in the CRM, marked
    user.label(hello, add=["INBOX"], remove=["TRASH"])
    engine.run(ALICE, connection_id)
    assert state() == "live"
    user.label(hello, add=["SPAM"])
    engine.run(ALICE, connection_id)
    assert state() == "spam"
    user.delete(hello)
    engine.run(ALICE, connection_id)
    assert state() == "deleted"
    assert subjects(graph, marie) == ["Hello"]


def test_spam_reported_on_a_message_in_the_trash_leaves_it_marked_trashed(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser]
) -> None:
    """``messages.trash`` keeps a message's other labels, so a message trashed in one run
    and reported as spam in the next holds TRASH and SPAM, and its state is ``trashed``
    (TRASH first, :func:`crmsync.ports.mail.state_in_mailbox`). The history of the second
    run says only "SPAM added": the sync must not take that for the message's state (the
    mail convergence machine found it marked ``spam``)."""
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    engine.run(ALICE, connection_id)
    talk = user.receive(message(MARIE, [user.email], "Talk", "x"))
    engine.run(ALICE, connection_id)
    user.label(talk, add=["TRASH"])
    engine.run(ALICE, connection_id)
    user.label(talk, add=["SPAM"], remove=["INBOX"])
    engine.run(ALICE, connection_id)
    entry = conversation(graph, marie)[0]
    assert entry.gmail is not None
    assert entry.gmail.state == "trashed"
    user.label(talk, remove=["TRASH"])  # out of the trash, still spam
    engine.run(ALICE, connection_id)
    entry = conversation(graph, marie)[0]
    assert entry.gmail is not None
    assert entry.gmail.state == "spam"


def test_a_message_trashed_before_the_sync_saw_it_is_logged_only_once_it_is_restored(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser]
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    engine.run(ALICE, connection_id)
    hello = user.receive(message(MARIE, [user.email], "Oops", "x"))
    user.label(hello, add=["TRASH"], remove=["INBOX"])
    engine.run(ALICE, connection_id)
    assert subjects(graph, marie) == []
    user.label(hello, add=["INBOX"], remove=["TRASH"])
    engine.run(ALICE, connection_id)
    assert subjects(graph, marie) == ["Oops"]


def test_expired_history_backfills_the_window_again_without_duplicates(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], queue: RecordingQueue
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    user.receive(message(MARIE, [user.email], "One", "1"))
    engine.run(ALICE, connection_id)
    user.receive(message(MARIE, [user.email], "Two", "2"))
    user.expire_history()
    queue.take()

    outcome = engine.run(ALICE, connection_id, reason="push")

    assert outcome is not None
    assert (outcome.mode, outcome.more) == ("backfill", True)
    assert [m.reason for m in queue.take() if isinstance(m, MailSyncRequest)] == ["backfill"]
    assert graph.mail_sync_settings.status(ALICE).state == "backfilling"
    engine.run(ALICE, connection_id, reason="backfill")
    assert sorted(subjects(graph, marie)) == ["One", "Two"]
    assert graph.mail_sync_store.get(ALICE).live


def test_a_long_backfill_runs_in_steps_and_mail_arriving_meanwhile_is_not_lost(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], queue: RecordingQueue
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    for i in range(5):
        user.receive(message(MARIE, [user.email], f"Old {i}", "x"))
    engine.page_size = 2
    engine.budget = timedelta(0)  # one page per step
    queue.take()

    steps = 0
    reason = "enabled"
    while True:
        outcome = engine.run(ALICE, connection_id, reason=reason)
        assert outcome is not None
        steps += 1
        if steps == 1:
            user.receive(message(MARIE, [user.email], "During the backfill", "x"))
            progress = graph.mail_sync_settings.status(ALICE)
            assert progress.state == "backfilling"
            assert progress.backfill is not None
            assert progress.backfill.checked == 2
        if not outcome.more:
            break
        assert [m.reason for m in queue.take() if isinstance(m, MailSyncRequest)] == ["backfill"]
        reason = "backfill"
    assert steps == 3
    assert len(subjects(graph, marie)) == 5
    engine.run(ALICE, connection_id, reason="push")
    assert sorted(subjects(graph, marie)) == sorted(["During the backfill", *(f"Old {i}" for i in range(5))])


def test_a_message_logged_by_bcc_is_recognised_not_logged_again(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser]
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    engine.run(ALICE, connection_id)
    sent = message(user.email, [MARIE], "Proposal", "Attached", message_id="<proposal-1@example.com>")
    # Logged first as BCC logging logs it (the same Message-ID), then seen in Gmail's Sent.
    parsed = parse_message(bytes(sent))
    assert isinstance(parsed, ParsedMail)
    digest = logbook.content_digest(parsed)
    key = logbook.message_keys(parsed, digest)[0]
    parts = logbook.store_parts(graph.mail_bucket, ALICE, key, digest, parsed)
    assert parsed.date is not None
    record = logbook.record(
        parsed,
        key=key,
        digest=digest,
        direction="outbound",
        parts=parts,
        contact_ids=(marie,),
        notes=(),
        date=parsed.date,
        to=parsed.to,
        cc=(),
    )
    assert graph.mail_log.commit(ALICE, record)
    user.receive(sent, labels=["SENT"])

    outcome = engine.run(ALICE, connection_id)

    assert outcome is not None
    assert (outcome.logged, outcome.recognised) == (0, 1)
    entries = conversation(graph, marie)
    assert len(entries) == 1
    assert entries[0].source == "bcc"
    assert entries[0].gmail is not None  # now known as the Gmail message: trash marks apply


def test_new_contacts_pull_their_past_mail(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], queue: RecordingQueue
) -> None:
    connection_id, user = mailbox
    user.receive(message(PIERRE, [user.email], "Before he was a contact", "x"))
    user.receive(message(user.email, [PIERRE], "Sent to him", "y"), labels=["SENT"])
    user.receive(message(STRANGER, [user.email], "Unrelated", "z"))
    engine.run(ALICE, connection_id)
    queue.take()
    pierre = contact(graph, PIERRE)
    assert subjects(graph, pierre) == []
    # Creating the contact asked for its past mail.
    (pull,) = [m for m in queue.take() if isinstance(m, MailSyncRequest)]
    assert (pull.reason, pull.emails, pull.connection_id) == ("contacts", (PIERRE,), connection_id)

    outcome = engine.run(ALICE, connection_id, reason=pull.reason, emails=pull.emails)

    assert outcome is not None
    assert (outcome.mode, outcome.logged) == ("contacts", 2)
    assert sorted(subjects(graph, pierre)) == ["Before he was a contact", "Sent to him"]


def test_disable_forgets_synced_only_mail_and_keeps_bcc_logged_mail(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], queue: RecordingQueue
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    user.receive(message(MARIE, [user.email], "Synced", "x", attachment=("a.pdf", b"%PDF-1.4 x")))
    engine.run(ALICE, connection_id)
    assert subjects(graph, marie) == ["Synced"]
    queue.take()

    graph.mail_sync_settings.disable(ALICE)

    assert graph.mail_sync_settings.status(ALICE).state == "off"
    forget = [m for m in queue.take() if isinstance(m, MailSyncRequest)]
    assert [m.reason for m in forget] == ["forget"]
    assert engine.run(ALICE, connection_id) is None  # no longer synced
    assert engine.forget(ALICE, connection_id) == 1
    assert subjects(graph, marie) == []
    assert graph.mailbox_directory.owners(user.email) == []


def test_never_log_addresses_and_domains_are_never_brought_in(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser]
) -> None:
    connection_id, user = mailbox
    marie, pierre = contact(graph, MARIE), contact(graph, PIERRE)
    colleague = contact(graph, "bob@colleagues.example")
    graph.never_log_settings.add(ALICE, PIERRE)
    graph.never_log_settings.add(ALICE, "colleagues.example")
    user.receive(message(PIERRE, [user.email], "Personal", "x"))
    user.receive(message(PIERRE, [user.email], "Shared", "y", cc=[MARIE]))
    user.receive(message("bob@colleagues.example", [user.email], "Internal", "z"))

    engine.run(ALICE, connection_id)

    assert subjects(graph, pierre) == []
    assert subjects(graph, colleague) == []
    # A message with other contacts is logged for them only.
    assert subjects(graph, marie) == ["Shared"]


def test_a_revoked_grant_marks_the_connection_for_reauthorization_instead_of_retrying(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], google: Any
) -> None:
    connection_id, user = mailbox
    engine.run(ALICE, connection_id)
    google.revoke_grant(user.email)

    assert engine.run(ALICE, connection_id) is None  # not raised: a retry cannot help

    assert graph.mail_sync_settings.status(ALICE).state == "needs_reauthorization"


def test_mail_a_new_contact_pulls_before_the_first_backfill_is_marked_when_deleted(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], queue: RecordingQueue
) -> None:
    """Regression (found by the convergence machine): a pull that ran before the mailbox's
    first backfill logged mail whose later deletion no history ever showed."""
    connection_id, user = mailbox
    hello = user.receive(message(MARIE, [user.email], "Hello", "x"))
    contact(graph, MARIE)
    (pull,) = [m for m in queue.take() if isinstance(m, MailSyncRequest) and m.reason == "contacts"]
    engine.run(ALICE, connection_id, reason=pull.reason, emails=pull.emails)  # before "enabled" ran
    user.delete(hello)

    engine.run(ALICE, connection_id, reason="enabled")
    engine.run(ALICE, connection_id)

    (entry,) = conversation(graph, graph.contact_store.owners(ALICE, [MARIE])[MARIE])
    assert entry.gmail is not None
    assert entry.gmail.state == "deleted"


def test_expired_history_reads_again_what_became_of_the_logged_messages(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser]
) -> None:
    """Regression (found by the convergence machine): changes made while Gmail's history
    expired never reached the messages logged before the gap."""
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    binned = user.receive(message(MARIE, [user.email], "Binned", "1"))
    gone = user.receive(message(MARIE, [user.email], "Gone", "2"))
    back = user.receive(message(MARIE, [user.email], "Back", "3"))
    engine.run(ALICE, connection_id)
    user.label(back, add=["TRASH"])
    engine.run(ALICE, connection_id)
    # Everything changes, then Gmail's history of it is gone.
    user.label(binned, add=["TRASH"])
    user.delete(gone)
    user.label(back, remove=["TRASH"])
    user.expire_history()

    engine.run(ALICE, connection_id, reason="push")  # 404: the backfill starts over
    engine.run(ALICE, connection_id, reason="backfill")

    states = {m.subject: m.gmail.state if m.gmail else None for m in conversation(graph, marie)}
    assert states == {"Binned": "trashed", "Gone": "deleted", "Back": "live"}
    assert graph.mail_sync_store.get(ALICE).live


def test_a_new_contact_gets_mail_already_logged_for_another_contact(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser], queue: RecordingQueue
) -> None:
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    user.receive(message(MARIE, [user.email], "Both of us", "x", cc=[PIERRE]))
    engine.run(ALICE, connection_id)
    assert subjects(graph, marie) == ["Both of us"]
    queue.take()
    pierre = contact(graph, PIERRE)
    (pull,) = [m for m in queue.take() if isinstance(m, MailSyncRequest)]

    engine.run(ALICE, connection_id, reason=pull.reason, emails=pull.emails)

    assert subjects(graph, pierre) == ["Both of us"]
    assert subjects(graph, marie) == ["Both of us"]


def test_a_crm_send_before_the_first_backfill_is_marked_when_deleted_in_gmail(
    graph: Graph, engine: MailSyncEngine, mailbox: tuple[str, GmailUser]
) -> None:
    """Regression (found by the convergence machine with CRM sends): a message sent from the
    CRM right after enabling, before the worker ran the first backfill, then deleted in Gmail
    stayed live: no history from the backfill's later cursor says so."""
    connection_id, user = mailbox
    marie = contact(graph, MARIE)
    sent = graph.mail_send.send(ALICE, marie, OutgoingDraft(subject="Early", text="x"), uuid.uuid4().hex)
    assert sent.message.gmail is not None
    user.delete(sent.message.gmail.message_id)

    engine.run(ALICE, connection_id, reason="enabled")

    (entry,) = conversation(graph, marie)
    assert entry.gmail is not None
    assert entry.gmail.state == "deleted"
