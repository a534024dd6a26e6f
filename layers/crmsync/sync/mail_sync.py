"""Two-way Gmail sync (F8): the user's mail with their CRM contacts, into the contacts'
conversations — once, threaded, and marked when Gmail trashes or deletes it.

A run, for the mailbox the user enabled (PROVIDERS.md §2.3, Gmail's sync guide):

* **backfill** (first, and again when Gmail's history is gone): take the mailbox's cursor
  *before* listing, list the window (the last N days; never spam, trash or drafts) newest
  first, fetch what is not logged yet in batch requests, and log what involves a CRM contact.
  A backfill runs in steps of at most :attr:`MailSync.budget` (a worker invocation has 60 s):
  each step saves its next page and progress and queues the next step. Only once every page
  is applied does the cursor taken at the start become the history cursor, so mail that
  arrived meanwhile is met by the history that follows;
* **incremental**: every history page after the cursor; messages added are fetched and logged
  (drafts, spam and trash never), a message trashed, moved to spam or deleted after it was
  logged is *marked* (the CRM keeps what was said to a contact; the conversation shows that
  it is gone from Gmail), and one restored is marked live again. Then the new cursor is stored.
  Gmail's 404 for an old cursor → a new backfill (nothing is logged twice: the index below);
* **contacts**: new contacts pull their mail of the window (a search by their addresses).

Which messages: the participants (From, To, Cc) other than the user's own addresses and the
logging domain, minus the user's never-log list; those that are CRM contacts get the message
in their conversation. No contact → not logged. The user's own message is ``outbound``.

Once: a message is keyed by its Message-ID as BCC logging keys it
(:func:`crmsync.mail.inbound.message_keys`), so a message logged by BCC, or sent from the CRM,
is recognised and only gains its Gmail ids; a Gmail index entry per message
(``GMAIL#<connection>#<id>``, written in the logging transaction) makes label changes and
deletions find it and makes a repeated run skip it without fetching.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from crmsync.dal.bcc import SenderAddressStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.contacts import ContactStore
from crmsync.dal.mail_bucket import MailBucket
from crmsync.dal.mail_log import MailLogStore
from crmsync.dal.mail_sync import MailSyncStore
from crmsync.domain import Connection, ConnectionStatus, Counter, NoCounter, Principal, StoredConnection
from crmsync.domain.mail_records import Direction, GmailRef, GmailState, LoggedMessage
from crmsync.domain.mail_sync import Backfill, MailSync
from crmsync.domain.message import MailLimits, ParsedMail, Refusal
from crmsync.mail import logbook
from crmsync.mail.addresses import on_domain
from crmsync.messaging.events import EmailSynced, EventPublisher
from crmsync.ports.errors import AuthRevoked, CursorInvalid, ProviderError, RateLimited
from crmsync.ports.mail import (
    DRAFT,
    SPAM,
    TRASH,
    ChangeKind,
    MailAccess,
    MailChange,
    MailPort,
    RawMessage,
    state_in_mailbox,
)
from crmsync.security.secrets import sha256_hex
from crmsync.sync.mail_requests import MailSyncRequests

log = logging.getLogger(__name__)

Parser = Callable[[bytes, MailLimits], ParsedMail | Refusal]
#: A message with one of these labels is not conversation: never logged.
SKIPPED_LABELS = frozenset({DRAFT, SPAM, TRASH})
#: Contacts linked per message (one transaction holds the message, its index entry and one
#: conversation entry per contact).
MAX_CONTACTS = 97
#: Ids fetched per call (the adapter sends them as batch requests of 50).
FETCH_CHUNK = 100
#: Addresses per search when new contacts pull their past mail (three terms each).
SEARCH_CHUNK = 15
#: Renew the watch when it was last opened this long ago (Google: "once per day").
WATCH_RENEW_AFTER = timedelta(hours=20)
#: In :meth:`_Run._apply`: Gmail's labels decide where a logged message is (read from Gmail).
_READ = "read"
#: The same, and a message not logged yet is fetched (it may be live now).
_RESTORED = "restored"
_GONE: dict[str, GmailState] = {"trashed": "trashed", "deleted": "deleted"}
SCOPE_MISSING = "Google no longer grants access to the mail of {email}; enable Email sync again."


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class NeverLogRules(Protocol):
    def blocks(self, email: str) -> bool: ...


class NeverLogSource(Protocol):
    """The user's never-log list (addresses and domains whose mail is never logged)."""

    def get(self, principal: Principal) -> NeverLogRules: ...


