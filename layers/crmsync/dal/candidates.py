"""Import candidates (F10): Google contacts the import review offers, under the user's
partition (sk ``CANDIDATE#<id>``, docs/DATA.md).

The contacts sync (:mod:`crmsync.sync.contact_sync`) makes and removes candidates
(:meth:`CandidateStore.upsert`, :meth:`CandidateStore.remove`); the import review reads them
and records the user's choices and answers through the rest of this store:

* :meth:`CandidateStore.page` — a page of ``offered`` (or ``declined``) candidates in a stable
  order (by candidate id) with the total, for "N Contacts Found" and Next/Previous;
* :meth:`CandidateStore.get`, :meth:`CandidateStore.set_choices` — one row, and its checkbox,
  contact type and consent, kept when the user pages on, leaves or reloads;
* :meth:`CandidateStore.ids` — every candidate id with a status (and selection), for the three
  actions, which apply to every candidate of the review, seen or not;
* :meth:`CandidateStore.mark` — declined, imported, or
  offered again ("Show declined" → bring back); :meth:`CandidateStore.decline_offered` — an
  answer's declines, in bulk;
* :meth:`CandidateStore.delete_connection` — disconnect.

The totals come from one counts item (sk ``CANDCOUNT``, :meth:`CandidateStore.counts`), not a
read of every candidate: the sync stores what its rebuild knows
(:meth:`CandidateStore.store_counts`); every other status writer calls
:meth:`CandidateStore.recount` once after its batch (:meth:`CandidateStore.mark` does not: its
callers recount after their batch).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from crmsync.dal import condition_failed
from crmsync.dal.versioned import update_unread
from crmsync.domain import Principal
from crmsync.domain.contacts import Candidate, CandidateStatus, Consent
from crmsync.models.gcontacts import (
    CANDIDATE_COUNTS_SK,
    CANDIDATE_SK_PREFIX,
    CandidateCountsItem,
    CandidateItem,
)
from crmsync.models.keys import user_pk

#: The largest page :meth:`CandidateStore.page` returns.
MAX_PAGE = 200


@dataclass(frozen=True)
class CandidatePage:
    """``cursor``: where the next page starts (None: this is the last); ``total``: how many
    candidates have the status, on every page."""

    candidates: list[Candidate]
    cursor: str | None
    total: int


def _member(value: str) -> tuple[str, str]:
    connection_id, _, resource_name = value.partition("#")
    return connection_id, resource_name


def candidate_from_item(item: CandidateItem) -> Candidate:
    return Candidate(
        candidate_id=item.sk[len(CANDIDATE_SK_PREFIX) :],
        status=CandidateStatus(item.status),
        given_name=item.given_name,
        family_name=item.family_name,
        display_name=item.display_name,
        emails=tuple(str(e) for e in item.emails or ()),
        phones=tuple(str(p) for p in item.phones or ()),
        organization=item.organization,
        members=tuple(_member(str(m)) for m in item.members or ()),
        selected=bool(item.selected),
        contact_type=item.contact_type,
        consent=Consent(item.consent) if item.consent else None,
        updated_at=item.updated_at,
        version=int(item.version or 0),
    )


def _encode(sk: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": sk}).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> str | None:
    """The sort key a page cursor continues after; None for none or a cursor not ours (the
    first page is served)."""
    if not cursor or len(cursor) > 600:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["after"]
    except (ValueError, KeyError, TypeError):
        return None
    return after if isinstance(after, str) and after.startswith(CANDIDATE_SK_PREFIX) else None


class CandidateStore:
    # ------------------------------------------------------------------ the review's reads
    def page(
        self,
        principal: Principal,
        status: CandidateStatus = CandidateStatus.OFFERED,
        cursor: str | None = None,
        limit: int = 50,
    ) -> CandidatePage:
        """Candidates with ``status`` in a stable order (by id), ``limit`` (1..200) a page,
        with the total. A cursor that is not one of ours serves the first page."""
        limit = max(1, min(limit, MAX_PAGE))
        pk = user_pk(principal.tenant_id, principal.user_id)
        after = _decode(cursor)
        items = list(
            CandidateItem.query(
                pk,
                CandidateItem.sk.startswith(CANDIDATE_SK_PREFIX),
                filter_condition=CandidateItem.status == status.value,
                consistent_read=True,
                limit=limit + 1,
                last_evaluated_key={"pk": {"S": pk}, "sk": {"S": after}} if after else None,
            )
        )
        more = len(items) > limit
        items = items[:limit]
        return CandidatePage(
            [candidate_from_item(i) for i in items],
            _encode(items[-1].sk) if more else None,
            self.count(principal, status),
        )

    def count(self, principal: Principal, status: CandidateStatus = CandidateStatus.OFFERED) -> int:
        """How many candidates have ``status`` ("N Contacts Found"), from the counts item."""
        return self.counts(principal)[CandidateStatus(status)]

    def counts(self, principal: Principal) -> dict[CandidateStatus, int]:
        """How many candidates have each status: the counts item, read with one consistent
        GetItem; recounted and stored when missing (candidates stored before it existed)."""
        try:
            item = CandidateCountsItem.get(
                user_pk(principal.tenant_id, principal.user_id), CANDIDATE_COUNTS_SK, consistent_read=True
            )
        except DoesNotExist:
            return self.recount(principal)
        return {
            CandidateStatus.OFFERED: int(item.offered),
            CandidateStatus.DECLINED: int(item.declined),
            CandidateStatus.IMPORTED: int(item.imported),
        }

    def recount(self, principal: Principal) -> dict[CandidateStatus, int]:
        """Count every candidate's status with one query (``status`` only) and store the
        counts as of when the query began (never over a newer snapshot). Returns the counts."""
        began = datetime.now(UTC)
        tally = dict.fromkeys(CandidateStatus, 0)
        for item in CandidateItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            CandidateItem.sk.startswith(CANDIDATE_SK_PREFIX),
            consistent_read=True,
            attributes_to_get=["status"],
        ):
            tally[CandidateStatus(item.status)] += 1
        self.store_counts(principal, tally, began)
        return tally

    def store_counts(self, principal: Principal, counts: Mapping[CandidateStatus, int], as_of: datetime) -> bool:
        """Store the counts taken at ``as_of``, unless a snapshot taken later is stored
        already (False then: that one is newer, and stays)."""
        item = CandidateCountsItem(
            user_pk(principal.tenant_id, principal.user_id),
            CANDIDATE_COUNTS_SK,
            offered=int(counts.get(CandidateStatus.OFFERED, 0)),
            declined=int(counts.get(CandidateStatus.DECLINED, 0)),
            imported=int(counts.get(CandidateStatus.IMPORTED, 0)),
            as_of=as_of,
        )
        try:
            item.save(condition=CandidateCountsItem.as_of.does_not_exist() | (CandidateCountsItem.as_of < as_of))
        except PutError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def get(self, principal: Principal, candidate_id: str) -> Candidate | None:
        if not _plausible(candidate_id):
            return None
        try:
            item = CandidateItem.get(
                user_pk(principal.tenant_id, principal.user_id),
                CANDIDATE_SK_PREFIX + candidate_id,
                consistent_read=True,
            )
        except DoesNotExist:
            return None
        return candidate_from_item(item)

    def all(self, principal: Principal) -> list[Candidate]:
        """Every candidate of the user, whatever its status."""
        items = CandidateItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            CandidateItem.sk.startswith(CANDIDATE_SK_PREFIX),
            consistent_read=True,
        )
        return [candidate_from_item(i) for i in items]

    def ids(self, principal: Principal, status: CandidateStatus, *, selected: bool | None = None) -> list[str]:
        """The ids of every candidate with ``status`` (and, unless None, that selection): what
        an action of the review applies to, on every page, seen or not."""
        condition = CandidateItem.status == status.value
        if selected is not None:
            condition &= (CandidateItem.selected == True) if selected else (CandidateItem.selected != True)  # noqa: E712
        items = CandidateItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            CandidateItem.sk.startswith(CANDIDATE_SK_PREFIX),
            filter_condition=condition,
            consistent_read=True,
            attributes_to_get=["sk"],
        )
        return [i.sk[len(CANDIDATE_SK_PREFIX) :] for i in items]

    # ------------------------------------------------------------------ the review's writes
    def set_choices(
        self,
        principal: Principal,
        candidate_id: str,
        *,
        selected: bool | None = None,
        contact_type: str | None = None,
        consent: Consent | None = None,
        clear: Iterable[str] = (),
    ) -> Candidate | None:
        """Record the row's checkbox, contact type and consent (None: leave as is; named in
        ``clear``: back to not chosen); the caller checks the type against the tenant's. None
        when the candidate is gone (the sync removed it: it was deleted in Google or now matches
        a CRM contact)."""
        actions: list[Any] = [CandidateItem.updated_at.set(datetime.now(UTC))]
        clear = set(clear)
        if selected is not None:
            actions.append(CandidateItem.selected.set(selected))
        if contact_type is not None:
            actions.append(CandidateItem.contact_type.set(contact_type))
        elif "contact_type" in clear:
            actions.append(CandidateItem.contact_type.remove())
        if consent is not None:
            actions.append(CandidateItem.consent.set(Consent(consent).value))
        elif "consent" in clear:
            actions.append(CandidateItem.consent.remove())
        if not self._update(principal, candidate_id, actions):
            return None
        return self.get(principal, candidate_id)

    def mark(self, principal: Principal, candidate_ids: Iterable[str], status: CandidateStatus) -> int:
        """Give these candidates ``status`` (declined, imported, or offered again); returns how
        many were marked (gone ones are skipped). Idempotent."""
        marked = 0
        for candidate_id in dict.fromkeys(candidate_ids):
            if self._update(
                principal,
                candidate_id,
                [
                    CandidateItem.status.set(CandidateStatus(status).value),
                    CandidateItem.updated_at.set(datetime.now(UTC)),
                ],
            ):
                marked += 1
        return marked

    def decline_offered(self, principal: Principal, *, created_by: datetime, selected: bool | None = None) -> int:
        """An answer's declines, in bulk: every ``offered`` candidate (with that selection,
        unless None) created at or before ``created_by`` (rows without ``created_at`` predate
        the field: they count) is written back ``declined`` (version + 1) with BatchWriteItem,
        25 a request, instead of one UpdateItem each. Returns how many; then one recount.

        BatchWriteItem takes no condition: a single-row write landing between this query and
        the put of its row is lost. Only the review's own row writes can be concurrent (the
        sync runs in the same FIFO group as the job that calls this, never beside it): a
        checkbox, contact type or consent set on a row being declined anyway, or a row brought
        back ("restore" — it was declined, so not among the rows read here, unless it was
        offered and declined again in between). Nothing the sync owns can be lost for long:
        the next sync compares every row's shown fields and members with the mirror and
        rewrites the ones that differ, and removes rows that no longer stand for a contact.
        Idempotent: a second run finds the rows no longer offered."""
        condition = (CandidateItem.status == CandidateStatus.OFFERED.value) & (
            CandidateItem.created_at.does_not_exist() | (CandidateItem.created_at <= created_by)
        )
        if selected is not None:
            condition &= (CandidateItem.selected == True) if selected else (CandidateItem.selected != True)  # noqa: E712
        now = datetime.now(UTC)
        declined = 0
        with CandidateItem.batch_write() as batch:
            for item in CandidateItem.query(
                user_pk(principal.tenant_id, principal.user_id),
                CandidateItem.sk.startswith(CANDIDATE_SK_PREFIX),
                filter_condition=condition,
                consistent_read=True,
            ):
                item.status = CandidateStatus.DECLINED.value
                item.updated_at = now
                item.version = int(item.version or 0) + 1
                batch.save(item)
                declined += 1
        self.recount(principal)
        return declined

    def _update(self, principal: Principal, candidate_id: str, actions: list[Any]) -> bool:
        if not _plausible(candidate_id):
            return False
        try:
            update_unread(
                CandidateItem,
                user_pk(principal.tenant_id, principal.user_id),
                CANDIDATE_SK_PREFIX + candidate_id,
                actions,
                condition=CandidateItem.sk.exists(),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ the sync's writes
    def upsert(self, principal: Principal, candidates: Sequence[Candidate], existing: set[str]) -> None:
        """Write what the sync found: new candidates whole (``existing``: the ids already
        stored), existing ones' shown fields and members only (the user's status and choices
        stay)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        now = datetime.now(UTC)
        new = [c for c in candidates if c.candidate_id not in existing]
        with CandidateItem.batch_write() as batch:
            for c in new:
                batch.save(
                    CandidateItem(
                        pk,
                        CANDIDATE_SK_PREFIX + c.candidate_id,
                        status=c.status.value,
                        given_name=c.given_name,
                        family_name=c.family_name,
                        display_name=c.display_name,
                        emails=list(c.emails) or None,
                        phones=list(c.phones) or None,
                        organization=c.organization,
                        members=[f"{conn}#{name}" for conn, name in c.members],
                        selected=c.selected,
                        contact_type=c.contact_type,
                        consent=c.consent.value if c.consent else None,
                        updated_at=now,
                        created_at=now,
                        version=1,
                    )
                )
        for c in candidates:
            if c.candidate_id not in existing:
                continue
            self._update(
                principal,
                c.candidate_id,
                [
                    CandidateItem.given_name.set(c.given_name) if c.given_name else CandidateItem.given_name.remove(),
                    CandidateItem.family_name.set(c.family_name)
                    if c.family_name
                    else CandidateItem.family_name.remove(),
                    CandidateItem.display_name.set(c.display_name)
                    if c.display_name
                    else CandidateItem.display_name.remove(),
                    CandidateItem.emails.set(list(c.emails)) if c.emails else CandidateItem.emails.remove(),  # type: ignore[arg-type]
                    CandidateItem.phones.set(list(c.phones)) if c.phones else CandidateItem.phones.remove(),  # type: ignore[arg-type]
                    CandidateItem.organization.set(c.organization)
                    if c.organization
                    else CandidateItem.organization.remove(),
                    CandidateItem.members.set([f"{conn}#{name}" for conn, name in c.members]),  # type: ignore[misc]
                    CandidateItem.updated_at.set(now),
                ],
            )

    def remove(self, principal: Principal, candidate_ids: Iterable[str]) -> int:
        pk = user_pk(principal.tenant_id, principal.user_id)
        count = 0
        with CandidateItem.batch_write() as batch:
            for candidate_id in dict.fromkeys(candidate_ids):
                count += 1
                batch.delete(CandidateItem(pk, CANDIDATE_SK_PREFIX + candidate_id))
        return count

    def delete_connection(self, principal: Principal, connection_id: str) -> int:
        """Disconnect: every candidate loses the connection's members; those left with none
        are deleted (declined ones too); then one recount. Returns how many were deleted."""
        gone: list[str] = []
        for c in self.all(principal):
            kept = tuple(m for m in c.members if m[0] != connection_id)
            if not kept:
                gone.append(c.candidate_id)
            elif len(kept) != len(c.members):
                self._update(
                    principal,
                    c.candidate_id,
                    [CandidateItem.members.set([f"{conn}#{name}" for conn, name in kept])],  # type: ignore[misc]
                )
        removed = self.remove(principal, gone)
        self.recount(principal)
        return removed


def _plausible(candidate_id: str) -> bool:
    return 0 < len(candidate_id) <= 64 and candidate_id.isascii() and candidate_id.isalnum()
