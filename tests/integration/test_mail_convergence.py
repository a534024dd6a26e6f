"""Property (issue 14): whatever arrives in, leaves or moves within the user's Gmail, whichever
contacts the CRM user creates meanwhile, however the sync's runs are delivered (pushes
duplicated, reordered or dropped; backfill steps and contact pulls in any order, repeated) and
whatever fails (Gmail's history expired, rate limits from faults or the per-user quota, server
errors, a worker stopped mid-run, a backfill stopped between pages), once the faults stop and
the sync has run until quiet, every contact's conversation is what the engine's rules
(docs/MAIL.md, "Two-way sync with Gmail") promise:

* every non-draft message involving the contact (From, To, Cc) that is live in Gmail (in the
  inbox or sent; not trash, not spam, not deleted) is there, once;
* a message that was in the contact's conversation once stays, marked with what became of it
  in Gmail (``trashed``, ``spam``, ``deleted``, or ``live`` again); one trashed, spammed or
  deleted before the sync logged it is not there;
* nothing twice (no two entries with one Gmail id or one Message-ID), no draft, and mail
  involving no contact is not logged at all;
* every message the CRM user sends from a conversation (a new one or a reply to an entry) is
  in Gmail once and in the conversation once, however its attempts went: Gmail's answer lost
  after it accepted the send, the worker stopped mid-send, faults and the quota refusing it,
  the client retrying with its Idempotency-Key before or after the sync saw the Sent copy.

Against DynamoDB Local and the Gmail emulator, through the real Google adapter."""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from crmsync.app.wiring import Graph
from crmsync.domain import Principal
from crmsync.errors import DuplicateContact, ProviderError
from crmsync.logic.contacts import ContactInput
from crmsync.logic.mail_send import MailSend, OutgoingDraft, outgoing_message_id
from crmsync.mail import logbook
from crmsync.messaging.messages import MailSyncRequest
from crmsync.sync.mail_sync import MailSyncEngine
from tests.integration.test_mail_sync import graph  # noqa: F401 - the fixture
from tests.support.access import Stops, WorkerStopped, mail_send_stopping, mail_sync_stopping
from tests.support.gmail_user import GmailUser, message
from tests.support.google_consent import consent, query
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

#: Examples per run: 15 in `make test`; more by hand when hunting (docs/TESTING.md).
EXAMPLES = int(os.environ.get("MAIL_CONVERGENCE_EXAMPLES", "15"))
#: The people the user writes with; any of them may become a CRM contact.
PEOPLE = tuple(f"p{i}@people.example" for i in range(3))
#: Someone who never becomes a contact.
STRANGER = "nobody@elsewhere.example"
WHO = st.sampled_from(PEOPLE)
CORRESPONDENT = st.sampled_from((*PEOPLE, STRANGER))
FAULTS = st.sampled_from(["rate_limit_429", "user_rate_limit_403", "backend_500", "unavailable_503"])
METHODS = st.sampled_from(
    [
        "gmail.users.history.list",
        "gmail.users.messages.get",
        "gmail.users.messages.list",
        "gmail.users.getProfile",
        "gmail.",
    ]
)
#: Ids per listed page while the machine runs (small, so a backfill has several pages).
PAGE_SIZE = 3
QUIET_AFTER = 60  # runs at most, once the faults stop


@dataclass
class Mail:
    """A Gmail message as the model knows it."""

    participants: frozenset[str]  # From, To, Cc other than the user
    message_id: str
    labels: set[str]
    draft: bool = False
    deleted: bool = False

    @property
    def live(self) -> bool:
        return not (self.draft or self.deleted or self.labels & {"TRASH", "SPAM"})

    @property
    def state(self) -> str:
        if self.deleted:
            return "deleted"
        if "TRASH" in self.labels:
            return "trashed"
        if "SPAM" in self.labels:
            return "spam"
        return "live"


@dataclass
class World:
    graph: Graph
    principal: Principal
    connection_id: str
    user: GmailUser
    engine: MailSyncEngine
    sender: MailSend
    stops: Stops
    base_url: str


@dataclass
class Send:
    """A message the CRM user sends, until the client has Gmail's answer."""

    contact_id: str
    to: str
    draft: OutgoingDraft
    key: str  # Idempotency-Key

    def message_id(self, world: World) -> str:
        return outgoing_message_id(world.principal, self.key, world.graph.settings.logging_domain)