class _Nothing:
    def blocks(self, email: str) -> bool:
        return False


@dataclass(frozen=True)
class MailSyncOutcome:
    mode: str  # "backfill", "incremental", "contacts"
    checked: int = 0
    logged: int = 0
    recognised: int = 0
    marked: int = 0
    #: The backfill continues in a queued step.
    more: bool = False
    #: Seconds from Gmail receiving the newest message this run logged to its logging (the
    #: sync's lag behind the mailbox); None when it logged none.
    lag: float | None = None


@dataclass
class _Tally:
    checked: int = 0
    logged: int = 0
    recognised: int = 0
    marked: int = 0
    oldest: datetime | None = None
    newest_logged: datetime | None = None


class MailSyncEngine:
    def __init__(
        self,
        *,
        store: MailSyncStore,
        connections: ConnectionStore,
        senders: SenderAddressStore,
        access: MailAccess,
        contacts: ContactStore,
        log_store: MailLogStore,
        bucket: MailBucket,
        parse: Parser,
        publisher: EventPublisher,
        queue: Queue,
        logging_domain: str,
        topic: str = "",
        never_log: NeverLogSource | None = None,
        scope_granted: Callable[[Connection], bool] | None = None,
        limits: MailLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        budget: timedelta = timedelta(seconds=40),
        counter: Counter | None = None,
    ) -> None:
        self._store = store
        self._connections = connections
        self._senders = senders
        self._access = access
        self._contacts = contacts
        self._log = log_store
        self._bucket = bucket
        self._parse = parse
        self._publisher = publisher
        self._queue = queue
        self._domain = logging_domain
        self._topic = topic
        self._never_log = never_log
        self._scope_granted = scope_granted
        self._limits = limits or MailLimits()
        self._clock = clock
        self.budget = budget
        #: Ids listed per page (Gmail's largest is 500).
        self.page_size = 500
        self._counter = counter or NoCounter()

    # ------------------------------------------------------------------ entry point
    def run(
        self, principal: Principal, connection_id: str, *, reason: str = "scheduled", emails: Sequence[str] = ()
    ) -> MailSyncOutcome | None:
        """One run; None when the mailbox is not (or no longer) the one synced, or its
        connection cannot be used (the state says why). Provider failures are recorded and
        raised, so the queue retries with backoff."""
        state = self._store.get(principal)
        if state.connection_id != connection_id:
            return None
        stored = self._connections.get_stored(principal, connection_id)
        if stored is None or stored.connection.status is not ConnectionStatus.CONNECTED:
            return None
        if self._scope_granted is not None and not self._scope_granted(stored.connection):
            message = SCOPE_MISSING.format(email=stored.connection.email)
            if state.last_error != message:
                self._store.save(principal, connection_id, error=message)
            return None
        port = self._access.mail(stored)
        run = _Run(self, principal, connection_id, port, state, stored.connection.email)
        try:
            if reason == "contacts" and emails:
                return run.pull(emails)
            return run.sync()
        except AuthRevoked:
            # Google no longer accepts the grant (revoked, password changed): retrying cannot
            # help. The connection is marked for re-authorization, as its health check would,
            # and the Email page shows it; reconnecting resumes from the stored cursor.
            self._connections.set_status(
                principal, connection_id, ConnectionStatus.NEEDS_REAUTH, "invalid_grant", version=stored.version
            )
            self._counter.count("ConnectionNeedsReauth")
            log.warning(
                "gmail grant revoked; connection needs re-authorization", extra={"connection_id": connection_id}
            )
            return None
        except ProviderError as exc:
            if isinstance(exc, RateLimited):
                self._counter.count("MailRateLimited")
            try:
                self._store.save(principal, connection_id, error=str(exc)[:500])
            except Exception:
                log.exception("could not record a mail sync failure", extra={"connection_id": connection_id})
            raise

    def forget(self, principal: Principal, connection_id: str) -> int:
        """Forget the synced-only mail of a mailbox no longer synced (disable, another mailbox
        chosen, disconnect), within the run's budget; what is left is queued as the next step.
        Nothing while it is the synced mailbox again (the user enabled it anew)."""
        if self._store.get(principal).connection_id == connection_id:
            return 0
        deadline = self._clock() + self.budget
        forgotten = 0
        while True:
            handled, objects = self._log.forget_gmail(principal, connection_id)
            self._bucket.delete(objects)
            forgotten += handled
            if handled == 0:
                return forgotten
            if self._clock() >= deadline:
                self.request(principal, connection_id, "forget", f"forget@{self._clock().isoformat()}")
                return forgotten

    def stop_before_revoke(self, principal: Principal, stored: StoredConnection) -> None:
        """Before a disconnect revokes the grant: stop the mailbox's watch if it is the synced
        one (best effort: Google stops pushing within minutes, and pushes for a mailbox nobody
        syncs are acknowledged and dropped)."""
        if not self._topic or self._store.get(principal).connection_id != stored.connection.connection_id:
            return
        try:
            self._access.mail(stored).stop()
        except ProviderError:
            log.warning(
                "gmail watch not stopped before revoke", extra={"connection_id": stored.connection.connection_id}
            )

    def stop_watch(self, principal: Principal, connection_id: str) -> None:
        """No more Gmail notifications for this mailbox."""
        stored = self._connections.get_stored(principal, connection_id)
        if stored is None or stored.connection.status is not ConnectionStatus.CONNECTED or not self._topic:
            return
        self._access.mail(stored).stop()

    def request(self, principal: Principal, connection_id: str, reason: str, occasion: str) -> None:
        MailSyncRequests(self._queue).request(principal, connection_id, reason, occasion)


