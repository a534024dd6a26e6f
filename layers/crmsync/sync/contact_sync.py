"""F10: two-way sync of CRM contacts with the user's Google Contacts account.

One run (:meth:`ContactSync.run`), for the user's contacts account only, sequential per user
(one FIFO group per user, Google: "mutate requests for the same user should be sent
sequentially"):

1. **Fetch** Google's changes: incremental from the stored cursor, or a full listing
   (``requestSyncToken``) the first time and when the cursor expired (``CursorInvalid``, Google's
   ``EXPIRED_SYNC_TOKEN``). A full listing replaces the mirror: contacts keyed by resource name
   (no duplicates), whatever it lacks was deleted (no loss).
2. **Google → CRM**: a Google contact we pushed is recognised by its ``key`` (the CRM contact
   id): linked, never offered. One that matches a CRM contact by normalised email or phone is
   linked, not offered. For a linked contact each synced field is merged three ways against
   the mirror (Google's state as last seen): changed on one side only → that side's value;
   changed on both → the later change wins, Google's source ``updateTime`` against the CRM's
   ``Contact.changed_at[field]`` (a tie goes to the CRM). A contact deleted in Google is
   unlinked in the CRM, never deleted.
3. **CRM → Google**: CRM contacts changed since the last push (``CPENDING#`` marks, written in
   the contact's own transaction) and, on the account's first sync, every CRM contact not
   linked to it: unlinked ones are matched against the mirror first, then created in batches
   (key = contact id) in the CRM's contact group; linked ones are updated with the mirror's
   etag — on ``PreconditionFailed`` the contact is read again, merged, and written again. A
   CRM contact deleted while linked to a contact we created is deleted in Google, otherwise
   only unlinked (its Google contact starts as a declined candidate).
4. **Candidates**: Google contacts linked to no CRM contact and not ours, one candidate per
   group sharing an email (:mod:`crmsync.dal.candidates`).
5. The cursor is saved last, conditioned on its version.

Deletions pass the mass-deletion guard (:mod:`crmsync.guard`) first, each side apart: Google
deleting most (or all) of the linked contacts (a wiped address book, another account), or the
CRM deleting most of the linked contacts we created in Google. The rest of the run is applied;
those deletions are held (the linked pairs stay as they are, the CRM's deletion marks stay)
and ``DeletionsHeld`` (``resource_kind`` ``contacts``, ``resource_id`` the side) is published
until the user answers. Apply: carried out as usual. Ignore: Google-side deletions → the CRM
contacts are pushed to Google again (created anew, linked); CRM-side deletions → the Google
contacts stay, unlinked (as if we had not created them). An answer to Google-side deletions
is carried out by a full sync (Google's complete list is judged afresh).

Interrupted at any step, a re-run reaches the same result: the cursor and the CRM marks move
only after everything they cover was applied.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.dal.candidates import CandidateStore
from crmsync.dal.contacts import ContactStore
from crmsync.dal.gcontacts import (
    CRM_SIDE,
    GOOGLE_SIDE,
    ContactMirrorStore,
    MirroredContact,
    PendingChange,
    contacts_resource,
)
from crmsync.dal.guard import PendingDeletionsStore
from crmsync.domain import Connection, ConnectionStatus, Counter, Principal
from crmsync.domain.contacts import (
    SYNCED_FIELDS,
    Candidate,
    CandidateStatus,
    Contact,
    GoogleLink,
    Phone,
    normalise_email,
)
from crmsync.errors import Conflict, DuplicateContact
from crmsync.guard import DeletionThreshold, PendingDeletions
from crmsync.messaging.events import EventPublisher
from crmsync.ports.contacts import ContactDraft, ContactGroup, ContactsAccess, ContactsPort, ProviderContact
from crmsync.ports.errors import CursorInvalid, PreconditionFailed, ProviderError, ProviderNotFound
from crmsync.security.secrets import sha256_hex
from crmsync.sync import held as guard

log = logging.getLogger(__name__)

#: A no-op sync leaves the cursor alone, but refreshes it this often (``last_success_at``).
CURSOR_REFRESH = timedelta(hours=1)
#: How long a create intent is kept: Google's writes reach sync listings within minutes.
INTENT_KEPT = timedelta(days=7)
#: Read, merge and write again this often when Google's etag keeps moving.
_MERGE_ATTEMPTS = 4

PhoneReader = Callable[[Principal, Sequence[str]], tuple[Phone, ...]]
View = dict[str, Any]

#: What a run does with one side's deletions (the mass-deletion guard).
_APPLY, _HOLD, _KEEP = guard.APPLY, guard.HOLD, guard.KEEP

#: Recorded on the cursor (``last_error``) when the grant lacks the contacts scope.
SCOPE_MISSING = (
    "Google no longer grants access to the contacts of {email}: reconnect the account "
    "(or enable contacts sync again) and leave contacts ticked on Google's consent page."
)


@dataclass(frozen=True)
class ContactSyncOutcome:
    full: bool
    #: Google contacts fetched (changed or, in a full sync, listed).
    fetched: int = 0
    #: CRM contacts created in Google.
    created: int = 0
    #: Google contacts updated with CRM changes.
    updated: int = 0
    #: Changes applied to CRM contacts.
    applied: int = 0
    #: Google contacts deleted because their CRM contact was.
    deleted: int = 0
    #: Import candidates offered after the run (None: a no-op run did not count them).
    offered: int | None = None


def _norm(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _emails(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        try:
            email = normalise_email(value)
        except ValueError:
            continue  # not an address: neither matched nor copied
        if email not in out:
            out.append(email)
    return tuple(out)


def _same(name: str, a: Any, b: Any) -> bool:
    if name == "phones":
        return [p.key for p in a] == [p.key for p in b]
    return bool(a == b)


def crm_view(contact: Contact) -> View:
    f = contact.fields
    given = f.given_name if (f.given_name or f.family_name) else f.display_name
    return {
        "given_name": _norm(given),
        "family_name": _norm(f.family_name),
        "emails": tuple(f.emails),
        "phones": tuple(f.phones),
        "organization": _norm(f.organization),
        "title": _norm(f.title),
    }


def google_view(m: MirroredContact) -> View:
    return {
        "given_name": _norm(m.given_name),
        "family_name": _norm(m.family_name),
        "emails": m.emails,
        "phones": m.phones,
        "organization": _norm(m.organization),
        "title": _norm(m.title),
    }


def _equal(a: View, b: View) -> bool:
    return all(_same(n, a[n], b[n]) for n in SYNCED_FIELDS)


#: Fields holding several values, united on a first link.
_LISTS = ("emails", "phones")


def _union(name: str, crm: Sequence[Any], google: Sequence[Any]) -> tuple[Any, ...]:
    if name == "phones":
        keys = {p.key for p in crm}
        return (*crm, *(p for p in google if p.key not in keys))
    return tuple(dict.fromkeys([*crm, *google]))


def merge(contact: Contact, base: MirroredContact | None, google: MirroredContact, crm: View | None = None) -> View:
    """The fields both sides should have. Three-way against ``base`` (Google's state the CRM
    already agreed with); without one (a first link by email or phone) an empty side takes
    the other's value, and emails and phones are united (both sides' are the person's). When
    both changed a field, the later change wins: Google's source ``updateTime`` against the
    CRM field's change time (a tie, or an unknown time, goes to the CRM)."""
    crm, goo = crm if crm is not None else crm_view(contact), google_view(google)
    old = google_view(base) if base is not None else None
    result: View = {}
    for name in SYNCED_FIELDS:
        c, g = crm[name], goo[name]
        if _same(name, c, g):
            result[name] = c
            continue
        if old is None:
            if not c:
                result[name] = g
                continue
            if not g:
                result[name] = c
                continue
            if name in _LISTS:
                # A first link (matched by one email or phone): both sides' addresses and
                # numbers are the person's; neither replaces the other.
                result[name] = _union(name, c, g)
                continue
            google_changed = crm_changed = True
        else:
            google_changed = not _same(name, g, old[name])
            crm_changed = not _same(name, c, old[name])
        if google_changed and not crm_changed:
            result[name] = g
        elif crm_changed and not google_changed:
            result[name] = c
        else:
            crm_at = contact.changed_at.get(name) or contact.created_at
            google_at = google.updated_at
            result[name] = g if google_at is not None and crm_at is not None and google_at > crm_at else c
    return result


