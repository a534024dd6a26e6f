"""The mail port's contract, run over both of its implementations: the Google adapter
(GoogleMail against the Gmail emulator, through google-api-python-client) and FakeMail.

Each test gets a fresh mailbox and acts on it as its user and correspondents would: through
the emulator's control API, or FakeMail's controls.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any, Protocol

import pytest
import requests

from crmsync.config import GoogleSettings
from crmsync.errors import InvalidRequest
from crmsync.ports.errors import CursorInvalid, ProviderNotFound, RateLimited
from crmsync.ports.mail import ChangeKind, MailChange, MailPort, MessageRef, OutgoingMessage
from crmsync.providers.google.gmail import GoogleMail, QuotaPacer
from devstack.google import GoogleEmulator
from tests.fakes.mail import FakeMail
from tests.support import clock

pytestmark = pytest.mark.integration

MAIL_SCOPE = "https://mail.google.com/"
CLIENT_ID, CLIENT_SECRET = "crmsync-mail-contract", "mail-contract-secret"  # the emulator's


class Box(Protocol):
    """A mailbox: the port over it, and the hands of its user and correspondents."""

    port: MailPort
    email: str

    def deliver(self, *, subject: str = ..., labels: Sequence[str] | None = ..., reply_to: str | None = ...) -> str: ...
    def label(self, message_id: str, add: Sequence[str] = ..., remove: Sequence[str] = ...) -> None: ...
    def delete(self, message_id: str) -> None: ...
    def trash(self, message_id: str) -> None: ...
    def untrash(self, message_id: str) -> None: ...
    def draft(self, *, subject: str = ...) -> str: ...
    def expire_history(self) -> None: ...
    def new_topic(self) -> str: ...


class GoogleBox:
    def __init__(self, emulator: GoogleEmulator, **adapter: Any) -> None:
        self.base = emulator.base_url
        self.email = f"mail-{uuid.uuid4().hex[:10]}@example.com"
        account = emulator.add_account(self.email)
        refresh = emulator.state.issue_refresh_token(account["sub"], CLIENT_ID, (MAIL_SCOPE,))
        settings = GoogleSettings(
            client_id=CLIENT_ID,
            client_secret_arn="arn:aws:secretsmanager:us-east-1:000000000000:secret:unused",
            token_uri=emulator.endpoints["token_uri"],
            api_root=emulator.base_url,
        )
        self.port: MailPort = GoogleMail(settings, refresh.value, lambda: CLIENT_SECRET, **adapter)

    def _control(self, path: str, **body: Any) -> dict[str, Any]:
        answer = requests.post(f"{self.base}/_emulator/gmail/{path}", json={"email": self.email, **body}, timeout=10)
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    def deliver(
        self, *, subject: str = "Hello", labels: Sequence[str] | None = None, reply_to: str | None = None
    ) -> str:
        fields: dict[str, Any] = {"from": "Marie Curie <marie@curie.example>", "subject": subject, "text": "Hi"}
        if labels is not None:
            fields["labelIds"] = list(labels)
        if reply_to is not None:
            fields["threadOf"] = reply_to
        return str(self._control("messages", **fields)["id"])

    def label(self, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        self._control(f"messages/{message_id}/labels", add=list(add), remove=list(remove))

    def delete(self, message_id: str) -> None:
        self._control(f"messages/{message_id}/delete")

    def trash(self, message_id: str) -> None:
        self._control(f"messages/{message_id}/trash")

    def untrash(self, message_id: str) -> None:
        self._control(f"messages/{message_id}/untrash")

    def draft(self, *, subject: str = "Draft") -> str:
        return str(self._control("drafts", subject=subject)["id"])

    def expire_history(self) -> None:
        self._control("expire-history")

    def new_topic(self) -> str:
        topic = f"projects/crmsync-dev/topics/gmail-{uuid.uuid4().hex[:8]}"
        # The pushes themselves are not this suite's business: they go to a path that 404s.
        answer = requests.post(
            f"{self.base}/_emulator/gmail/subscriptions",
            json={"topicName": topic, "pushEndpoint": f"{self.base}/_emulator/nowhere"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        return topic


class FakeBox:
    def __init__(self) -> None:
        self.email = f"mail-{uuid.uuid4().hex[:10]}@example.com"
        self.fake = FakeMail(self.email, now=clock.now())
        self.port: MailPort = self.fake

    def deliver(
        self, *, subject: str = "Hello", labels: Sequence[str] | None = None, reply_to: str | None = None
    ) -> str:
        extra: dict[str, Any] = {} if labels is None else {"labels": labels}
        return self.fake.deliver(subject=subject, in_reply_to=reply_to, **extra).message_id

    def label(self, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        self.fake.label(message_id, add, remove)

    def delete(self, message_id: str) -> None:
        self.fake.delete(message_id)

    def trash(self, message_id: str) -> None:
        self.fake.label(message_id, add=["TRASH"])  # Gmail's trash: TRASH added, the rest kept

    def untrash(self, message_id: str) -> None:
        self.fake.label(message_id, remove=["TRASH"])

    def draft(self, *, subject: str = "Draft") -> str:
        return self.fake.deliver(subject=subject, labels=["DRAFT"]).message_id

    def expire_history(self) -> None:
        self.fake.expire_history()

    def new_topic(self) -> str:
        return self.fake.create_topic(f"projects/crmsync-dev/topics/gmail-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def mail_emulator(google_emulator: GoogleEmulator) -> GoogleEmulator:
    google_emulator.register_client(CLIENT_ID, CLIENT_SECRET, ["http://127.0.0.1:9/callback"])
    return google_emulator


@pytest.fixture(params=["google", "fake"])
def box(request: pytest.FixtureRequest) -> Iterator[Box]:
    if request.param == "google":
        yield GoogleBox(request.getfixturevalue("mail_emulator"))
    else:
        yield FakeBox()


def window() -> dict[str, Any]:
    return {"since": clock.now() - timedelta(days=1)}


def listed(port: MailPort, **kwargs: Any) -> list[MessageRef]:
    refs: list[MessageRef] = []
    page: str | None = None
    while True:
        answer = port.list_messages(**window(), page=page, **kwargs)
        refs += answer.messages
        page = answer.next_page
        if page is None:
            return refs


def reply_to(original: bytes, subject: str) -> bytes:
    parent = BytesParser(policy=default_policy).parsebytes(original)
    message = EmailMessage()
    message["To"] = str(parent["From"])
    message["Subject"] = subject
    message["In-Reply-To"] = str(parent["Message-ID"])
    message["References"] = str(parent["Message-ID"])
    message.set_content("Thanks!")
    return message.as_bytes(policy=default_policy.clone(linesep="\r\n"))


# ---------------------------------------------------------------------- profile and listing


def test_profile_gives_the_mailbox_and_a_cursor(box: Box) -> None:
    profile = box.port.profile()

    assert profile.email == box.email
    assert profile.history_cursor
    box.deliver()
    assert box.port.profile().history_cursor != profile.history_cursor


def test_a_delivered_message_is_listed_and_read_raw(box: Box) -> None:
    message_id = box.deliver(subject="Quarterly numbers")

    refs = listed(box.port)
    [message] = box.port.get_messages([message_id])

    assert [r.message_id for r in refs] == [message_id]
    assert message.ref == refs[0]
    assert "INBOX" in message.label_ids
    assert b"Subject: Quarterly numbers" in message.raw
    assert BytesParser(policy=default_policy).parsebytes(message.raw)["From"].addresses[0].username == "marie"
    assert abs(message.internal_date - clock.now()) < timedelta(minutes=5)


def test_listing_pages_newest_first_and_hides_spam_trash_and_drafts(box: Box) -> None:
    first, second = box.deliver(subject="one"), box.deliver(subject="two")
    box.deliver(labels=["SPAM"])
    box.deliver(labels=["DRAFT"])
    box.label(box.deliver(subject="binned"), add=["TRASH"], remove=["INBOX"])

    page = box.port.list_messages(**window(), page_size=1)
    refs = listed(box.port, page_size=1)

    assert len(page.messages) == 1
    assert page.next_page is not None
    assert {r.message_id for r in refs} == {first, second}
    assert len(refs) == 2


def test_listing_outside_the_window_finds_nothing(box: Box) -> None:
    box.deliver()

    later = box.port.list_messages(since=clock.now() + timedelta(hours=1))
    earlier = box.port.list_messages(since=clock.now() - timedelta(days=2), until=clock.now() - timedelta(days=1))

    assert later.messages == []
    assert earlier.messages == []


def test_get_leaves_out_a_message_deleted_meanwhile(box: Box) -> None:
    kept, gone = box.deliver(), box.deliver()
    box.delete(gone)

    assert [m.message_id for m in box.port.get_messages([gone, kept])] == [kept]


# ---------------------------------------------------------------------- changes


def test_changes_since_a_cursor_show_an_addition_then_a_label_change_then_a_deletion(box: Box) -> None:
    cursor = box.port.profile().history_cursor
    message_id = box.deliver()
    box.label(message_id, add=["STARRED"], remove=["UNREAD"])
    box.delete(message_id)

    page = box.port.changes_since(cursor)

    ref = page.changes[0].message
    assert ref.message_id == message_id
    assert page.changes == [
        MailChange(ChangeKind.ADDED, ref, page.changes[0].label_ids),
        MailChange(ChangeKind.LABELS_ADDED, ref, ("STARRED",)),
        MailChange(ChangeKind.LABELS_REMOVED, ref, ("UNREAD",)),
        MailChange(ChangeKind.DELETED, ref),
    ]
    assert "INBOX" in page.changes[0].label_ids
    assert page.cursor == box.port.profile().history_cursor


def test_changes_since_the_latest_cursor_are_none(box: Box) -> None:
    box.deliver()
    cursor = box.port.profile().history_cursor

    page = box.port.changes_since(cursor)

    assert page.changes == []
    assert page.cursor == cursor


def test_an_expired_cursor_is_cursor_invalid(box: Box) -> None:
    cursor = box.port.profile().history_cursor
    box.deliver()
    box.expire_history()

    with pytest.raises(CursorInvalid):
        box.port.changes_since(cursor)
    assert box.port.changes_since(box.port.profile().history_cursor).changes == []


# ---------------------------------------------------------------------- send


def test_a_reply_sent_in_a_thread_lands_in_that_thread(box: Box) -> None:
    original_id = box.deliver(subject="Project kickoff")
    [original] = box.port.get_messages([original_id])
    cursor = box.port.profile().history_cursor

    sent = box.port.send(OutgoingMessage(reply_to(original.raw, "Re: Project kickoff"), original.thread_id))

    assert sent.thread_id == original.thread_id
    [stored] = box.port.get_messages([sent.message_id])
    assert "SENT" in stored.label_ids
    assert [(c.kind, c.message) for c in box.port.changes_since(cursor).changes] == [(ChangeKind.ADDED, sent)]


def test_a_reply_with_another_subject_starts_a_new_thread(box: Box) -> None:
    """Gmail's rule: the thread id and the references are not enough, the subjects match."""
    [original] = box.port.get_messages([box.deliver(subject="Project kickoff")])

    sent = box.port.send(OutgoingMessage(reply_to(original.raw, "Something else"), original.thread_id))

    assert sent.thread_id != original.thread_id