@dataclass
class Model:
    mail: dict[str, Mail] = field(default_factory=dict)  # Gmail id → message
    contacts: dict[str, str] = field(default_factory=dict)  # email → contact id
    #: Per contact id, the Gmail ids its conversation has held (they never leave it).
    seen: dict[str, set[str]] = field(default_factory=dict)


def make_machine(new_world: Callable[[], World]) -> type[RuleBasedStateMachine]:
    class MailMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.w = new_world()
            self.model = Model()
            #: What the queue holds for the worker (SQS: retried until done, maybe twice).
            self.pending: list[MailSyncRequest] = []
            self.serial = 0
            #: Message-IDs of the messages sent from the CRM, and the sends not answered yet.
            self.crm_sent: list[str] = []
            self.sends: list[Send] = []
            self._collect()

        def _subject(self, what: str) -> str:
            self.serial += 1
            return f"{what} {self.serial}"

        def _collect(self) -> None:
            """What the product queued (enabling, contact pulls, backfill steps) joins the queue."""
            for sent in self.w.graph.queue.take():  # type: ignore[attr-defined]
                if isinstance(sent, MailSyncRequest) and sent.tenant_id == self.w.principal.tenant_id:
                    self.pending.append(sent)

        def _pick(self, pick: int, labelled: Callable[[Mail], bool]) -> str | None:
            chosen = [g for g, m in self.model.mail.items() if not m.deleted and not m.draft and labelled(m)]
            return chosen[pick % len(chosen)] if chosen else None

        @initialize(
            budget_zero=st.booleans(),
            contacts=st.lists(WHO, min_size=1, max_size=2, unique=True),
            mail=st.lists(
                st.tuples(CORRESPONDENT, st.one_of(st.none(), CORRESPONDENT), st.booleans()), min_size=1, max_size=5
            ),
        )
        def a_user_with_contacts_and_mail_enables_email_sync(
            self, budget_zero: bool, contacts: list[str], mail: list[tuple[str, str | None, bool]]
        ) -> None:
            """Enabling queued the backfill; some contacts (their pulls queued) and some mail."""
            self.w.engine.page_size = PAGE_SIZE
            self.w.engine.budget = timedelta(0) if budget_zero else timedelta(seconds=40)
            for email in contacts:
                self.a_contact_is_created(email)
            for who, cc, sent in mail:
                if sent:
                    self.the_user_sends_from_gmail(who, cc, None)
                else:
                    self.mail_arrives(who, cc, None)

        # ------------------------------------------------------------ mail in Gmail
        @rule(
            sender=CORRESPONDENT,
            cc=st.one_of(st.none(), CORRESPONDENT),
            reply_to=st.one_of(st.none(), st.integers(min_value=0)),
        )
        def mail_arrives(self, sender: str, cc: str | None, reply_to: int | None) -> None:
            """From a contact or a stranger (maybe a reply in a thread, maybe with Cc)."""
            self._deliver(sender, [self.w.user.email], cc, reply_to, ["INBOX"])

        @rule(
            to=CORRESPONDENT,
            cc=st.one_of(st.none(), CORRESPONDENT),
            reply_to=st.one_of(st.none(), st.integers(min_value=0)),
        )
        def the_user_sends_from_gmail(self, to: str, cc: str | None, reply_to: int | None) -> None:
            self._deliver(self.w.user.email, [to], cc, reply_to, ["SENT"])

        def _deliver(self, sender: str, to: list[str], cc: str | None, reply_to: int | None, labels: list[str]) -> None:
            parent = self._pick(reply_to, lambda m: True) if reply_to is not None else None
            parent_id = self.model.mail[parent].message_id if parent else None
            mail = message(
                sender,
                to,
                self._subject("Re: talk" if parent else "talk"),
                "x",
                cc=[cc] if cc else (),
                in_reply_to=parent_id,
            )
            gmail_id = self.w.user.receive(mail, labels=labels, thread_of=parent)
            people = {sender, *to, *([cc] if cc else [])} - {self.w.user.email}
            self.model.mail[gmail_id] = Mail(frozenset(people), str(mail["Message-ID"]), set(labels))

        @rule(to=CORRESPONDENT, reply_to=st.one_of(st.none(), st.integers(min_value=0)))
        def the_user_saves_a_draft(self, to: str, reply_to: int | None) -> None:
            parent = self._pick(reply_to, lambda m: True) if reply_to is not None else None
            gmail_id = self.w.user.draft(to, self._subject("draft"), thread_of=parent)
            self.model.mail[gmail_id] = Mail(frozenset({to}), "", {"DRAFT"}, draft=True)

        @rule(pick=st.integers(min_value=0))
        def the_user_trashes(self, pick: int) -> None:
            if (gid := self._pick(pick, lambda m: "TRASH" not in m.labels)) is not None:
                self.w.user.label(gid, add=["TRASH"])  # messages.trash: the other labels stay
                self.model.mail[gid].labels.add("TRASH")

        @rule(pick=st.integers(min_value=0))
        def the_user_untrashes(self, pick: int) -> None:
            if (gid := self._pick(pick, lambda m: "TRASH" in m.labels)) is not None:
                self.w.user.label(gid, remove=["TRASH"])
                self.model.mail[gid].labels.discard("TRASH")

        @rule(pick=st.integers(min_value=0))
        def the_user_reports_spam(self, pick: int) -> None:
            if (gid := self._pick(pick, lambda m: "INBOX" in m.labels and "SPAM" not in m.labels)) is not None:
                self.w.user.label(gid, add=["SPAM"], remove=["INBOX"])
                self.model.mail[gid].labels = (self.model.mail[gid].labels - {"INBOX"}) | {"SPAM"}

        @rule(pick=st.integers(min_value=0))
        def the_user_says_not_spam(self, pick: int) -> None:
            if (gid := self._pick(pick, lambda m: "SPAM" in m.labels)) is not None:
                self.w.user.label(gid, add=["INBOX"], remove=["SPAM"])
                self.model.mail[gid].labels = (self.model.mail[gid].labels - {"SPAM"}) | {"INBOX"}

        @rule(pick=st.integers(min_value=0))
        def the_user_deletes_forever(self, pick: int) -> None:
            if (gid := self._pick(pick, lambda m: True)) is not None:
                self.w.user.delete(gid)
                self.model.mail[gid].deleted = True

        # ------------------------------------------------------------ the CRM user
        @rule(email=WHO)
        def a_contact_is_created(self, email: str) -> None:
            """Through the CRM (which queues the pull of their past mail)."""
            with contextlib.suppress(DuplicateContact):
                created = self.w.graph.contacts.create(self.w.principal, ContactInput(given_name="C", emails=[email]))
                self.model.contacts[email] = created.contact_id
            self._collect()

        @rule(to=WHO, reply=st.booleans(), pick=st.integers(min_value=0), answer_lost=st.booleans())
        def the_crm_user_sends(self, to: str, reply: bool, pick: int, answer_lost: bool) -> None:
            """From the contact's conversation: a new message or a reply to one of its entries.
            Gmail's answer may be lost after it accepted the send; the client retries later."""
            if (contact_id := self.model.contacts.get(to)) is None:
                return
            parent = None
            if reply:
                entries = self._conversations()[contact_id]
                parent = entries[pick % len(entries)].message_key if entries else None
            draft = OutgoingDraft(subject=None if parent else self._subject("crm"), text="hello", in_reply_to=parent)
            send = Send(contact_id, to, draft, key=uuid.uuid4().hex)
            self.crm_sent.append(logbook.normalise_message_id(send.message_id(self.w)))
            self.sends.append(send)
            self._attempt(send, answer_lost=answer_lost)

        @rule()
        def the_client_retries_its_sends(self) -> None:
            self._send_pending()

        def _attempt(self, send: Send, *, answer_lost: bool = False) -> bool:
            self.w.stops.lose_send = answer_lost
            try:
                sent = self.w.sender.send(self.w.principal, send.contact_id, send.draft, send.key)
            except (ProviderError, WorkerStopped):
                return False
            finally:
                self.w.stops.lose_send = False
                self.w.stops.after = None
            self.sends.remove(send)
            ref = sent.message.gmail
            assert ref is not None, "a CRM send logged without its Gmail ids"
            if ref.message_id not in self.model.mail:  # else adopted from the sync already
                self.model.mail[ref.message_id] = Mail(frozenset({send.to}), f"<{sent.message.message_id}>", {"SENT"})
            self._observe()
            return True

        def _send_pending(self) -> bool:
            """The client retries every send it has no answer for; whether all went."""
            return all([self._attempt(send) for send in list(self.sends)])

        def _adopt_pending_sends(self, entries: list[Any]) -> None:
            """The sync may log Gmail's Sent copy of a send whose answer was lost before the
            client retries: the model learns its Gmail id from the entry."""
            pending = {logbook.normalise_message_id(s.message_id(self.w)): s for s in self.sends}
            for entry in entries:
                send = pending.get(entry.message_id)
                gid = entry.gmail.message_id if entry.gmail else None
                if send is not None and gid is not None and gid not in self.model.mail:
                    self.model.mail[gid] = Mail(frozenset({send.to}), f"<{entry.message_id}>", {"SENT"})

        def _no_send_twice(self) -> None:
            """Every CRM send is one message in Gmail (a retried send never sent twice), unless
            the user deleted it forever since."""
            in_gmail = Counter(
                logbook.normalise_message_id(m.get("messageIdHeader") or "") for m in self.w.user.mailbox()["messages"]
            )
            deleted = {logbook.normalise_message_id(m.message_id) for m in self.model.mail.values() if m.deleted}
            wrong = {mid: in_gmail[mid] for mid in self.crm_sent if in_gmail[mid] != (0 if mid in deleted else 1)}
            assert not wrong, f"sent from the CRM not exactly once (Message-ID: copies in Gmail): {wrong}"

        # ------------------------------------------------------------ the infrastructure
        @rule(copies=st.integers(min_value=0, max_value=2))
        def gmail_pushes(self, copies: int) -> None:
            """A Pub/Sub push reaches the worker: dropped (0), once, or duplicated."""
            for _ in range(copies):
                self.pending.append(
                    MailSyncRequest(
                        tenant_id=self.w.principal.tenant_id,
                        user_id=self.w.principal.user_id,
                        connection_id=self.w.connection_id,
                        reason="push",
                        occasion=self._subject("push"),
                    )
                )

        @rule(pick=st.integers(min_value=0), redelivered=st.booleans())
        def the_worker_takes_a_message(self, pick: int, redelivered: bool) -> None:
            """Any queued message (reordered); SQS may deliver it again, and does when it failed."""
            if not self.pending:
                return
            request = self.pending.pop(pick % len(self.pending))
            if not self._work(request) or redelivered:
                self.pending.append(request)

        @rule(order=st.integers(min_value=0, max_value=2**32 - 1))
        def the_worker_takes_everything_queued(self, order: int) -> None:
            """Every queued message once, in any order (what failed stays queued). One draw
            whatever the queue holds: how much is queued depends on the per-user quota, which
            runs on the wall clock, and Hypothesis needs the same draws when it replays."""
            taken, self.pending = self.pending, []
            random.Random(order).shuffle(taken)
            for request in taken:
                if not self._work(request):
                    self.pending.append(request)

        @rule()
        def the_schedule_syncs(self) -> None:
            self._run("scheduled")

        def _work(self, request: MailSyncRequest) -> bool:
            return self._run(request.reason, request.emails)

        def _run(self, reason: str, emails: tuple[str, ...] = ()) -> bool:
            """One worker run; False when it failed (the queue retries it)."""
            try:
                self.w.engine.run(self.w.principal, self.w.connection_id, reason=reason, emails=emails)
                return True
            except (ProviderError, WorkerStopped):
                return False
            finally:
                self.w.stops.after = None
                self._collect()
                self._observe()

        @rule(after=st.integers(min_value=0, max_value=6))
        def the_next_worker_stops_mid_run(self, after: int) -> None:
            self.w.stops.after = after

        @rule(zero=st.booleans())
        def the_run_budget(self, zero: bool) -> None:
            """0: a backfill stops after every page (and queues its next step)."""
            self.w.engine.budget = timedelta(0) if zero else timedelta(seconds=40)

        @rule(kind=FAULTS, method=METHODS, count=st.integers(min_value=1, max_value=3))
        def gmail_fails(self, kind: str, method: str, count: int) -> None:
            requests.post(
                f"{self.w.base_url}/_emulator/faults",
                json={"kind": kind, "method": method, "email": self.w.user.email, "count": count},
                timeout=10,
            ).raise_for_status()

        @rule(units=st.one_of(st.none(), st.integers(min_value=5, max_value=20)))
        def gmail_quota(self, units: int | None) -> None:
            """Gmail's per-user rate limit, tight (a few calls a second: 403 past it) or off."""
            self.w.user.quota(units)

        @rule()
        def gmail_history_expires(self) -> None:
            self.w.user.expire_history()

        # ------------------------------------------------------------ the promise
        def _conversations(self) -> dict[str, list[Any]]:
            found = {
                cid: self.w.graph.contacts.conversation(self.w.principal, cid, None, 500).items
                for cid in self.model.contacts.values()
            }
            for entries in found.values():
                self._adopt_pending_sends(entries)
            return found

        def _observe(self) -> None:
            for cid, entries in self._conversations().items():
                self.model.seen.setdefault(cid, set()).update(e.gmail.message_id for e in entries if e.gmail)

        @invariant()
        def nothing_twice_and_nothing_leaves(self) -> None:
            self._check(final=False)

        def _check(self, *, final: bool) -> None:
            by_email = {cid: email for email, cid in self.model.contacts.items()}
            for cid, entries in self._conversations().items():
                email = by_email[cid]
                gids = [e.gmail.message_id if e.gmail else None for e in entries]
                assert None not in gids, "an entry that is no Gmail message"
                assert len(gids) == len(set(gids)), f"{email}: one Gmail message twice"
                ids = [e.message_id for e in entries]
                assert len(ids) == len(set(ids)), f"{email}: one Message-ID twice"
                held = set(gids)
                gone = self.model.seen.get(cid, set()) - held
                assert not gone, f"{email}: {sorted(gone)} left the conversation"
                for entry in entries:
                    assert entry.gmail is not None
                    mail = self.model.mail.get(entry.gmail.message_id)
                    assert mail is not None, f"{email}: a message the user never had logged"
                    assert not mail.draft, f"{email}: a draft logged"
                    assert email in mail.participants, f"{email}: a message not involving them"
                if not final:
                    continue
                for entry in entries:
                    assert entry.gmail is not None
                    mail = self.model.mail[entry.gmail.message_id]
                    assert entry.gmail.state == mail.state, (
                        f"{email}: {entry.subject} is {entry.gmail.state} in the CRM, {mail.state} in Gmail"
                    )
                live = {g for g, m in self.model.mail.items() if m.live and email in m.participants}
                missing = live - held
                assert not missing, f"{email}: live messages {sorted(missing)} missing"
            strangers = [g for g, m in self.model.mail.items() if not m.participants & set(self.model.contacts)]
            logged = self.w.graph.mail_log.gmail_keys(self.w.principal, self.w.connection_id, strangers)
            if final:
                assert not logged, f"mail involving no contact was logged: {sorted(logged)}"

        def teardown(self) -> None:
            requests.delete(f"{self.w.base_url}/_emulator/faults", timeout=10)
            self.w.user.quota(None)
            self.w.stops.after = None
            assert self._send_pending(), "a CRM send failed after the faults stopped"
            # Run until quiet: a scheduled run, then whatever is queued (and it queues).
            for _ in range(QUIET_AFTER):
                assert self._run("scheduled"), "a run failed after the faults stopped"
                while self.pending:
                    assert self._work(self.pending.pop(0)), "a queued run failed after the faults stopped"
                state = self.w.graph.mail_sync_store.get(self.w.principal)
                if state.backfill is None and state.history_cursor is not None:
                    break
            else:
                raise AssertionError("the sync never became quiet")
            assert self._run("scheduled")
            self._check(final=True)
            self._no_send_twice()

    return MailMachine