def _keys(view: View) -> list[str]:
    return [*view["emails"], *(p.key for p in view["phones"])]


def _with_foreign(view: View, google: View, foreign: AbstractSet[str]) -> View:
    """The CRM contact as the merge sees it: with the Google contact's emails and phones that
    belong to another CRM contact (a shared office number, a family address), which the CRM
    cannot hold twice and Google keeps."""
    if not foreign:
        return view
    return {
        **view,
        "emails": (*view["emails"], *(e for e in google["emails"] if e in foreign and e not in view["emails"])),
        "phones": (*view["phones"], *(p for p in google["phones"] if p.key in foreign)),
    }


def _without_foreign(view: View, foreign: AbstractSet[str]) -> View:
    if not foreign:
        return view
    return {
        **view,
        "emails": tuple(e for e in view["emails"] if e not in foreign),
        "phones": tuple(p for p in view["phones"] if p.key not in foreign),
    }


def _draft(view: View, key: str | None = None) -> ContactDraft:
    return ContactDraft(
        given_name=view["given_name"],
        family_name=view["family_name"],
        emails=tuple(view["emails"]),
        phones=tuple(p.raw for p in view["phones"]),
        organization=view["organization"],
        title=view["title"],
        key=key,
    )


def candidate_id(emails: Sequence[str], connection_id: str, resource_name: str) -> str:
    """A candidate's id: from its smallest email (Google contacts sharing it are one
    candidate), else from its one member."""
    basis = min(emails) if emails else f"{connection_id}#{resource_name}"
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