def test_a_reply_in_a_thread_without_references_is_refused_before_sending() -> None:
    message = EmailMessage()
    message["To"] = "marie@curie.example"
    message["Subject"] = "Re: Project kickoff"
    message.set_content("Thanks!")

    with pytest.raises(InvalidRequest):
        OutgoingMessage(message.as_bytes(), "18c0000000000001")
    with pytest.raises(InvalidRequest):
        OutgoingMessage(b"  ")


def test_find_sent_finds_a_sent_message_by_its_message_id_even_in_the_trash(box: Box) -> None:
    message = EmailMessage()
    message["To"] = "marie@curie.example"
    message["Subject"] = "Samples"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@crm.example>"
    message.set_content("Here they are")
    message_id = str(message["Message-ID"]).strip("<>")
    since = clock.now() - timedelta(hours=1)
    assert box.port.find_sent(message_id, since=since) is None

    sent = box.port.send(OutgoingMessage(message.as_bytes(policy=default_policy.clone(linesep="\r\n"))))
    assert box.port.find_sent(message_id, since=since) == sent
    box.trash(sent.message_id)

    assert box.port.find_sent(message_id, since=since) == sent
    assert box.port.find_sent(f"other-{message_id}", since=since) is None
    box.delete(sent.message_id)
    assert box.port.find_sent(message_id, since=since) is None