class _Run:
    def __init__(
        self, o: MailSyncEngine, principal: Principal, connection_id: str, port: MailPort, state: MailSync, email: str
    ) -> None:
        self.o = o
        self.principal = principal
        self.connection_id = connection_id
        self.port = port
        self.state = state
        self.started = o._clock()
        self.deadline = self.started + o.budget
        self.email = email

    # Read only when a message is to be logged: a no-op sync reads nothing more.
    @cached_property
    def own(self) -> set[str]:
        o = self.o
        own = {c.email.lower() for c in o._connections.list(self.principal)} | o._senders.verified(self.principal)
        return own | {self.email.lower()}

    @cached_property
    def never(self) -> NeverLogRules:
        return self.o._never_log.get(self.principal) if self.o._never_log is not None else _Nothing()

    @property
    def since(self) -> datetime:
        return self.started - timedelta(days=self.state.window_days)

    # ------------------------------------------------------------------ the run
    def sync(self) -> MailSyncOutcome:
        o, state = self.o, self.state
        if state.history_cursor is None and state.backfill is None:
            state = self._begin_backfill()
        if state.backfill is not None:
            step, done = self._backfill(state.backfill)
            if not done or o._clock() >= self.deadline:
                if done:
                    self._watch()
                return MailSyncOutcome("backfill", step.checked, step.logged, step.recognised, more=not done)
            # Done with time left: what arrived during the backfill, from the cursor it began at.
            state = self.state
            backfilled: _Tally | None = step
        else:
            backfilled = None
        assert state.history_cursor is not None
        try:
            page = self.port.changes_since(state.history_cursor)
        except CursorInvalid:
            log.info("gmail history expired; backfilling the window again", extra={"connection_id": self.connection_id})
            o._counter.count("MailHistoryExpired")
            self._begin_backfill()
            o.request(self.principal, self.connection_id, "backfill", f"restart@{self.started.isoformat()}")
            return MailSyncOutcome("backfill", more=True)
        tally = self._apply(page.changes)
        now = o._clock()
        changed = page.cursor != state.history_cursor or state.last_error is not None
        stale = state.last_synced_at is None or now - state.last_synced_at > timedelta(minutes=30)
        if changed or stale:
            self._store_save(history_cursor=page.cursor, synced_at=now, error=None)
        self._watch()
        lag = (now - tally.newest_logged).total_seconds() if tally.newest_logged is not None else None
        if backfilled is not None:
            return MailSyncOutcome(
                "backfill",
                backfilled.checked + tally.checked,
                backfilled.logged + tally.logged,
                backfilled.recognised + tally.recognised,
                tally.marked,
            )
        return MailSyncOutcome("incremental", tally.checked, tally.logged, tally.recognised, tally.marked, lag=lag)

    def pull(self, emails: Sequence[str]) -> MailSyncOutcome:
        """New contacts' mail of the window (a Gmail search by their addresses)."""
        if self.state.history_cursor is None and self.state.backfill is None:
            # Before the mailbox's first backfill took its cursor, nothing would ever tell the
            # sync what becomes of what this logs (trashed or deleted before it begins): take
            # the cursor now (the backfill itself runs as queued).
            self._begin_backfill()
        wanted = sorted({e.strip().lower() for e in emails if "@" in e and not self.never.blocks(e)})
        tally = _Tally()
        for start in range(0, len(wanted), SEARCH_CHUNK):
            chunk = wanted[start : start + SEARCH_CHUNK]
            owners = self.o._contacts.owners(self.principal, chunk)
            query = "{" + " ".join(f"{op}:{_quoted(e)}" for e in chunk for op in ("from", "to", "cc")) + "}"
            page: str | None = None
            while True:
                listed = self.port.list_messages(since=self.since, query=query, page=page)
                ids = [r.message_id for r in listed.messages]
                known = self.o._log.gmail_keys(self.principal, self.connection_id, ids) if ids else {}
                for key in dict.fromkeys(known.values()):
                    # Logged before for other contacts: it joins the new ones' conversations.
                    tally.checked += 1
                    if self._join(key, owners):
                        tally.recognised += 1
                self._fetch_and_log([g for g in ids if g not in known], tally)
                page = listed.next_page
                if page is None:
                    break
        return MailSyncOutcome("contacts", tally.checked, tally.logged, tally.recognised)

    def _join(self, key: str, owners: dict[str, str]) -> bool:
        """Put the message logged under ``key`` into the conversations of the contacts in
        ``owners`` (email → contact) among its participants; True if any joined."""
        for _ in range(3):  # a concurrent change of its contacts: read it again
            logged = self.o._log.get(self.principal, key)
            if logged is None:
                return False
            emails = {a.email.lower() for a in (logged.sender, *logged.to, *logged.cc) if a is not None}
            joining = [owners[e] for e in sorted(emails) if e in owners and owners[e] not in logged.contact_ids]
            joining = joining[: max(0, MAX_CONTACTS - len(logged.contact_ids))]
            if not joining:
                return False
            if self.o._log.add_contacts(self.principal, logged, joining):
                return True
        return False

    # ------------------------------------------------------------------ backfill
    def _begin_backfill(self) -> MailSync:
        """A backfill's cursor, taken before listing. Every backfill ends by reading again what
        became of the messages logged before it (``reconcile``): after a 404 history gap, and
        before the first one, mail logged already (a CRM send, a contact's pull) may have been
        trashed or deleted where no history from this cursor will say so."""
        profile = self.port.profile()
        backfill = Backfill(cursor=profile.history_cursor, page=None, started_at=self.started, reconcile=True)
        saved = self._store_save(backfill=backfill, error=None)
        self.state = saved if saved is not None else replace(self.state, backfill=backfill)
        return self.state

    def _backfill(self, backfill: Backfill) -> tuple[_Tally, bool]:
        """Pages of the window until it is done (True) or the run's budget is spent (False: the
        next step is queued). The tally is this step's."""
        o = self.o
        step = _Tally()
        page = backfill.page
        # Every step lists the same window (a page token belongs to its query): the one from
        # when the backfill began.
        since = backfill.started_at - timedelta(days=self.state.window_days)
        while True:
            tally = _Tally()
            listed = self.port.list_messages(since=since, page=page, page_size=self.o.page_size)
            self._log_new([r.message_id for r in listed.messages], tally)
            step.checked += tally.checked
            step.logged += tally.logged
            step.recognised += tally.recognised
            page = listed.next_page
            backfill = replace(
                backfill,
                page=page,
                reached=tally.oldest or backfill.reached,
                checked=backfill.checked + tally.checked,
                logged=backfill.logged + tally.logged,
            )
            if page is None:
                if backfill.reconcile:
                    self._reconcile(tally)
                now = o._clock()
                self._store_save(backfill=None, history_cursor=backfill.cursor, synced_at=now, error=None)
                o._counter.count("MailBackfillDone")
                log.info(
                    "gmail backfill done",
                    extra={"connection_id": self.connection_id, "checked": backfill.checked, "logged": backfill.logged},
                )
                return step, True
            self._store_save(backfill=backfill)
            if o._clock() >= self.deadline:
                o.request(self.principal, self.connection_id, "backfill", f"page@{backfill.checked}")
                return step, False

    def _reconcile(self, tally: _Tally) -> None:
        """Gmail's history was gone: whatever became of the messages logged before (trashed,
        restored, moved to spam or deleted in the gap) is read from Gmail again, 5 quota units
        each, and marked. A stopped run repeats it: the backfill's last page is listed again."""
        after: str | None = None
        while True:
            logged, after = self.o._log.gmail_logged(self.principal, self.connection_id, after)
            found = {r.message_id: r for r in self.port.get_messages([g for g, _, _ in logged])} if logged else {}
            for gmail_id, key, marked in logged:
                state = state_in_mailbox(found.get(gmail_id))
                if state != marked and self.o._log.set_gmail_state(self.principal, key, state):
                    tally.marked += 1
            if after is None:
                return

    # ------------------------------------------------------------------ changes
    def _apply(self, changes: Iterable[MailChange]) -> _Tally:
        """History, oldest first: fetch what was added (and what left the trash or spam
        unlogged), mark what left Gmail's inbox for the trash, spam or for good.

        A change says which labels moved, not where the message is: ``messages.trash`` keeps
        the other labels, so SPAM added to a message trashed in an earlier run, or TRASH or
        SPAM removed from one that keeps the other, leaves it where Gmail's labels say
        (:func:`state_in_mailbox`, TRASH first). Those logged messages are read from Gmail
        (one call for them all); only TRASH added decides alone (nothing ranks above it)."""
        added: list[str] = []
        #: What became of a message: a state, or _READ (Gmail's labels decide) or _RESTORED
        #: (Gmail's labels decide; unlogged, it is fetched and logged if live).
        moved: dict[str, str] = {}
        for change in changes:
            mid = change.message.message_id
            if change.kind is ChangeKind.ADDED:
                if not SKIPPED_LABELS & set(change.label_ids):
                    added.append(mid)
                moved.pop(mid, None)
            elif change.kind is ChangeKind.DELETED:
                moved[mid] = "deleted"
            elif change.kind is ChangeKind.LABELS_ADDED:
                if TRASH in change.label_ids:
                    moved[mid] = "trashed"
                elif SPAM in change.label_ids and moved.get(mid) != "trashed":
                    moved[mid] = _READ  # spam, unless it is in the trash too
            elif change.kind is ChangeKind.LABELS_REMOVED and {TRASH, SPAM} & set(change.label_ids):
                moved[mid] = _RESTORED
        tally = _Tally()
        if not added and not moved:
            return tally
        known = self.o._log.gmail_keys(self.principal, self.connection_id, [*added, *moved])
        fetch = [m for m in dict.fromkeys(added) if m not in known and moved.get(m) in (None, _RESTORED)]
        fetch += [m for m, s in moved.items() if s == _RESTORED and m not in known and m not in fetch]
        read = [m for m, s in moved.items() if s in (_READ, _RESTORED) and m in known]
        found = {r.message_id: r for r in self.port.get_messages(read)} if read else {}
        for mid, marker in moved.items():
            key = known.get(mid)
            if key is None:
                continue
            state: GmailState = state_in_mailbox(found.get(mid)) if marker in (_READ, _RESTORED) else _GONE[marker]
            if self.o._log.set_gmail_state(self.principal, key, state):
                tally.marked += 1
        self._fetch_and_log(fetch, tally)
        return tally

    # ------------------------------------------------------------------ logging
    def _log_new(self, gmail_ids: list[str], tally: _Tally) -> None:
        if not gmail_ids:
            return
        known = self.o._log.gmail_keys(self.principal, self.connection_id, gmail_ids)
        tally.checked += len(known)
        self._fetch_and_log([g for g in gmail_ids if g not in known], tally)

    def _fetch_and_log(self, gmail_ids: list[str], tally: _Tally) -> None:
        for start in range(0, len(gmail_ids), FETCH_CHUNK):
            for raw in self.port.get_messages(gmail_ids[start : start + FETCH_CHUNK]):
                tally.checked += 1
                if tally.oldest is None or raw.internal_date < tally.oldest:
                    tally.oldest = raw.internal_date
                outcome = self._one(raw)
                if outcome == "logged":
                    tally.logged += 1
                    if tally.newest_logged is None or raw.internal_date > tally.newest_logged:
                        tally.newest_logged = raw.internal_date
                elif outcome == "recognised":
                    tally.recognised += 1

    def _one(self, raw: RawMessage) -> str:
        """Log one Gmail message: ``logged``, ``recognised`` (logged before, now known as this
        Gmail message) or why not (``skipped``, ``refused``, ``no_contacts``)."""
        if SKIPPED_LABELS & set(raw.label_ids) or raw.internal_date < self.since - timedelta(days=1):
            return "skipped"
        try:
            parsed = self.o._parse(raw.raw, self.o._limits)
        except Exception as exc:  # noqa: BLE001 - hostile input must never stop a mailbox's sync
            log.warning(
                "gmail message not parsed", extra={"connection_id": self.connection_id, "error": type(exc).__name__}
            )
            return "refused"
        if isinstance(parsed, Refusal):
            return "refused"
        sender = parsed.sender.email.lower() if parsed.sender else ""
        if not sender:
            return "refused"
        direction: Direction = "outbound" if sender in self.own else "inbound"
        participants = [a for a in (parsed.sender, *parsed.to, *parsed.cc) if a is not None]
        if any(self.never.blocks(a.email) for a in participants if a.email.lower() not in self.own) and not [
            a for a in participants if a.email.lower() not in self.own and not self.never.blocks(a.email)
        ]:
            return "no_contacts"
        emails = list(
            dict.fromkeys(
                a.email.lower()
                for a in participants
                if a.email.lower() not in self.own
                and not on_domain(a.email, self.o._domain)
                and not self.never.blocks(a.email)
            )
        )
        if not emails:
            return "no_contacts"
        owners = self.o._contacts.owners(self.principal, emails)
        contact_ids = tuple(dict.fromkeys(owners[e] for e in emails if e in owners))[:MAX_CONTACTS]
        if not contact_ids:
            return "no_contacts"
        return self._commit(raw, parsed, direction, contact_ids)

    def _commit(self, raw: RawMessage, mail: ParsedMail, direction: Direction, contact_ids: tuple[str, ...]) -> str:
        gmail = GmailRef(self.connection_id, raw.message_id, raw.thread_id, raw.internal_date)
        digest = logbook.content_digest(mail)
        for index, key in enumerate(keys := logbook.message_keys(mail, digest)):
            existing = self.o._log.get(self.principal, key)
            if existing is not None:
                if _same_message(existing, mail, digest) or index == len(keys) - 1:
                    if existing.gmail is None or existing.gmail.message_id != raw.message_id:
                        self.o._log.attach_gmail(self.principal, key, gmail)
                    return "recognised"
                continue
            parts = logbook.store_parts(self.o._bucket, self.principal, key, digest, mail)
            message = logbook.record(
                mail,
                key=key,
                digest=digest,
                direction=direction,
                parts=parts,
                contact_ids=contact_ids,
                notes=mail.notes,
                date=mail.date or raw.internal_date,
                to=logbook.shown(mail.to, self.o._domain),
                cc=logbook.shown(mail.cc, self.o._domain),
                source="gmail",
                gmail=gmail,
            )
            if not self.o._log.commit(self.principal, message):
                # A concurrent logging (BCC, a send) took the key first: the same message.
                self.o._log.attach_gmail(self.principal, key, gmail)
                return "recognised"
            self._publish(message)
            return "logged"
        return "recognised"

    def _publish(self, message: LoggedMessage) -> None:
        user = sha256_hex(f"{self.principal.tenant_id}\n{self.principal.user_id}")[:16]
        self.o._publisher.publish(
            [
                EmailSynced(
                    event_id=f"email:{user}:{message.message_key}",
                    tenant_id=self.principal.tenant_id,
                    user_id=self.principal.user_id,
                    message_key=message.message_key,
                    contact_ids=list(message.contact_ids),
                    direction=message.direction,
                    subject=message.subject,
                    thread_id=message.gmail.thread_id if message.gmail else "",
                )
            ]
        )
        self.o._log.mark_published(self.principal, message.message_key)
        self.o._counter.count("MailSynced")

    # ------------------------------------------------------------------ the watch
    def _watch(self) -> None:
        """Open the mailbox's watch, or renew it once a day (Google: at least every 7 days)."""
        o = self.o
        if not o._topic:
            return
        renewed = self.state.watch_renewed_at
        now = o._clock()
        if renewed is not None and now - renewed < WATCH_RENEW_AFTER:
            return
        watch = self.port.watch(o._topic)
        self._store_save(watch_expires_at=watch.expires_at, watch_renewed_at=now)
        log.info("gmail watch opened", extra={"connection_id": self.connection_id})

    def _store_save(self, **changes: Any) -> MailSync | None:
        saved = self.o._store.save(self.principal, self.connection_id, **changes)
        if saved is not None:
            self.state = saved
        return saved


def _same_message(existing: LoggedMessage, mail: ParsedMail, digest: str) -> bool:
    """The message logged under its Message-ID is this one: the same logged content, or
    (Gmail's copy of a BCC-logged message may differ in what a relay added) the same sender
    and Date."""
    if existing.content_digest in (None, digest):
        return True
    sender = mail.sender.email.lower() if mail.sender else ""
    same_sender = (existing.sender.email.lower() if existing.sender else "") == sender
    return same_sender and mail.date is not None and abs((existing.date - mail.date).total_seconds()) < 1


def _quoted(email: str) -> str:
    """An address as one Gmail search term (quotes keep characters Gmail would split on)."""
    return '"' + email.replace('"', "") + '"'
