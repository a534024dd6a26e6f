"""The contact import review (F10, seed 004 steps 6–10): the Google contacts the sync found
that match no CRM contact, offered page by page with a checkbox, a contact type and a consent
choice per row (kept server-side), and the three answers.

An answer applies to every candidate of the review, on every page, seen or not. The request
only records it (``REVIEW#import``, ``running``) and enqueues its job; the job
(:meth:`ContactReview.run_answer`, the sync worker, in the user's contacts FIFO group, so never
beside a contacts sync) declines in bulk the rows the answer declines (only rows that existed
when the user answered: contacts that appear in Google later are offered), then imports the
selected rows with its progress recorded, then marks the record ``done``. It is idempotent: a
double click, a retried request or a redelivered message declines and imports each row once (a
finished record is not run again; only rows still ``offered`` are declined, a row's contact id
is derived from the candidate, and only rows still ``offered`` and selected are imported)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from crmsync.dal.candidates import CandidatePage, CandidateStore
from crmsync.dal.contacts_sync import ContactsSyncStore
from crmsync.dal.gcontacts import ContactMirrorStore
from crmsync.dal.review import ReviewImportStore
from crmsync.domain import Principal
from crmsync.domain.contacts import (
    Candidate,
    CandidateStatus,
    Consent,
    GoogleLink,
    ReviewAction,
    ReviewImport,
)
from crmsync.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from crmsync.logic.contacts import ContactInput, Contacts
from crmsync.messaging.messages import ContactImportRequest

log = logging.getLogger(__name__)

#: Rows a page shows (seed: "use the 'Next' button to continue on to your next page").
PAGE_SIZE = 50
#: The most rows one "select all on the page" names.
MAX_SELECTION = 200
#: Progress is recorded after every this many imported rows.
PROGRESS_EVERY = 25


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class ContactReview:
    def __init__(
        self,
        *,
        candidates: CandidateStore,
        mirror: ContactMirrorStore,
        contacts: Contacts,
        imports: ReviewImportStore,
        sync: ContactsSyncStore,
        queue: Queue,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._candidates = candidates
        self._mirror = mirror
        self._contacts = contacts
        self._imports = imports
        self._sync = sync
        self._queue = queue
        self._clock = clock

    # ------------------------------------------------------------------ reading
    def page(
        self,
        principal: Principal,
        status: CandidateStatus = CandidateStatus.OFFERED,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> tuple[CandidatePage, ReviewImport | None]:
        """A page of candidates (``offered``, or ``declined`` for "Show declined") with the
        total, and the last answer's import progress."""
        if status is CandidateStatus.IMPORTED:
            raise InvalidRequest("Imported rows are contacts now: list /v1/contacts.")
        return self._candidates.page(principal, status, cursor, limit), self._imports.get(principal)

    # ------------------------------------------------------------------ choosing
    def choose(
        self,
        principal: Principal,
        candidate_id: str,
        *,
        selected: bool | None = None,
        contact_type: str | None = None,
        consent: Consent | None = None,
        clear: Sequence[str] = (),
    ) -> Candidate:
        """Record one row's checkbox, contact type and consent (``clear``: the choices, of
        ``contact_type`` and ``consent``, set back to not chosen)."""
        if contact_type is not None and contact_type not in {
            t.type_id for t in self._contacts.choices(principal).contact_types
        }:
            raise Unprocessable(f"Unknown contact type {contact_type[:40]!r}: see GET /v1/contact-types.")
        current = self._candidates.get(principal, candidate_id)
        if current is None or current.status is not CandidateStatus.OFFERED:
            raise NotFound("No such row in the review (it may have been imported, declined or removed).")
        chosen = self._candidates.set_choices(
            principal,
            candidate_id,
            selected=selected,
            contact_type=contact_type,
            consent=consent,
            clear=[name for name in clear if name in ("contact_type", "consent")],
        )
        if chosen is None:
            raise NotFound("No such row in the review (it may have been imported, declined or removed).")
        return chosen

    def select(self, principal: Principal, candidate_ids: Sequence[str], selected: bool) -> int:
        """Tick (or untick) the rows of a page ("select all"); how many were offered rows."""
        ids = list(dict.fromkeys(candidate_ids))
        if len(ids) > MAX_SELECTION:
            raise Unprocessable(f"Select at most {MAX_SELECTION} rows at a time (a page shows {PAGE_SIZE}).")
        done = 0
        for candidate_id in ids:
            current = self._candidates.get(principal, candidate_id)
            offered = current is not None and current.status is CandidateStatus.OFFERED
            if offered and self._candidates.set_choices(principal, candidate_id, selected=selected) is not None:
                done += 1
        return done

    # ------------------------------------------------------------------ answering
    def answer(self, principal: Principal, action: ReviewAction) -> ReviewImport:
        """One of the three answers, for every candidate of the review: recorded, and carried
        out in the background (the record stays ``running`` until its declines and imports are
        done). While one runs, the same answer again is that one (a double click: its job is
        queued again, harmless since the job runs an answer once, and the way out should the
        first send have failed); another answer waits (409)."""
        running = self._imports.get(principal)
        if running is not None and running.state == "running":
            if running.action is action:
                self._send(principal, running)
                return running
            raise Conflict("The previous answer is still being applied; answer again when it is done.")
        selected = (
            0
            if action is ReviewAction.NO_IMPORT
            else len(self._candidates.ids(principal, CandidateStatus.OFFERED, selected=True))
        )
        record = self._imports.start(principal, action, selected)
        log.info("review answered", extra={"action": action.value, "selected": selected})
        self._send(principal, record)
        return record

    def _send(self, principal: Principal, record: ReviewImport) -> None:
        self._queue.send(
            ContactImportRequest(
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                occasion=f"{record.action.value}@{record.started_at.isoformat()}",
            )
        )

    def restore(self, principal: Principal, candidate_ids: Sequence[str]) -> int:
        """Bring declined rows back into the review ("Show declined"); how many came back."""
        ids = list(dict.fromkeys(candidate_ids))
        if len(ids) > MAX_SELECTION:
            raise Unprocessable(f"Bring back at most {MAX_SELECTION} rows at a time.")
        back = [
            i
            for i in ids
            if (c := self._candidates.get(principal, i)) is not None and c.status is CandidateStatus.DECLINED
        ]
        restored = self._candidates.mark(principal, back, CandidateStatus.OFFERED)
        if restored:
            self._candidates.recount(principal)
        return restored

    # ------------------------------------------------------------------ the answer's job (worker)
    def run_answer(self, principal: Principal) -> ReviewImport | None:
        """Carry out the last answer, once: decline what it declines ("Proceed – No Import":
        every offered row; "Import Selected – Done": every offered row not selected; only rows
        created by the time of the answer), then import the selected rows, then finish the
        record. A record already ``done`` (a redelivered message) is left as it is."""
        record = self._imports.get(principal)
        if record is None or record.state != "running":
            return record
        if record.declined is None:
            declined = 0
            if record.action is not ReviewAction.IMPORT_LATER:
                declined = self._candidates.decline_offered(
                    principal,
                    created_by=record.started_at,
                    selected=None if record.action is ReviewAction.NO_IMPORT else False,
                )
            self._imports.declined(principal, declined)
            log.info("review answer: rows declined", extra={"action": record.action.value, "declined": declined})
        self._run_import(principal)
        return self._imports.get(principal)

    def _run_import(self, principal: Principal) -> None:
        """Import every row still offered and selected, each once; record the progress (and
        recount the candidates) every :data:`PROGRESS_EVERY` rows and at the end."""
        account = self._sync.get(principal).connection_id
        done = pending = 0
        ids = self._candidates.ids(principal, CandidateStatus.OFFERED, selected=True)
        for index, candidate_id in enumerate(ids, start=1):
            candidate = self._candidates.get(principal, candidate_id)
            if candidate is None or candidate.status is not CandidateStatus.OFFERED or not candidate.selected:
                continue
            try:
                self._import_one(principal, candidate, account)
            except (Unprocessable, Conflict) as exc:
                # Its fields cannot be a contact (e.g. an address Google took but we cannot
                # read): it stays offered, visibly, instead of stopping the rest.
                # Its slug, not its text: a duplicate's detail names an email or a phone.
                log.warning("a review row was not imported", extra={"reason": exc.slug})
                pending += 1
            else:
                done += 1
            if index % PROGRESS_EVERY == 0:
                self._candidates.recount(principal)
                self._imports.progress(principal, done, pending)
                done = pending = 0
        self._candidates.recount(principal)
        self._imports.progress(principal, done, pending, finished=True)

    def _import_one(self, principal: Principal, candidate: Candidate, account: str | None) -> None:
        members = sorted(candidate.members, key=lambda m: (m[0] != account, m))
        if not members:
            raise Unprocessable("The row stands for no Google contact any more.")
        connection_id, resource_name = members[0]
        mirrored = self._mirror.contact(principal, connection_id, resource_name)
        link = GoogleLink(connection_id, resource_name, mirrored.etag if mirrored else None, ours=False)
        given = ContactInput(
            given_name=candidate.given_name or candidate.display_name,
            family_name=candidate.family_name,
            emails=candidate.emails,
            phones=candidate.phones,
            organization=candidate.organization,
            contact_type=candidate.contact_type,
            consent=candidate.consent,
        )
        contact, _ = self._contacts.import_(
            principal,
            given,
            contact_id="g" + candidate.candidate_id,
            google=link,
            dated=mirrored.updated_at if mirrored else None,
        )
        # Every Google contact the row stands for is now that contact's (none is offered again).
        for conn, name in members:
            found = self._mirror.contact(principal, conn, name)
            if found is not None and found.contact_id != contact.contact_id:
                self._mirror.save(principal, conn, [replace(found, contact_id=contact.contact_id)])
        self._candidates.mark(principal, [candidate.candidate_id], CandidateStatus.IMPORTED)