def test_find_sent_ignores_received_mail_with_that_message_id(box: Box) -> None:
    [received] = box.port.get_messages([box.deliver()])
    parsed = BytesParser(policy=default_policy).parsebytes(received.raw)

    assert box.port.find_sent(str(parsed["Message-ID"]).strip("<>"), since=clock.now() - timedelta(hours=1)) is None


# ---------------------------------------------------------------------- watch


def test_watch_returns_a_future_expiry_and_the_cursor(box: Box) -> None:
    box.deliver()

    watch = box.port.watch(box.new_topic(), label_ids=["INBOX"])

    assert watch.expires_at > clock.now() + timedelta(days=6)
    assert watch.cursor == box.port.profile().history_cursor
    box.port.stop()


def test_watch_on_an_unknown_topic_is_not_found(box: Box) -> None:
    with pytest.raises(ProviderNotFound):
        box.port.watch(f"projects/crmsync-dev/topics/missing-{uuid.uuid4().hex[:8]}")


# ---------------------------------------------------------------------- trash and drafts


def test_a_trashed_message_is_not_listed_and_shows_as_trash_added(box: Box) -> None:
    kept, binned = box.deliver(subject="kept"), box.deliver(subject="binned")
    cursor = box.port.profile().history_cursor

    box.trash(binned)

    assert [r.message_id for r in listed(box.port)] == [kept]
    [change] = box.port.changes_since(cursor).changes
    assert (change.kind, change.message.message_id, change.label_ids) == (ChangeKind.LABELS_ADDED, binned, ("TRASH",))