class ContactSync:
    def __init__(
        self,
        *,
        mirror: ContactMirrorStore,
        contacts: ContactStore,
        candidates: CandidateStore,
        access: ContactsAccess,
        read_phones: PhoneReader,
        group_name: str = "CRM",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        threshold: DeletionThreshold | None = None,
        held: PendingDeletionsStore | None = None,
        events: EventPublisher | None = None,
        counter: Counter | None = None,
        scope_granted: Callable[[Connection], bool] | None = None,
    ) -> None:
        """``read_phones``: the CRM's reading of phone numbers (E.164 with the tenant's
        region), so Google's numbers match and merge like the CRM's. ``group_name``: the
        contact group our contacts are put in ("a contact group named after the CRM").
        The mass-deletion guard: ``threshold`` decides which deletions are held, ``held``
        records them, ``events`` receives ``DeletionsHeld``, ``counter`` counts
        ``MassDeletionHeld``. ``scope_granted``: whether a connection's grant still has the
        contacts scope (without it nothing is called and the cursor says why)."""
        self._mirror = mirror
        self._contacts = contacts
        self._candidates = candidates
        self._access = access
        self._read_phones = read_phones
        self._group_name = group_name
        self._clock = clock
        self._threshold = threshold or DeletionThreshold()
        self._held = held or PendingDeletionsStore()
        self._events = events
        self._counter = counter
        self._scope_granted = scope_granted

    def run(self, principal: Principal, connection_id: str) -> ContactSyncOutcome | None:
        """``None``: the connection is gone, not usable, or not the user's contacts account.
        A no-op incremental sync costs one Google request and two DynamoDB requests. A
        provider failure (quota included) is recorded on the cursor and raised, so the queue
        retries with backoff; ``Conflict`` (a concurrent writer) is raised to be retried."""
        try:
            return _Run(self, principal, connection_id).run()
        except ProviderError as exc:
            try:
                self._mirror.record_failure(principal, connection_id, str(exc))
            except Exception:
                log.exception("could not record a contacts sync failure", extra={"connection_id": connection_id})
            raise

    def forget_connection(self, principal: Principal, connection_id: str) -> None:
        """Disconnect: the mirror, the cursor, the held deletions and the candidates of the
        connection go; the CRM contacts stay (their links to it are left: they are replaced
        when they are pushed to another account, and a link to a gone connection syncs nothing)."""
        self._mirror.forget(principal, connection_id)
        for side in (GOOGLE_SIDE, CRM_SIDE):
            self._held.forget(principal, contacts_resource(connection_id, side))
        self._candidates.delete_connection(principal, connection_id)

    # ------------------------------------------------------------------ the guard
    def _verdict(self, held: PendingDeletions | None, deletions: int, mirrored: int, *, complete: bool) -> str:
        """Apply, hold or keep (the user's Ignore) one side's deletions. An answer is
        carried out only by a run that judges that side completely (``complete``)."""
        return guard.verdict(self._threshold, held, deletions, mirrored, complete=complete)

    def _hold(
        self,
        principal: Principal,
        connection_id: str,
        side: str,
        held: PendingDeletions | None,
        deletions: int,
        mirrored: int,
        complete: bool,
    ) -> None:
        now = self._clock()
        guard.hold(
            self._held,
            principal,
            contacts_resource(connection_id, side),
            held,
            (deletions, mirrored),
            complete=complete,
            now=now,
            event_id=f"held:{connection_id}:contacts-{side}:{sha256_hex(now.isoformat())[:32]}",
            events=self._events,
            counter=self._counter,
        )