@pytest.fixture
def users(stack) -> Iterator[list[GmailUser]]:
    made: list[GmailUser] = []
    yield made
    for user in made:
        user.quota(None)
    requests.delete(f"{stack.google.base_url}/_emulator/faults", timeout=10)


def test_gmail_and_the_crm_conversations_converge(stack, graph: Graph, users: list[GmailUser]) -> None:  # noqa: F811
    def new_world() -> World:
        # A CRM user and a Gmail account of their own per example: Hypothesis replays a
        # failing example expecting the same outcome.
        principal = Principal(f"tenant-{uuid.uuid4().hex[:10]}", "alice")
        email = GoogleCalendarUser.new(stack.google.base_url, "ada").email
        start = graph.integrations.start_connect("google", principal, features=["calendar", "email"])
        params = query(consent(start.authorization_url, email, typed=True))
        connection = graph.integrations.complete_connect(
            "google", state=params["state"], code=params["code"], error=None, binding=start.binding
        )
        graph.mail_sync_settings.complete(principal, connection)
        user = GmailUser(stack.google.base_url, email)
        users.append(user)
        stops = Stops()
        engine = mail_sync_stopping(graph, stops)
        sender = mail_send_stopping(graph, stops)
        return World(graph, principal, connection.connection_id, user, engine, sender, stops, stack.google.base_url)

    run_state_machine_as_test(
        make_machine(new_world),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