def test_an_untrashed_message_shows_as_trash_removed_and_is_listed_again(box: Box) -> None:
    message_id = box.deliver()
    box.trash(message_id)
    cursor = box.port.profile().history_cursor

    box.untrash(message_id)

    assert [r.message_id for r in listed(box.port)] == [message_id]
    [change] = box.port.changes_since(cursor).changes
    assert (change.kind, change.message.message_id, change.label_ids) == (
        ChangeKind.LABELS_REMOVED,
        message_id,
        ("TRASH",),
    )


def test_a_draft_is_not_listed_and_appears_in_changes_with_the_draft_label(box: Box) -> None:
    cursor = box.port.profile().history_cursor

    draft = box.draft(subject="Not yet")

    assert listed(box.port) == []
    [change] = box.port.changes_since(cursor).changes
    assert (change.kind, change.message.message_id) == (ChangeKind.ADDED, draft)
    assert "DRAFT" in change.label_ids


# ---------------------------------------------------------------------- Gmail's per-user quota (adapter only)
# FakeMail has no quota to exceed: these cases are about GoogleMail against the emulator's
# per-user rate limit (250 units/s), on a frozen emulator clock the adapter's pauses move.


@pytest.fixture
def frozen(mail_emulator: GoogleEmulator) -> Iterator[GoogleEmulator]:
    mail_emulator.freeze_clock()
    try:
        yield mail_emulator
    finally:
        mail_emulator.freeze_clock(False)


def quota(emulator: GoogleEmulator, email: str, **body: Any) -> dict[str, Any]:
    base = f"{emulator.base_url}/_emulator/gmail/quota"
    if body:
        requests.post(base, json={"email": email, **body}, timeout=10).raise_for_status()
    return dict(requests.get(base, params={"email": email}, timeout=10).json())


def test_get_messages_under_quota_pressure_returns_every_message(frozen: GoogleEmulator) -> None:
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        frozen.advance_clock(seconds)

    box = GoogleBox(frozen, pause=pause, jitter=lambda: 0.5)
    ids = [box.deliver(subject=f"m{n}") for n in range(120)]
    quota(frozen, box.email, enabled=True)

    messages = box.port.get_messages(ids)

    assert [m.message_id for m in messages] == ids
    assert quota(frozen, box.email)["refused"] > 0  # the quota was met, and the retries got past it
    assert pauses


def test_get_messages_paced_to_the_quota_meets_no_refusal(frozen: GoogleEmulator) -> None:
    pacer = QuotaPacer(clock=frozen.state.now, pause=frozen.advance_clock)
    box = GoogleBox(frozen, pacer=pacer, pause=lambda seconds: pytest.fail("no retry expected"))
    ids = [box.deliver(subject=f"m{n}") for n in range(150)]
    quota(frozen, box.email, enabled=True)
    started = frozen.state.now()

    messages = box.port.get_messages(ids)

    assert [m.message_id for m in messages] == ids
    assert quota(frozen, box.email)["refused"] == 0
    assert frozen.state.now() - started < 4  # 150 gets = 750 units: about three seconds of budget


def test_get_messages_retries_parts_failed_with_a_server_error(mail_emulator: GoogleEmulator) -> None:
    box = GoogleBox(mail_emulator, pause=lambda seconds: None)
    ids = [box.deliver(subject=f"m{n}") for n in range(5)]
    fault = {"kind": "backend_500", "method": "gmail.users.messages.get", "email": box.email, "count": 3}
    requests.post(f"{box.base}/_emulator/faults", json=fault, timeout=10).raise_for_status()

    assert [m.message_id for m in box.port.get_messages(ids)] == ids


def test_get_messages_gives_up_after_bounded_attempts_as_rate_limited(frozen: GoogleEmulator) -> None:
    pauses: list[float] = []
    box = GoogleBox(frozen, pause=pauses.append, max_attempts=4, jitter=lambda: 1.0)
    message_id = box.deliver()
    quota(frozen, box.email, enabled=True, units_per_second=4)  # messages.get costs 5: never fits

    with pytest.raises(RateLimited):
        box.port.get_messages([message_id])
    assert pauses == [1.0, 2.0, 4.0]