class _Run:
    """One sync run's state."""

    def __init__(self, owner: ContactSync, principal: Principal, connection_id: str) -> None:
        self.o = owner
        self.principal = principal
        self.connection_id = connection_id
        self.applied = self.updated = self.created = self.deleted = 0
        #: The mirror after this run, by resource name (loaded when the run is not a no-op).
        self.mirror: dict[str, MirroredContact] = {}
        self.dirty: set[str] = set()
        self.removed: set[str] = set()
        self.handled: set[str] = set()
        #: CRM contacts to push to Google anew (the user ignored Google's deletions).
        self.restore: set[str] = set()
        #: CRM contacts whose change waits for the user's answer to held Google deletions.
        self.waiting: set[str] = set()
        #: Emails and phones CRM contacts gained in this run (by merges), and whose they are.
        self.gained: dict[str, str] = {}
        #: CRM contacts whose create in Google may have gone unheard (create intents).
        self.intents: dict[str, datetime] = {}
        #: CRM contacts deleted since the last push (their marks are pending).
        self.deleting: set[str] = set()
        self.held: dict[str, PendingDeletions] = {}
        #: Linked contacts mirrored before this run: what the guard compares deletions with.
        self.linked_before = 0
        #: Per side: the verdict, and how many deletions it judged.
        self.verdicts: dict[str, tuple[str, int]] = {}

    # ------------------------------------------------------------------ the run
    def run(self) -> ContactSyncOutcome | None:
        o, principal, connection_id = self.o, self.principal, self.connection_id
        inputs = o._mirror.inputs(principal, connection_id)
        stored, cursor = inputs.stored, inputs.cursor
        if stored is None or stored.connection.status is not ConnectionStatus.CONNECTED:
            return None
        if inputs.contacts_account != connection_id:
            return None
        if o._scope_granted is not None and not o._scope_granted(stored.connection):
            # Reconnected without the contacts scope (unticked at Google): calling would fail
            # with 403 on every retry. The state says why; nothing else changes.
            if cursor.last_error is None or not cursor.last_error.startswith("Google no longer grants"):
                log.warning("contacts scope missing; contacts sync stopped", extra={"connection_id": connection_id})
                o._mirror.record_failure(principal, connection_id, SCOPE_MISSING.format(email=stored.connection.email))
            return None
        self.held = inputs.held
        port = o._access.contacts(stored)
        first = cursor.version is None or cursor.sync_token is None
        google_answer = self.held.get(GOOGLE_SIDE)
        # The user answered held Google-side deletions: a full sync judges Google's complete list.
        full = first or (google_answer is not None and google_answer.decision is not None)
        fetched: list[ProviderContact] = []
        token = ""
        if not full:
            try:
                fetched, token = self._fetch(port, cursor.sync_token)
            except CursorInvalid:
                log.info("contacts sync token expired; full sync", extra={"connection_id": connection_id})
                full = True
        if full:
            fetched, token = self._fetch(port, None)
        pending = inputs.pending
        stale = cursor.last_success_at is None or o._clock() - cursor.last_success_at > CURSOR_REFRESH
        if not full and not fetched and not pending:
            if cursor.last_error is not None or cursor.contacts_so_far is not None or stale:
                o._mirror.advance(
                    principal, connection_id, cursor, token or cursor.sync_token or "", cursor.group, False
                )
            return ContactSyncOutcome(full=False)
        self.deleting = {c.contact_id for c in pending if c.deleted}
        self.intents = o._mirror.intents(principal)
        self.mirror = {name: m for (_, name), m in o._mirror.contacts(principal, connection_id).items()}
        self.linked_before = sum(1 for m in self.mirror.values() if m.contact_id)
        group = cursor.group or port.ensure_group(o._group_name).resource_name
        try:
            self._google_side(port, fetched, full)
            done = self._crm_side(port, pending, group, push_all=first)
            self._claim_gained()
        except (ProviderError, Conflict):
            # What was applied stays applied (the CRM writes are made): the mirror keeps up
            # with them, so the re-run merges against the state both sides reached. The
            # cursor, the marks and the candidates wait for a run that completes.
            try:
                self._save_mirror()
            except Exception:
                log.exception("mirror of a failed contacts sync not saved", extra={"connection_id": connection_id})
            raise
        self._save_mirror()
        self._settle_intents()
        offered = self._candidates()
        o._mirror.clear_pending(principal, done)
        self._settle_guard(full)
        o._mirror.advance(principal, connection_id, cursor, token, group, full)
        return ContactSyncOutcome(
            full=full,
            fetched=len(fetched),
            created=self.created,
            updated=self.updated,
            applied=self.applied,
            deleted=self.deleted,
            offered=offered,
        )

    def _settle_intents(self) -> None:
        """Drop the create intents older than any propagation delay. Not sooner, even once the
        contact is linked: a second copy may still show after the contact is deleted."""
        if not self.intents:
            return
        now = self.o._clock()
        done = [cid for cid, at in self.intents.items() if now - at > INTENT_KEPT]
        if done:
            self.o._mirror.drop_intents(self.principal, done)

    def _claim_gained(self) -> None:
        """Google contacts still free (not ours, linked to none) that match an email or phone a
        CRM contact gained in this run (a merge from its Google twin) are that contact's now:
        never offered while they match it."""
        if not self.gained:
            return
        for m in list(self.mirror.values()):
            if m.contact_id is None and m.key is None:
                keys = [*m.emails, *(p.key for p in m.phones)]
                owner = next((self.gained[k] for k in keys if k in self.gained), None)
                if owner is not None:
                    self._put(replace(m, contact_id=owner))

    def _google_deletions_held(self) -> bool:
        """Google-side deletions wait for the user (held by this run or before, unanswered)."""
        held = self.held.get(GOOGLE_SIDE)
        return self.verdicts.get(GOOGLE_SIDE, (_APPLY, 0))[0] == _HOLD or (held is not None and held.decision is None)

    def _save_mirror(self) -> None:
        o = self.o
        o._mirror.save(self.principal, self.connection_id, [self.mirror[n] for n in self.dirty if n in self.mirror])
        o._mirror.remove(self.principal, self.connection_id, self.removed)
        self.dirty.clear()

    def _settle_guard(self, full: bool) -> None:
        """Record what each side held, or drop a record that was carried out or is moot."""
        for side in (GOOGLE_SIDE, CRM_SIDE):
            verdict, deletions = self.verdicts.get(side, (_APPLY, 0))
            held = self.held.get(side)
            complete = full if side == GOOGLE_SIDE else True
            if verdict == _HOLD:
                self.o._hold(self.principal, self.connection_id, side, held, deletions, self.linked_before, complete)
            elif held is not None and complete:
                # Judged completely (and any answer carried out): the record is done.
                self.o._held.clear(self.principal, held)

    def _fetch(self, port: ContactsPort, cursor: str | None) -> tuple[list[ProviderContact], str]:
        contacts: list[ProviderContact] = []
        token = ""
        for page in port.contact_pages(cursor=cursor):
            contacts.extend(page.contacts)
            token = page.cursor or token
            if cursor is None and page.cursor is None:
                self.o._mirror.record_progress(self.principal, self.connection_id, len(contacts))
        return contacts, token

    def _read(self, g: ProviderContact) -> MirroredContact:
        return MirroredContact(
            resource_name=g.resource_name,
            etag=g.etag,
            updated_at=g.updated_at,
            given_name=_norm(g.given_name),
            family_name=_norm(g.family_name),
            display_name=_norm(g.display_name),
            emails=_emails(g.emails),
            phones=self.o._read_phones(self.principal, g.phones) if g.phones else (),
            organization=_norm(g.organization),
            title=_norm(g.title),
            key=g.key,
        )

    def _put(self, m: MirroredContact) -> None:
        self.mirror[m.resource_name] = m
        self.dirty.add(m.resource_name)
        self.removed.discard(m.resource_name)

    def _drop(self, name: str) -> None:
        self.mirror.pop(name, None)
        self.dirty.discard(name)
        self.removed.add(name)

    # ------------------------------------------------------------------ Google → CRM
    def _google_side(self, port: ContactsPort, fetched: list[ProviderContact], full: bool) -> None:
        final = {g.resource_name: g for g in fetched}
        if full:
            for name in set(self.mirror) - {n for n, g in final.items() if not g.deleted}:
                final[name] = ProviderContact(resource_name=name, etag=None, deleted=True)
        read = {name: self._read(g) for name, g in final.items() if not g.deleted}
        # Matching by email or phone, for the unlinked ones, in batched reads.
        unlinked = [
            m for m in read.values() if not m.key and not (self.mirror.get(m.resource_name) or _NONE).contact_id
        ]
        owners = self.o._contacts.owners(
            self.principal,
            emails=[e for m in unlinked for e in m.emails],
            phones=[p for m in unlinked for p in m.phones],
        )
        # The guard: Google deleting linked contacts unlinks CRM contacts.
        doomed = {n for n, g in final.items() if g.deleted and (self.mirror.get(n) or _NONE).contact_id}
        verdict = self.o._verdict(self.held.get(GOOGLE_SIDE), len(doomed), self.linked_before, complete=full)
        self.verdicts[GOOGLE_SIDE] = (verdict, len(doomed))
        duplicates: list[str] = []
        orphaned: list[str] = []
        for name, g in final.items():
            base = self.mirror.get(name)
            if g.deleted:
                if name in doomed and verdict == _HOLD:
                    continue  # held: the pair stays linked and mirrored until the user answers
                if base is not None and base.contact_id:
                    if verdict == _KEEP and name in doomed and self._unlink(base.contact_id, name):
                        self.restore.add(base.contact_id)  # Ignore: pushed to Google anew
                    elif self._unlink(base.contact_id, name):
                        orphaned.append(base.contact_id)
                self._drop(name)
                continue
            m = read[name]
            contact_id = m.key or (base.contact_id if base else None)
            if contact_id is None:
                contact_id = next(
                    (owners[k] for k in [*m.emails, *(p.key for p in m.phones)] if k in owners),
                    None,
                )
            contact = self.o._contacts.get(self.principal, contact_id) if contact_id else None
            if contact is None:
                if base is not None and base.contact_id and base.contact_id in self.deleting:
                    # Deleted in the CRM: its deletion mark decides (deleted, unlinked or held).
                    self._put(replace(m, contact_id=base.contact_id, unlinked_by_crm=base.unlinked_by_crm))
                    continue
                unheard = m.key is not None and (m.key in self.deleting or m.key in self.intents)
                if unheard and not (base and base.contact_id):
                    # Ours, made for a CRM contact deleted before the sync heard of it (the
                    # create's answer was lost): deleted in Google like any contact we made.
                    duplicates.append(name)
                    continue
                self._put(replace(m, contact_id=None, unlinked_by_crm=bool(base and base.unlinked_by_crm)))
                continue
            link = contact.google
            if link is not None and link.connection_id == self.connection_id and link.resource_name != name:
                if m.key == contact.contact_id and link.resource_name in self.mirror:
                    # Made by us for this contact (its key), which is linked to another Google
                    # contact since (one of ours, or the person's own met meanwhile): a create
                    # whose answer was lost. A second copy of the person: deleted.
                    duplicates.append(name)
                    continue
                self._put(replace(m, contact_id=contact.contact_id))  # matched, linked to another
                continue
            # The mirror is the base of a three-way merge only for the pair it is linked as; a
            # Google duplicate of the person (matched to the contact, not its link) never agreed
            # with it: merged as a first link.
            agreed = link is not None and link.connection_id == self.connection_id and link.resource_name == name
            self._reconcile(
                port, contact, base if agreed and base and base.contact_id == contact.contact_id else None, m
            )
            self.handled.add(contact.contact_id)
        if duplicates:
            port.delete_many(duplicates)
            for name in duplicates:
                self._drop(name)
        # A CRM contact unlinked because Google deleted its twin, while Google still holds the
        # person again (a duplicate matched to it): that one becomes its link (a first link).
        for contact_id in dict.fromkeys(orphaned):
            twin = next(
                (m for n, m in sorted(self.mirror.items()) if m.contact_id == contact_id and not m.key),
                None,
            )
            contact = self.o._contacts.get(self.principal, contact_id) if twin else None
            if twin is not None and contact is not None and contact.google is None:
                self._reconcile(port, contact, None, twin)
                self.handled.add(contact_id)

    def _unlink(self, contact_id: str, name: str) -> bool:
        """Unlink the CRM contact from a Google contact; whether the CRM contact exists."""
        contact = self.o._contacts.get(self.principal, contact_id)
        if contact is None:
            return False
        if contact.google is None or contact.google.resource_name != name:
            return True
        self.o._contacts.update(self.principal, contact, contact.fields, google=None, pending=False)
        self.applied += 1
        return True

    def _reconcile(
        self, port: ContactsPort, contact: Contact, base: MirroredContact | None, google: MirroredContact
    ) -> bool:
        """Bring a linked pair to the merged fields on both sides. True when the Google
        contact turned out to be gone (deleted at Google, its deletion not yet listed): the
        pair is unlinked."""
        name = google.resource_name
        ours = contact.google.ours if contact.google and contact.google.resource_name == name else bool(google.key)
        for _ in range(_MERGE_ATTEMPTS):
            foreign = self._foreign(contact, google)
            seen = _with_foreign(crm_view(contact), google_view(google), foreign)
            result = merge(contact, base, google, seen)
            link = GoogleLink(self.connection_id, name, google.etag, ours)
            relink = contact.google is None or (contact.google.connection_id, contact.google.resource_name) != (
                self.connection_id,
                name,
            )
            if not _equal(result, seen) or relink:
                try:
                    contact = self._write_crm(contact, result, google, link if relink else None, foreign)
                except DuplicateContact as exc:
                    log.warning(
                        "a Google contact's email or phone belongs to another CRM contact; not applied",
                        # The owner's id, not the detail: it names the email or phone (contact data).
                        extra={"connection_id": self.connection_id, "owner_contact_id": exc.contact_id},
                    )
                    if base is not None:
                        self._put(replace(base, contact_id=contact.contact_id))
                    return False
            # The CRM holds the merge now; Google, until the update lands, what was read. That
            # is the base should the update's answer be lost (the run then fails, and saves the
            # mirror as far as it got): Google's side then reads as unchanged or as ours, never
            # as a later change overriding what the CRM changed since.
            self._put(replace(google, contact_id=contact.contact_id))
            if _equal(result, google_view(google)):
                return False
            try:
                try:
                    updated = port.update(name, google.etag or "", _draft(result))
                except PreconditionFailed:
                    base = google
                    google = self._read(port.get(name))
                    continue
            except ProviderNotFound:
                if self._google_deletions_held():
                    # Deleted at Google while Google's deletions wait for the user: the pair
                    # stays as it is, and the CRM's change waits with them (Ignore pushes it
                    # to Google anew; Apply unlinks).
                    self.waiting.add(contact.contact_id)
                    return False
                self._unlink(contact.contact_id, name)
                self._drop(name)
                return True
            self.updated += 1
            self._put(replace(self._read(updated), contact_id=contact.contact_id))
            return False
        raise Conflict("A Google contact kept changing while it was merged; the sync is retried.")

    def _foreign(self, contact: Contact, google: MirroredContact) -> set[str]:
        """The Google contact's emails and phones the CRM contact lacks that belong to another
        CRM contact (one lookup, only when Google has some the CRM contact lacks)."""
        mine = set(_keys(crm_view(contact)))
        extra_emails = [e for e in google.emails if e not in mine]
        extra_phones = [p for p in google.phones if p.key not in mine]
        if not extra_emails and not extra_phones:
            return set()
        owners = self.o._contacts.owners(self.principal, emails=extra_emails, phones=extra_phones)
        return {k for k, owner in owners.items() if owner != contact.contact_id}

    def _write_crm(
        self,
        contact: Contact,
        result: View,
        google: MirroredContact,
        link: GoogleLink | None,
        foreign: AbstractSet[str] = frozenset(),
    ) -> Contact:
        current = crm_view(contact)
        result = _without_foreign(result, foreign)
        fields = replace(
            contact.fields,
            given_name=contact.fields.given_name
            if _same("given_name", result["given_name"], current["given_name"])
            else result["given_name"],
            family_name=result["family_name"],
            emails=tuple(result["emails"]),
            phones=tuple(result["phones"]),
            organization=result["organization"],
            title=result["title"],
        )
        times = dict(contact.changed_at)
        at = google.updated_at or self.o._clock()
        for name in SYNCED_FIELDS:
            if not _same(name, result[name], current[name]):
                times[name] = at
        changed = fields != contact.fields
        if not changed and link is None:
            return contact
        if changed:
            self.applied += 1
        written = self.o._contacts.update(
            self.principal,
            contact,
            fields,
            google=link if link is not None else contact.google,
            changed_at=times,
            pending=False,
        )
        for key in set(_keys(crm_view(written))) - set(_keys(current)):
            self.gained[key] = written.contact_id
        return written

    # ------------------------------------------------------------------ CRM → Google
    def _crm_side(
        self, port: ContactsPort, pending: list[PendingChange], group: str, *, push_all: bool
    ) -> list[PendingChange]:
        """Push the CRM's changes; returns the marks that were carried out."""
        #: Free Google contacts (linked to no CRM contact, not ours) by email and phone.
        #: (And the Google duplicates of a CRM contact's person, matched to it but not linked.)
        by_key: dict[str, list[str]] = {}
        for m in self.mirror.values():
            if m.key is None:
                for k in [*m.emails, *(p.key for p in m.phones)]:
                    by_key.setdefault(k, []).append(m.resource_name)

        def claim(contact: Contact) -> list[str]:
            """The free Google contacts this CRM contact's emails and phones match: no longer
            candidates (every one of them, not only the first: Google may hold the person twice)."""
            view = crm_view(contact)
            names = list(
                dict.fromkeys(n for k in [*view["emails"], *(p.key for p in view["phones"])] for n in by_key.get(k, ()))
            )
            names = [n for n in names if self.mirror[n].contact_id in (None, contact.contact_id)]
            for name in names:
                if self.mirror[name].contact_id is None:
                    self._put(replace(self.mirror[name], contact_id=contact.contact_id))
            return names

        # The guard: the CRM deleting linked contacts we created deletes them in Google.
        doomed = {
            c.resource_name
            for c in pending
            if c.deleted and c.ours and c.connection_id == self.connection_id and c.resource_name in self.mirror
        }
        verdict = self.o._verdict(self.held.get(CRM_SIDE), len(doomed), self.linked_before, complete=True)
        self.verdicts[CRM_SIDE] = (verdict, len(doomed))
        kept: list[PendingChange] = []  # deletion marks held for the user: pushed later
        gone: list[str] = []
        todo: dict[str, Contact] = {}
        for change in pending:
            if change.deleted:
                name = change.resource_name
                if change.connection_id == self.connection_id and name:
                    if name in doomed and verdict == _HOLD:
                        kept.append(change)
                    elif change.ours and verdict != _KEEP:
                        gone.append(name)
                    elif name in self.mirror:
                        self._put(replace(self.mirror[name], contact_id=None, unlinked_by_crm=True))
                # Other Google contacts matched to the deleted contact (duplicates of that
                # person at Google) go with it: declined, like its twin, never orphaned.
                for other in list(self.mirror.values()):
                    if other.contact_id == change.contact_id and other.resource_name != name:
                        self._put(replace(other, contact_id=None, unlinked_by_crm=True))
                continue
            contact = self.o._contacts.get(self.principal, change.contact_id)
            if contact is None:
                continue
            if contact.contact_id in self.handled:
                claim(contact)  # reconciled by the fetch; its new emails or phones still count
                continue
            todo[contact.contact_id] = contact
        for contact_id in self.restore - self.handled:
            contact = self.o._contacts.get(self.principal, contact_id)
            if contact is not None:
                todo[contact.contact_id] = contact
        if push_all:
            cursor: str | None = None
            while True:
                page = self.o._contacts.page(self.principal, cursor, 200)
                for contact in page.items:
                    if contact.contact_id not in self.handled:
                        todo.setdefault(contact.contact_id, contact)
                cursor = page.next_cursor
                if cursor is None:
                    break
        creates: list[Contact] = []
        for contact in todo.values():
            link = contact.google
            linked = link is not None and link.connection_id == self.connection_id and link.resource_name in self.mirror
            # Google contacts that now match this CRM contact are no longer candidates.
            matches = claim(contact)
            if linked:
                assert link is not None
                twin = self.mirror[link.resource_name]
                self._reconcile(port, contact, twin, twin)
            elif matches:
                twin = self.mirror[matches[0]]
                if self._reconcile(port, contact, None, twin):
                    # The Google contact it matched was already deleted at Google: this CRM
                    # contact never had a twin there, so it gets one now.
                    fresh = self.o._contacts.get(self.principal, contact.contact_id)
                    if fresh is not None and fresh.google is None:
                        creates.append(fresh)
            elif link is None or link.connection_id != self.connection_id:
                creates.append(contact)
            # else: linked to a Google contact that is gone: unlinked by the fetch, or it will be.
        if gone:
            port.delete_many(gone)
            for name in gone:
                self._drop(name)
            self.deleted += len(gone)
        if creates:
            try:
                made = port.create([_draft(crm_view(c), key=c.contact_id) for c in creates])
                if made:
                    try:
                        port.add_members(
                            ContactGroup(resource_name=group, name=self.o._group_name), [p.resource_name for p in made]
                        )
                    except ProviderNotFound:
                        log.warning(
                            "a contact left before it joined the CRM group", extra={"connection_id": self.connection_id}
                        )
            except ProviderError:
                # Google may have made some of them (an answer lost): should their CRM contact
                # be deleted before the sync meets them, they are deleted then.
                self.o._mirror.note_intents(self.principal, [c.contact_id for c in creates], self.o._clock())
                raise
            for contact, person in zip(creates, made, strict=True):
                link = GoogleLink(self.connection_id, person.resource_name, person.etag, True)
                self.o._contacts.update(self.principal, contact, contact.fields, google=link, pending=False)
                self._put(replace(self._read(person), contact_id=contact.contact_id))
            self.created += len(made)
        return [c for c in pending if c not in kept and c.contact_id not in self.waiting]

    # ------------------------------------------------------------------ candidates
    def _candidates(self) -> int:
        """Rebuild the user's candidates from the mirror; returns how many are offered."""
        store = self.o._candidates
        principal = self.principal
        # The other accounts' mirrors from the table; this one's as the run left it (complete).
        everything = self.o._mirror.contacts(principal, besides=self.connection_id)
        for name, m in self.mirror.items():
            everything[(self.connection_id, name)] = m
        free = {k: m for k, m in everything.items() if m.contact_id is None and m.key is None}
        # Union by shared email.
        parent = {k: k for k in free}

        def find(k: tuple[str, str]) -> tuple[str, str]:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        first: dict[str, tuple[str, str]] = {}
        for k, m in free.items():
            for email in m.emails:
                if email in first:
                    parent[find(k)] = find(first[email])
                else:
                    first[email] = k
        groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for k in free:
            groups.setdefault(find(k), []).append(k)
        # The counts stored at the end are a snapshot as of this read (a status writer's
        # recount that began later wins over them).
        read_at = datetime.now(UTC)
        old = store.all(principal)
        old_by_member = {member: c for c in old for member in c.members}
        wanted: dict[str, Candidate] = {}
        for members in groups.values():
            members.sort()
            items = [free[k] for k in members]
            emails = tuple(dict.fromkeys(e for m in items for e in m.emails))
            phones = tuple(dict.fromkeys(p.e164 or p.raw for m in items for p in m.phones))
            named = next((m for m in items if m.given_name or m.family_name or m.display_name), items[0])
            cid = candidate_id(emails, *members[0])
            previous = [old_by_member[k] for k in members if k in old_by_member]
            keep = next((c for c in previous if c.candidate_id == cid), previous[0] if previous else None)
            status = CandidateStatus.DECLINED if any(m.unlinked_by_crm for m in items) else CandidateStatus.OFFERED
            candidate = Candidate(
                candidate_id=cid,
                status=keep.status if keep else status,
                given_name=named.given_name,
                family_name=named.family_name,
                display_name=named.display_name,
                emails=emails,
                phones=phones,
                organization=next((m.organization for m in items if m.organization), None),
                members=tuple(members),
                selected=keep.selected if keep else False,
                contact_type=keep.contact_type if keep else None,
                consent=keep.consent if keep else None,
            )
            wanted[cid] = candidate
        existing = {c.candidate_id: c for c in old}
        changed = [
            c
            for c in wanted.values()
            if c.candidate_id not in existing or _shown(existing[c.candidate_id]) != _shown(c)
        ]
        # A candidate whose id changed (its smallest email did) keeps its status and choices:
        # the new one is written whole with them, the old one goes.
        store.upsert(principal, changed, set(existing))
        store.remove(principal, [cid for cid in existing if cid not in wanted])
        counts = {status: sum(1 for c in wanted.values() if c.status is status) for status in CandidateStatus}
        store.store_counts(principal, counts, read_at)
        return counts[CandidateStatus.OFFERED]


_NONE = MirroredContact(resource_name="", etag=None)


def _shown(c: Candidate) -> tuple[Any, ...]:
    return (c.given_name, c.family_name, c.display_name, c.emails, c.phones, c.organization, c.members)
