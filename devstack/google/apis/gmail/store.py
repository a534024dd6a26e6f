"""The Gmail emulator's data: one mailbox per account, with messages, labels, threads and history.

Every change goes through :class:`GmailStore`, which bumps the mailbox ``historyId`` (by a
random step of 1–5: Google's ids "increase chronologically but are not contiguous"),
records a history record and tells its listener (the Pub/Sub emulation) about it.
All methods take ``state.lock``; callers may hold it too (it is re-entrant).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from devstack.google.apis.gmail import mime
from devstack.google.apis.gmail.quota import Quota
from devstack.google.state import Account, State

#: Bounded history: older records are forgotten, and start ids before them get 404.
MAX_HISTORY_RECORDS = 1000
#: "A historyId is typically valid for at least a week": records older than that are dropped.
HISTORY_RETENTION_SECONDS = 7 * 86400

SYSTEM_LABELS: tuple[str, ...] = (
    "CHAT",
    "SENT",
    "INBOX",
    "IMPORTANT",
    "TRASH",
    "DRAFT",
    "SPAM",
    "CATEGORY_FORUMS",
    "CATEGORY_UPDATES",
    "CATEGORY_PERSONAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_SOCIAL",
    "STARRED",
    "UNREAD",
)
# Labels Gmail hides from a label list in the UI; they still appear in labels.list.
_HIDDEN_SYSTEM = {"CHAT", "DRAFT", "CATEGORY_FORUMS", "CATEGORY_UPDATES", "CATEGORY_PERSONAL"}
#: Labels a new incoming message gets unless told otherwise.
INCOMING_LABELS = ("INBOX", "UNREAD", "CATEGORY_PERSONAL")


class GmailError(Exception):
    """A store-level failure the API layer maps to Google's error (status, message, reason)."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def not_found() -> GmailError:
    """Gmail's answer for an unknown message, thread or label id."""
    return GmailError(404, "Requested entity was not found.", "notFound")


@dataclass
class Label:
    """A system or user label."""

    id: str
    name: str
    type: str  # "system" | "user"

    def as_dict(self) -> dict[str, Any]:
        """The Label resource as labels.list returns it."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.type == "user":
            out |= {"messageListVisibility": "show", "labelListVisibility": "labelShow"}
        elif self.id not in _HIDDEN_SYSTEM:
            out |= {"messageListVisibility": "hide", "labelListVisibility": "labelShow"}
        return out


@dataclass
class StoredMessage:
    """One message of a mailbox."""

    id: str
    thread_id: str
    raw: bytes
    parsed: mime.Parsed
    label_ids: list[str]
    internal_date: int  # ms since the epoch
    history_id: int

    def ref(self) -> dict[str, str]:
        """``{id, threadId}`` as lists and history records show a message."""
        return {"id": self.id, "threadId": self.thread_id}

    def with_labels(self) -> dict[str, Any]:
        """``{id, threadId, labelIds}`` as history records show a message."""
        return {**self.ref(), "labelIds": list(self.label_ids)}

    def minimal(self) -> dict[str, Any]:
        """The ``format=minimal`` resource."""
        return {
            **self.with_labels(),
            "snippet": self.parsed.snippet,
            "sizeEstimate": len(self.raw),
            "historyId": str(self.history_id),
            "internalDate": str(self.internal_date),
        }


@dataclass
class HistoryRecord:
    """One change of one message. ``label_ids`` is the message's labels after the change."""

    id: int
    at: float  # emulator time of the change
    message: dict[str, str]
    label_ids: list[str]
    added: bool = False
    deleted: bool = False
    labels_added: list[str] = field(default_factory=list)
    labels_removed: list[str] = field(default_factory=list)

    def types(self) -> set[str]:
        """The ``historyTypes`` this record belongs to."""
        kinds = set()
        if self.added:
            kinds.add("messageAdded")
        if self.deleted:
            kinds.add("messageDeleted")
        if self.labels_added:
            kinds.add("labelAdded")
        if self.labels_removed:
            kinds.add("labelRemoved")
        return kinds

    def touches_label(self, label_id: str) -> bool:
        """Whether the record concerns a message carrying (or gaining/losing) ``label_id``."""
        return label_id in self.label_ids or label_id in self.labels_added or label_id in self.labels_removed

    def render(self, types: set[str]) -> dict[str, Any]:
        """The History resource, with only the change kinds in ``types``."""
        message = {**self.message, "labelIds": list(self.label_ids)}
        out: dict[str, Any] = {"id": str(self.id), "messages": [dict(self.message)]}
        if self.added and "messageAdded" in types:
            out["messagesAdded"] = [{"message": message}]
        if self.deleted and "messageDeleted" in types:
            out["messagesDeleted"] = [{"message": message}]
        if self.labels_added and "labelAdded" in types:
            out["labelsAdded"] = [{"message": message, "labelIds": list(self.labels_added)}]
        if self.labels_removed and "labelRemoved" in types:
            out["labelsRemoved"] = [{"message": message, "labelIds": list(self.labels_removed)}]
        return out


