"""``FakeContacts``: the contacts port in memory, with Google People's listing rules
(a cursor on the last page only, incremental listings with deletions flagged, expiring
cursors, etag-guarded updates, batch limits, the propagation delay of writes to incremental
listings), and controls to act as the user in Google Contacts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from crmsync.ports.contacts import (
    BATCH_DELETE_LIMIT,
    BATCH_UPDATE_LIMIT,
    ContactDraft,
    ContactGroup,
    ContactPage,
    ContactUpdate,
    ProviderContact,
    UpdateOutcome,
)
from crmsync.ports.errors import CursorInvalid, PreconditionFailed, ProviderError, ProviderNotFound
from tests.support.clock import now

MY_CONTACTS = "contactGroups/myContacts"


@dataclass
class _Entry:
    contact: ProviderContact
    seq: int


class FakeContacts:
    """One account's address book. ``page_size`` as :class:`GooglePeople`'s."""

    def __init__(self, *, page_size: int = 1000) -> None:
        self._page_size = page_size
        self._entries: dict[str, _Entry] = {}
        self._groups: dict[str, ContactGroup] = {}
        self._seq = 0
        self._ids = itertools.count(1)
        self._cursors: dict[str, int] = {}
        self._expired: set[str] = set()
        self._clock_offset = timedelta(0)
        self._propagation = timedelta(0)
        #: Every call made through the port, by method name (what a test may assert on);
        #: update_many and delete_many once per provider-sized batch.
        self.calls: list[str] = []

    # ------------------------------------------------------------------ internals
    def _stamp(self, contact: ProviderContact) -> ProviderContact:
        self._seq += 1
        stamped = replace(contact, etag=f"#e{self._seq}", updated_at=self._now())
        self._entries[contact.resource_name] = _Entry(stamped, self._seq)
        return stamped

    def _now(self) -> datetime:
        return now() + self._clock_offset

    def _propagated(self, entry: _Entry) -> bool:
        written = entry.contact.updated_at
        return written is None or self._now() >= written + self._propagation

    def _live(self, resource_name: str) -> ProviderContact:
        entry = self._entries.get(resource_name)
        if entry is None or entry.contact.deleted:
            raise ProviderNotFound("contacts: not found.")
        return entry.contact

    @staticmethod
    def _apply(contact: ProviderContact, draft: ContactDraft) -> ProviderContact:
        name = " ".join(p for p in (draft.given_name, draft.family_name) if p) or None
        return replace(
            contact,
            given_name=draft.given_name,
            family_name=draft.family_name,
            display_name=name,
            emails=tuple(draft.emails),
            phones=tuple(draft.phones),
            organization=draft.organization,
            title=draft.title,
            key=draft.key if draft.key is not None else contact.key,
        )

    def _new(self, draft: ContactDraft) -> ProviderContact:
        blank = ProviderContact(resource_name=f"people/c{next(self._ids)}", etag=None, groups=(MY_CONTACTS,))
        return self._stamp(self._apply(blank, draft))

    # ------------------------------------------------------------------ the port
    def contact_pages(self, *, cursor: str | None) -> Iterator[ContactPage]:
        self.calls.append("contact_pages")
        if cursor is not None:
            if cursor not in self._cursors or cursor in self._expired:
                raise CursorInvalid()
            since = self._cursors[cursor]
            entries = [e for e in self._entries.values() if e.seq > since]
            # As the emulator: the listing ends before the first write still propagating, and
            # its cursor starts there.
            pending = [e.seq for e in entries if not self._propagated(e)]
            snapshot = min(pending) - 1 if pending else self._seq
            entries = [e for e in entries if e.seq <= snapshot]
        else:
            entries = [e for e in self._entries.values() if not e.contact.deleted]
            snapshot = self._seq
        entries.sort(key=lambda e: e.seq)
        contacts = [
            ProviderContact(e.contact.resource_name, e.contact.etag, deleted=True) if e.contact.deleted else e.contact
            for e in entries
        ]
        chunks = [contacts[i : i + self._page_size] for i in range(0, len(contacts), self._page_size)] or [[]]
        for index, chunk in enumerate(chunks):
            if index < len(chunks) - 1:
                yield ContactPage(chunk, None)
            else:
                token = f"sync-{len(self._cursors) + 1}"
                self._cursors[token] = snapshot
                yield ContactPage(chunk, token)

    def get(self, resource_name: str) -> ProviderContact:
        self.calls.append("get")
        return self._live(resource_name)

    def create(self, drafts: Sequence[ContactDraft]) -> list[ProviderContact]:
        self.calls.append("create")
        return [self._new(d) for d in drafts]

    def update(self, resource_name: str, etag: str, draft: ContactDraft) -> ProviderContact:
        self.calls.append("update")
        contact = self._live(resource_name)
        if contact.etag != etag:
            raise PreconditionFailed("contacts.update: the contact changed.")
        return self._stamp(self._apply(contact, draft))

    def update_many(self, updates: Sequence[ContactUpdate]) -> list[UpdateOutcome]:
        names = [u.resource_name for u in updates]
        if len(set(names)) != len(names):
            raise ProviderError("people.batchUpdateContacts: a contact is named twice in one batch.", retryable=False)
        outcomes: list[UpdateOutcome] = []
        for index, update in enumerate(updates):
            if index % BATCH_UPDATE_LIMIT == 0:
                self.calls.append("update_many")
            entry = self._entries.get(update.resource_name)
            if entry is None or entry.contact.deleted:
                outcomes.append(ProviderNotFound("contacts.update_many: not found."))
            elif entry.contact.etag != update.etag:
                outcomes.append(PreconditionFailed("contacts.update_many: the contact changed."))
            else:
                outcomes.append(self._stamp(self._apply(entry.contact, update.draft)))
        return outcomes

    def delete(self, resource_name: str) -> None:
        self.calls.append("delete")
        self._stamp(replace(self._live(resource_name), deleted=True))

    def delete_many(self, resource_names: Sequence[str]) -> list[str]:
        names = list(dict.fromkeys(resource_names))
        gone: list[str] = []
        for index, name in enumerate(names):
            if index % BATCH_DELETE_LIMIT == 0:
                self.calls.append("delete_many")
            entry = self._entries.get(name)
            if entry is None or entry.contact.deleted:
                gone.append(name)
            else:
                self._stamp(replace(entry.contact, deleted=True))
        return gone

    def ensure_group(self, name: str) -> ContactGroup:
        self.calls.append("ensure_group")
        if not name.strip():
            raise ProviderError("contactGroups.create: a group needs a name.", retryable=False)
        found = next((g for g in self._groups.values() if g.name == name), None)
        if found is None:
            found = ContactGroup(f"contactGroups/g{next(self._ids)}", name)
            self._groups[found.resource_name] = found
        return found

    def add_members(self, group: ContactGroup, resource_names: Sequence[str]) -> None:
        self.calls.append("add_members")
        if group.resource_name not in self._groups:
            raise ProviderNotFound("contactGroups.members.modify: no such group.")
        missing = 0
        for resource_name in resource_names:
            entry = self._entries.get(resource_name)
            if entry is None or entry.contact.deleted:
                missing += 1
            elif group.resource_name not in entry.contact.groups:
                self._stamp(replace(entry.contact, groups=(*entry.contact.groups, group.resource_name)))
        if missing:
            raise ProviderNotFound(f"contactGroups.members.modify: {missing} contact(s) not found.")

    # ------------------------------------------------------------------ acting as the user
    def user_add(self, draft: ContactDraft) -> ProviderContact:
        """The user adds a contact in Google Contacts."""
        return self._new(draft)

    def user_edit(self, resource_name: str, draft: ContactDraft) -> ProviderContact:
        """The user edits a contact (a new etag; the next incremental listing has it)."""
        return self._stamp(self._apply(self._live(resource_name), draft))

    def user_delete(self, resource_name: str) -> None:
        """The user deletes a contact (the next incremental listing flags it)."""
        self._stamp(replace(self._live(resource_name), deleted=True))

    def set_propagation(self, seconds: float) -> None:
        """Writes (ours and the user's) reach incremental listings ``seconds`` after they are
        made, on the fake's clock (the emulator's ``POST /_emulator/people/propagation``);
        0 (the default) turns it off, releasing what was held back."""
        if seconds < 0:
            raise ValueError("the propagation delay cannot be negative")
        self._propagation = timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (the emulator's ``POST /_emulator/clock/advance``)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._clock_offset += timedelta(seconds=seconds)

    def expire_cursors(self) -> None:
        """Every cursor handed out so far expires (Google: 7 days after the full listing)."""
        self._expired |= set(self._cursors)
