"""The contacts port: one connected account's address book ("My Contacts").

Shaped for Google People (PROVIDERS.md §2.4) and what issue 13's contacts sync needs:
a full listing that ends with an opaque cursor, incremental listings from that cursor
(deletions included), batch creates, etag-guarded updates (one or many), deletes (one or
many), and contact groups.

What a caller must know:

* **Writes reach incremental listings with a delay** (Google: "Writes may have a
  propagation delay of several minutes for sync requests"). An incremental listing is not
  a read-after-write: read a contact you just wrote with :meth:`ContactsPort.get`, and
  expect your own writes (and the user's) to come back in a later listing, not the next one
  (recognise ours by :attr:`ProviderContact.key`). A full listing is not delayed.
* **Which side changed last**: :attr:`ProviderContact.updated_at` is the provider's time of
  the contact's last change (Google: the ``CONTACT`` source's ``updateTime``), to compare
  with the CRM's change time when both sides changed.
* **Mutate sequentially per user**: Google asks for one mutation at a time per account;
  never write the same account's contacts from parallel workers.
* **Creates are not idempotent**: a create whose answer was lost may have happened. Each
  draft's ``key`` rides on the contact (its :attr:`ProviderContact.key`), so the next
  listing tells which of ours exist.
* **Cursors expire** (Google: 7 days after the full listing): :class:`CursorInvalid`
  means list in full again.

Every method raises only the neutral errors of :mod:`crmsync.ports.errors`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from crmsync.domain import StoredConnection
from crmsync.ports.errors import PreconditionFailed, ProviderNotFound

__all__ = [
    "BATCH_CREATE_LIMIT",
    "BATCH_DELETE_LIMIT",
    "BATCH_UPDATE_LIMIT",
    "ContactDraft",
    "ContactGroup",
    "ContactPage",
    "ContactUpdate",
    "ContactsAccess",
    "ContactsPort",
    "ProviderContact",
    "UpdateOutcome",
]

#: The most contacts one provider call creates (Google's ``batchCreateContacts``: 200).
#: :meth:`ContactsPort.create` splits larger batches itself.
BATCH_CREATE_LIMIT = 200
#: The most contacts one provider call updates (Google's ``batchUpdateContacts``: 200).
BATCH_UPDATE_LIMIT = 200
#: The most contacts one provider call deletes (Google's ``batchDeleteContacts``: 500).
BATCH_DELETE_LIMIT = 500


@dataclass(frozen=True)
class ProviderContact:
    """A contact as the provider holds it.

    ``etag`` is an opaque version for :meth:`ContactsPort.update`. ``key`` is the draft key
    we wrote it with (None: not made by us). ``groups`` are group resource names (Google's
    system group ``contactGroups/myContacts`` included). A deleted contact (incremental
    listings only) carries its resource name and ``deleted=True``, nothing else.
    """

    resource_name: str
    etag: str | None
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    organization: str | None = None
    title: str | None = None
    groups: tuple[str, ...] = ()
    key: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True)
class ContactDraft:
    """A contact as the CRM wants it. On update every field is replaced (an empty one is
    cleared). ``key`` (the CRM contact id) marks the contact as ours; it is kept by updates
    that leave it None."""

    given_name: str | None = None
    family_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    organization: str | None = None
    title: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class ContactUpdate:
    """One update of :meth:`ContactsPort.update_many`: replace the contact's fields with
    ``draft`` if it is still at ``etag``."""

    resource_name: str
    etag: str
    draft: ContactDraft


#: What :meth:`ContactsPort.update_many` says of one update: the updated contact, or why it
#: was not applied (stale etag: get, merge, update again; gone: the contact was deleted).
UpdateOutcome = ProviderContact | PreconditionFailed | ProviderNotFound


@dataclass(frozen=True)
class ContactPage:
    """One page of a listing; ``cursor`` is set on the last page only: where the next
    incremental listing starts."""

    contacts: list[ProviderContact]
    cursor: str | None


@dataclass(frozen=True)
class ContactGroup:
    """A contact group (a label in Google Contacts)."""

    resource_name: str
    name: str


class ContactsPort(Protocol):
    """The address book of one connected account. Raises ``CursorInvalid``,
    ``ProviderNotFound``, ``PreconditionFailed``, ``ProviderDuplicate``, ``RateLimited``,
    ``AuthRevoked``, or a ``ProviderError`` that says whether retrying helps."""

    def contact_pages(self, *, cursor: str | None) -> Iterator[ContactPage]:
        """Every contact (``cursor`` None: a full listing, live contacts only), or what
        changed since ``cursor`` (deleted ones flagged). The last page carries the next
        cursor. ``CursorInvalid``: the cursor expired; list in full. ``RateLimited`` can
        come on the first page of a full listing (Google's fixed quota)."""
        ...

    def get(self, resource_name: str) -> ProviderContact:
        """One live contact; ``ProviderNotFound`` if it is gone."""
        ...

    def create(self, drafts: Sequence[ContactDraft]) -> list[ProviderContact]:
        """Create the contacts in "My Contacts", in order, ``BATCH_CREATE_LIMIT`` per call.
        Not idempotent (see the module); an error after the first batch leaves the earlier
        batches created."""
        ...

    def update(self, resource_name: str, etag: str, draft: ContactDraft) -> ProviderContact:
        """Replace the contact's fields if it is still at ``etag``. ``PreconditionFailed``:
        it changed since; :meth:`get` it, merge, retry with the new etag.
        ``ProviderNotFound``: it is gone. Group memberships are kept."""
        ...

    def update_many(self, updates: Sequence[ContactUpdate]) -> list[UpdateOutcome]:
        """Many :meth:`update` in ``BATCH_UPDATE_LIMIT``-sized provider calls; one outcome
        per update, in order. A stale etag or a deleted contact does not fail the others:
        its outcome is a ``PreconditionFailed`` (get it, merge, :meth:`update` it) or a
        ``ProviderNotFound``, and it was not changed. (Google fails a whole batch when one
        contact is stale, naming it; the adapter sends the rest again.) A resource name
        twice → ``ProviderError`` before any call. Any other error is raised; calls made
        before it stay applied."""
        ...

    def delete(self, resource_name: str) -> None:
        """Delete the contact; ``ProviderNotFound`` if it is already gone."""
        ...

    def delete_many(self, resource_names: Sequence[str]) -> list[str]:
        """Delete the contacts in ``BATCH_DELETE_LIMIT``-sized provider calls (a name given
        twice counts once). Returns the resource names that were already gone (in the order
        given); the rest are deleted. An error is raised as is; calls made before it stay
        applied."""
        ...

    def ensure_group(self, name: str) -> ContactGroup:
        """The user's contact group named ``name``, created if missing (idempotent)."""
        ...

    def add_members(self, group: ContactGroup, resource_names: Sequence[str]) -> None:
        """Put contacts in the group (already members stay). Each changed contact gets a new
        etag. ``ProviderNotFound`` if the group or one of the contacts is gone (the others
        are added)."""
        ...


class ContactsAccess(Protocol):
    """Opens the contacts port of a stored connection, whatever its provider (the composition
    root decrypts its credential and picks the adapter)."""

    def contacts(self, stored: StoredConnection) -> ContactsPort: ...