@dataclass
class Watch:
    """A users.watch registration."""

    topic: str
    label_ids: frozenset[str]
    behavior: str  # include | exclude
    expiration_ms: int


class Mailbox:
    """All Gmail data of one account."""

    def __init__(self, account: Account) -> None:
        self.sub = account.sub
        self.email = account.email
        self.name = account.name
        # Seeded per account: ids and history steps are deterministic for the same sequence of changes.
        self.rng = random.Random(f"gmail:{account.sub}")
        self.history_id = self.rng.randint(100_000, 999_999)
        #: history.list answers only for start ids ≥ this (older records were dropped).
        self.history_floor = self.history_id
        self.history: deque[HistoryRecord] = deque()
        self.messages: dict[str, StoredMessage] = {}
        self.labels: dict[str, Label] = {name: Label(name, name, "system") for name in SYSTEM_LABELS}
        #: Draft id → the id of its current message (a draft's message id changes on update).
        self.drafts: dict[str, str] = {}
        self.watch: Watch | None = None
        self.last_push_at: float | None = None
        self.pushes_dropped_by_rate = 0

    def message(self, message_id: str) -> StoredMessage:
        """The message ``message_id`` or a 404."""
        found = self.messages.get(message_id)
        if found is None:
            raise not_found()
        return found

    def thread(self, thread_id: str) -> list[StoredMessage]:
        """The messages of a thread, oldest first (empty if there is no such thread)."""
        found = [m for m in self.messages.values() if m.thread_id == thread_id]
        return sorted(found, key=lambda m: (m.internal_date, m.id))

    def label_by_name_or_id(self, value: str) -> Label | None:
        """Resolve a label given by id or (case-insensitive, '-' for ' ') name."""
        if value in self.labels:
            return self.labels[value]
        wanted = value.casefold().replace("-", " ")
        return next(
            (label for label in self.labels.values() if label.name.casefold().replace("-", " ") == wanted),
            None,
        )

    def draft_message(self, draft_id: str) -> StoredMessage:
        """The current message of draft ``draft_id``, or a 404."""
        message_id = self.drafts.get(draft_id)
        if message_id is None:
            raise not_found()
        return self.message(message_id)

    def new_draft_id(self) -> str:
        """A fresh draft id, shaped like Gmail's (``r`` and a number)."""
        while True:
            candidate = f"r{self.rng.getrandbits(62)}"
            if candidate not in self.drafts:
                return candidate

    def new_message_id(self, internal_date: int) -> str:
        """A fresh message id for a message dated ``internal_date`` (ms)."""
        # Gmail ids are 16 hex digits that grow with time; keep that look.
        while True:
            candidate = f"{internal_date:011x}{self.rng.getrandbits(20):05x}"[-16:]
            if candidate not in self.messages:
                return candidate


ChangeListener = Callable[[Mailbox, set[str]], None]


