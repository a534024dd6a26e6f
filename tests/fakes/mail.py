"""FakeMail: the mail port in memory, behaving as Gmail does where the port relies on it
(history with gaps and expiry, Gmail's threading rule on send, spam/trash/drafts hidden from
listings), with controls to act as the mailbox's user and correspondents."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid

from crmsync.errors import InvalidRequest
from crmsync.ports.errors import CursorInvalid, ProviderNotFound
from crmsync.ports.mail import (
    DRAFT,
    SPAM,
    TRASH,
    ChangeKind,
    ChangePage,
    MailboxProfile,
    MailChange,
    MailWatch,
    MessagePage,
    MessageRef,
    OutgoingMessage,
    RawMessage,
)

#: Gmail's documented watch lifetime.
WATCH_LIFETIME = timedelta(days=7)
INCOMING_LABELS = ("INBOX", "UNREAD")
_HIDDEN = frozenset({SPAM, TRASH, DRAFT})


def _headers(raw: bytes) -> EmailMessage:
    return BytesHeaderParser(policy=default_policy).parsebytes(raw)


def _subject(raw: bytes) -> str:
    subject = str(_headers(raw).get("Subject", "")).strip()
    while subject[:3].lower() in ("re:", "fw:") or subject[:4].lower() == "fwd:":
        subject = subject.split(":", 1)[1].strip()
    return subject


def _references(raw: bytes) -> list[str]:
    headers = _headers(raw)
    return f"{headers.get('References', '')} {headers.get('In-Reply-To', '')}".split()


@dataclass
class _Stored:
    message_id: str
    thread_id: str
    labels: list[str]
    internal_date: datetime
    raw: bytes

    def read(self) -> RawMessage:
        return RawMessage(self.message_id, self.thread_id, tuple(self.labels), self.internal_date, self.raw)


@dataclass(frozen=True)
class _Record:
    history_id: int
    change: MailChange


@dataclass
class FakeWatch:
    topic: str
    label_ids: tuple[str, ...]
    exclude: bool
    expires_at: datetime


@dataclass
class FakeMail:
    """One mailbox. ``now`` is the mailbox's clock (messages get it as their internal date
    unless given one); ``page_size`` caps every page (small to see paging)."""

    email: str = "user@example.com"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    page_size: int = 500
    topics: set[str] = field(default_factory=set)
    watching: FakeWatch | None = None
    sent: list[RawMessage] = field(default_factory=list)
    _messages: dict[str, _Stored] = field(default_factory=dict)
    _history: list[_Record] = field(default_factory=list)
    _history_id: int = 1000
    _floor: int = 1000
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(0x18C0000000000000))
    _gaps: random.Random = field(default_factory=lambda: random.Random(14))

    # ------------------------------------------------------------------ controls
    def deliver(
        self,
        raw: bytes | None = None,
        *,
        sender: str = "Marie Curie <marie@curie.example>",
        subject: str = "Hello",
        text: str = "Hello there",
        labels: Sequence[str] = INCOMING_LABELS,
        internal_date: datetime | None = None,
        in_reply_to: str | None = None,
    ) -> RawMessage:
        """Mail arrives (``raw``, or one built from the fields; ``in_reply_to``: a message id of
        this mailbox it answers). It joins a thread by Gmail's rule."""
        if raw is None:
            message = EmailMessage()
            message["From"] = sender
            message["To"] = self.email
            message["Subject"] = subject
            message["Date"] = format_datetime(internal_date or self.now)
            message["Message-ID"] = make_msgid(domain="fake.example")
            if in_reply_to is not None:
                parent = _headers(self._get(in_reply_to).raw)["Message-ID"]
                message["In-Reply-To"] = parent
                message["References"] = parent
            message.set_content(text)
            raw = message.as_bytes(policy=default_policy.clone(linesep="\r\n"))
        return self._add(raw, list(labels), self._thread_for(raw, None), internal_date or self.now).read()

    def label(self, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """The user changes a message's labels (trashing is adding TRASH)."""
        stored = self._get(message_id)
        added = [label for label in dict.fromkeys(add) if label not in stored.labels]
        removed = [label for label in dict.fromkeys(remove) if label in stored.labels and label not in added]
        stored.labels = [label for label in stored.labels if label not in removed] + added
        ref = MessageRef(stored.message_id, stored.thread_id)
        if added or removed:
            history_id = self._bump()
            if added:
                self._history.append(_Record(history_id, MailChange(ChangeKind.LABELS_ADDED, ref, tuple(added))))
            if removed:
                self._history.append(_Record(history_id, MailChange(ChangeKind.LABELS_REMOVED, ref, tuple(removed))))

    def delete(self, message_id: str) -> None:
        """The user deletes a message for good."""
        stored = self._messages.pop(self._get(message_id).message_id)
        ref = MessageRef(stored.message_id, stored.thread_id)
        self._history.append(_Record(self._bump(), MailChange(ChangeKind.DELETED, ref)))

    def expire_history(self) -> None:
        """The provider forgets its history: every older cursor is now invalid."""
        self._history.clear()
        self._floor = self._history_id

    def create_topic(self, topic: str) -> str:
        self.topics.add(topic)
        return topic

    def thread(self, thread_id: str) -> list[RawMessage]:
        return sorted(
            (m.read() for m in self._messages.values() if m.thread_id == thread_id), key=lambda m: m.internal_date
        )

    # ------------------------------------------------------------------ the port
    def profile(self) -> MailboxProfile:
        return MailboxProfile(self.email, str(self._history_id))

    def list_messages(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        query: str = "",
        page: str | None = None,
        page_size: int = 500,
    ) -> MessagePage:
        if since.tzinfo is None or (until is not None and until.tzinfo is None):
            raise InvalidRequest("The mail window needs time-zone-aware bounds.")
        if query.strip():
            raise InvalidRequest("FakeMail understands no search terms.")
        matched = sorted(
            (
                m
                for m in self._messages.values()
                if not _HIDDEN & set(m.labels)
                and m.internal_date >= since.replace(microsecond=0)
                and (until is None or m.internal_date < until)
            ),
            key=lambda m: (m.internal_date, m.message_id),
            reverse=True,
        )
        start = int(page) if page else 0
        size = max(1, min(page_size, self.page_size))
        chunk = matched[start : start + size]
        more = start + size < len(matched)
        return MessagePage([MessageRef(m.message_id, m.thread_id) for m in chunk], str(start + size) if more else None)

    def get_messages(self, message_ids: Sequence[str]) -> list[RawMessage]:
        return [self._messages[m].read() for m in dict.fromkeys(message_ids) if m in self._messages]

    def changes_since(self, cursor: str) -> ChangePage:
        if not cursor.isdigit() or int(cursor) < self._floor or int(cursor) > self._history_id:
            raise CursorInvalid("FakeMail has no history from that cursor.")
        start = int(cursor)
        return ChangePage([r.change for r in self._history if r.history_id > start], str(self._history_id))

    def send(self, message: OutgoingMessage) -> MessageRef:
        headers = _headers(message.raw)
        if not any(headers.get(name) for name in ("To", "Cc", "Bcc")):
            raise InvalidRequest("Recipient address required")
        if message.thread_id is not None and not any(m.thread_id == message.thread_id for m in self._messages.values()):
            raise ProviderNotFound("messages.send: no such thread.")
        thread = self._thread_for(message.raw, message.thread_id) if message.thread_id else None
        stored = self._add(message.raw, ["SENT"], thread, self.now)
        self.sent.append(stored.read())
        return MessageRef(stored.message_id, stored.thread_id)

    def find_sent(self, message_id: str, *, since: datetime) -> MessageRef | None:
        if since.tzinfo is None:
            raise InvalidRequest("The search needs a time-zone-aware bound.")
        for m in self._messages.values():
            header = str(_headers(m.raw).get("Message-ID", "")).strip().strip("<>")
            if "SENT" in m.labels and header == message_id and m.internal_date >= since.replace(microsecond=0):
                return MessageRef(m.message_id, m.thread_id)
        return None

    def watch(self, topic: str, *, label_ids: Sequence[str] = (), exclude: bool = False) -> MailWatch:
        if topic not in self.topics:
            raise ProviderNotFound("users.watch: no such topic.")
        self.watching = FakeWatch(topic, tuple(label_ids), exclude, self.now + WATCH_LIFETIME)
        return MailWatch(str(self._history_id), self.watching.expires_at)

    def stop(self) -> None:
        self.watching = None

    # ------------------------------------------------------------------ internals
    def _get(self, message_id: str) -> _Stored:
        stored = self._messages.get(message_id)
        if stored is None:
            raise ProviderNotFound("FakeMail: no such message.")
        return stored

    def _bump(self) -> int:
        """History ids grow, with gaps (callers must not assume they are contiguous)."""
        self._history_id += self._gaps.randint(1, 5)
        return self._history_id

    def _thread_for(self, raw: bytes, thread_id: str | None) -> str | None:
        """Gmail's rule: join a thread when References/In-Reply-To name one of its messages and
        the subjects match (Re:/Fwd: aside); with ``thread_id``, only that thread."""
        references = set(_references(raw))
        if not references:
            return None
        subject = _subject(raw)
        for candidate in sorted(self._messages.values(), key=lambda m: m.internal_date, reverse=True):
            if thread_id is not None and candidate.thread_id != thread_id:
                continue
            if _headers(candidate.raw).get("Message-ID") in references and _subject(candidate.raw) == subject:
                return candidate.thread_id
        return None

    def _add(self, raw: bytes, labels: list[str], thread_id: str | None, when: datetime) -> _Stored:
        message_id = f"{next(self._ids):x}"
        stored = _Stored(message_id, thread_id or message_id, labels, when.replace(microsecond=0), raw)
        self._messages[message_id] = stored
        change = MailChange(ChangeKind.ADDED, MessageRef(message_id, stored.thread_id), tuple(labels))
        self._history.append(_Record(self._bump(), change))
        return stored

    def __post_init__(self) -> None:
        self.now = self.now.replace(microsecond=0)