class GmailStore:
    """Mailboxes by account ``sub``, and every mutation of them."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.mailboxes: dict[str, Mailbox] = {}
        self.listeners: list[ChangeListener] = []
        #: The Pub/Sub emulation (``pubsub.PubSub``), attached by the service.
        self.pubsub: Any = None
        #: The per-user rate limit (off until switched on through the control API).
        self.quota = Quota()

    # ------------------------------------------------------------------ access
    def reset(self) -> None:
        """Forget every mailbox, topic and push subscription (for an emulator reset)."""
        with self.state.lock:
            self.mailboxes.clear()
            self.quota.reset()
            if self.pubsub is not None:
                self.pubsub.reset()

    def mailbox(self, account: Account) -> Mailbox:
        """The account's mailbox, created empty on first use."""
        with self.state.lock:
            box = self.mailboxes.get(account.sub)
            if box is None:
                box = self.mailboxes[account.sub] = Mailbox(account)
            return box

    def mailbox_for_email(self, email: str) -> Mailbox:
        """The mailbox of a known account; KeyError for an unknown address."""
        with self.state.lock:
            account = self.state.accounts_by_email.get(email.strip().lower())
            if account is None:
                raise KeyError(email)
            return self.mailbox(account)

    # ------------------------------------------------------------------ history
    def _record(self, box: Mailbox, record_fields: dict[str, Any], message: StoredMessage) -> HistoryRecord:
        box.history_id += box.rng.randint(1, 5)
        message.history_id = box.history_id
        record = HistoryRecord(
            id=box.history_id, at=self.state.now(), message=message.ref(), label_ids=list(message.label_ids)
        )
        for name, value in record_fields.items():
            setattr(record, name, value)
        box.history.append(record)
        self._purge(box)
        return record

    def _purge(self, box: Mailbox) -> None:
        cutoff = self.state.now() - HISTORY_RETENTION_SECONDS
        while box.history and (len(box.history) > MAX_HISTORY_RECORDS or box.history[0].at < cutoff):
            box.history_floor = box.history.popleft().id

    def _changed(self, box: Mailbox, labels: Iterable[str]) -> None:
        for listener in self.listeners:
            listener(box, set(labels))

    def expire_history(self, box: Mailbox) -> int:
        """Drop all retained history: any start id older than the current historyId now 404s."""
        with self.state.lock:
            box.history.clear()
            box.history_floor = box.history_id
            return box.history_id

    def lapse_watch(self, box: Mailbox) -> bool:
        """The watch lapses unrenewed: Gmail stops publishing without telling anyone. Whether
        there was one."""
        with self.state.lock:
            lapsed, box.watch = box.watch is not None, None
            return lapsed

    def history_since(self, box: Mailbox, start: int) -> list[HistoryRecord]:
        """Records after ``start``; GmailError 404 when ``start`` predates the retained history."""
        with self.state.lock:
            self._purge(box)
            if start < box.history_floor:
                raise GmailError(404, "Requested entity was not found.", "notFound")
            return [r for r in box.history if r.id > start]

    # ------------------------------------------------------------------ threading
    def thread_for_reply(self, box: Mailbox, parsed: mime.Parsed, thread_id: str | None) -> str | None:
        """Gmail's threading rule: a message joins a thread only if its References/In-Reply-To
        name a message of that thread and the subjects match (ignoring Re:/Fwd:).

        With ``thread_id`` (messages.send) only that thread is considered; without it
        (received mail) any referenced thread is.
        """
        if not parsed.references:
            return None
        subject = mime.normalize_subject(parsed.subject)
        for candidate in reversed(sorted(box.messages.values(), key=lambda m: (m.internal_date, m.id))):
            if thread_id is not None and candidate.thread_id != thread_id:
                continue
            if candidate.parsed.message_id in parsed.references and (
                mime.normalize_subject(candidate.parsed.subject) == subject
            ):
                return candidate.thread_id
        return None

    # ------------------------------------------------------------------ mutations
    def add_message(
        self,
        box: Mailbox,
        raw: bytes,
        label_ids: Iterable[str],
        *,
        thread_id: str | None = None,
        internal_date: int | None = None,
    ) -> StoredMessage:
        """Store a message (``thread_id`` None: a new thread) and record ``messageAdded``."""
        with self.state.lock:
            labels = list(dict.fromkeys(label_ids))
            for label in labels:
                if label not in box.labels:
                    raise GmailError(400, f"Invalid label: {label}", "invalidArgument")
            date = internal_date if internal_date is not None else int(self.state.now() * 1000)
            message_id = box.new_message_id(date)
            message = StoredMessage(
                id=message_id,
                thread_id=thread_id or message_id,
                raw=raw,
                parsed=mime.parse(raw),
                label_ids=labels,
                internal_date=date,
                history_id=box.history_id,
            )
            box.messages[message_id] = message
            self._record(box, {"added": True}, message)
            self._changed(box, labels)
            return message

    def receive(
        self, box: Mailbox, raw: bytes, label_ids: Iterable[str] | None = None, *, thread_of: str | None = None
    ) -> StoredMessage:
        """Deliver incoming mail: it joins a thread it replies to (or ``thread_of``'s thread)."""
        with self.state.lock:
            parsed = mime.parse(raw)
            thread = box.message(thread_of).thread_id if thread_of else self.thread_for_reply(box, parsed, None)
            labels = INCOMING_LABELS if label_ids is None else label_ids
            return self.add_message(box, raw, labels, thread_id=thread)

    def modify(self, box: Mailbox, message_id: str, add: Iterable[str], remove: Iterable[str]) -> StoredMessage:
        """Add/remove labels; one history record with labelsAdded/labelsRemoved (if anything changed)."""
        with self.state.lock:
            message = box.message(message_id)
            add, remove = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
            for label in [*add, *remove]:
                if label not in box.labels:
                    raise GmailError(400, f"Invalid label: {label}", "invalidArgument")
            added = [label for label in add if label not in message.label_ids]
            removed = [label for label in remove if label in message.label_ids and label not in add]
            if not added and not removed:
                return message
            message.label_ids = [label for label in message.label_ids if label not in removed] + added
            self._record(box, {"labels_added": added, "labels_removed": removed}, message)
            self._changed(box, [*message.label_ids, *removed])
            return message

    def delete(self, box: Mailbox, message_id: str) -> None:
        """Delete a message for good (not trash) and record ``messageDeleted``."""
        with self.state.lock:
            message = box.message(message_id)
            del box.messages[message_id]
            for draft_id in [d for d, m in box.drafts.items() if m == message_id]:
                del box.drafts[draft_id]
            self._record(box, {"deleted": True}, message)
            self._changed(box, message.label_ids)

    def trash(self, box: Mailbox, message_id: str) -> StoredMessage:
        """messages.trash: the message gets TRASH (one ``labelAdded`` record); its other
        labels stay, so untrash gives it back as it was."""
        return self.modify(box, message_id, ["TRASH"], [])

    def untrash(self, box: Mailbox, message_id: str) -> StoredMessage:
        """messages.untrash: TRASH is removed (one ``labelRemoved`` record)."""
        return self.modify(box, message_id, [], ["TRASH"])

    # ------------------------------------------------------------------ drafts
    def create_draft(self, box: Mailbox, raw: bytes, thread_id: str | None = None) -> tuple[str, StoredMessage]:
        """A draft: a message with only the DRAFT label (``messageAdded`` in history). With
        ``thread_id`` it joins that thread by the threading rule of messages.send."""
        with self.state.lock:
            draft_id = box.new_draft_id()
            return draft_id, self._draft_message(box, draft_id, raw, thread_id)

    def _draft_message(self, box: Mailbox, draft_id: str, raw: bytes, thread_id: str | None) -> StoredMessage:
        thread = self.thread_for_reply(box, mime.parse(raw), thread_id) if thread_id else None
        message = self.add_message(box, raw, ["DRAFT"], thread_id=thread)
        box.drafts[draft_id] = message.id
        return message

    def update_draft(self, box: Mailbox, draft_id: str, raw: bytes, thread_id: str | None = None) -> StoredMessage:
        """Replace a draft's message: the old one is deleted, a new one (a new id) added."""
        with self.state.lock:
            old = box.draft_message(draft_id)
            self.delete(box, old.id)
            return self._draft_message(box, draft_id, raw, thread_id)

    def delete_draft(self, box: Mailbox, draft_id: str) -> None:
        """Delete a draft and its message for good (``messageDeleted``)."""
        with self.state.lock:
            self.delete(box, box.draft_message(draft_id).id)

    def create_label(self, box: Mailbox, name: str) -> Label:
        """A user label (Gmail's ids look like ``Label_12``); an existing name is returned as is."""
        with self.state.lock:
            existing = box.label_by_name_or_id(name)
            if existing is not None:
                return existing
            label_id = f"Label_{sum(1 for label in box.labels.values() if label.type == 'user') + 1}"
            label = box.labels[label_id] = Label(label_id, name, "user")
            return label

    # ------------------------------------------------------------------ demo data
    def seed_demo(self, email: str) -> list[str]:
        """Fill a demo account's mailbox (idempotent: only an empty mailbox is seeded).

        Dates are relative to the emulator clock; returns the ids of the seeded messages.
        """
        with self.state.lock:
            box = self.mailbox_for_email(email)
            if box.messages:
                return []
            now = self.state.now()
            customers = self.create_label(box, "Customers")
            first = box.name.split(" ")[0]
            seeded: list[StoredMessage] = []

            def incoming(sender: str, subject: str, text: str, hours_ago: float, labels: list[str]) -> StoredMessage:
                date = now - hours_ago * 3600
                raw = mime.compose(sender=sender, to=f"{box.name} <{box.email}>", subject=subject, text=text, date=date)
                message = self.add_message(box, raw, labels, internal_date=int(date * 1000))
                seeded.append(message)
                return message

            intro = incoming(
                "Marie Curie <marie@curie.example>",
                "Pilot project proposal",
                f"Hi {first},\n\nAttached is the proposal we discussed. Can we meet next week?\n\nMarie",
                72,
                ["INBOX", "IMPORTANT", "CATEGORY_PERSONAL", customers.id],
            )
            reply_date = now - 70 * 3600
            reply = mime.compose(
                sender=f"{box.name} <{box.email}>",
                to="Marie Curie <marie@curie.example>",
                subject="Re: Pilot project proposal",
                text="Thanks Marie, Tuesday 10:00 works for me.",
                date=reply_date,
                in_reply_to=intro.parsed.message_id,
            )
            seeded.append(
                self.add_message(box, reply, ["SENT"], thread_id=intro.thread_id, internal_date=int(reply_date * 1000))
            )
            incoming(
                "Alan Turing <alan@bletchley.example>",
                "Quarterly numbers",
                "The Q3 numbers are in; revenue is up 12%. Details on Monday.",
                26,
                ["INBOX", "UNREAD", "CATEGORY_PERSONAL", customers.id],
            )
            incoming(
                "Newsletter <news@vendor.example>",
                "This week in CRM",
                "Five tips for cleaner pipelines.",
                5,
                ["INBOX", "UNREAD", "CATEGORY_PROMOTIONS"],
            )
            return [m.id for m in seeded]
