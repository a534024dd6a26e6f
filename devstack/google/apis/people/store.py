"""The People store: each account's contacts and "other contacts", their change log and
the opaque page and sync tokens handed out for them.

Every write gets the next number of the account's change sequence; a sync token remembers
the sequence number it was issued at, so an incremental sync is "every person of that
collection whose sequence number is higher" — deletions included, as tombstones.

Google: "Writes may have a propagation delay of several minutes for sync requests." The
emulator has none by default; :meth:`PeopleStore.configure_propagation` sets one (for every
account or one account), on the emulator clock: a write then reaches incremental listings
only once its delay has passed, while people.get/getBatchGet and full listings see it at once.

All methods take ``state.lock`` (an RLock shared by the whole emulator).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack.google.apis.people.demo import DEMO_DATA
from devstack.google.state import State

#: The two collections of a user's address book.
CONNECTIONS = "connections"
OTHER_CONTACTS = "otherContacts"
COLLECTIONS = (CONNECTIONS, OTHER_CONTACTS)

#: "Sync tokens expire 7 days after the full sync" (people.connections.list reference).
SYNC_TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600

_SOURCE_TYPE = {CONNECTIONS: "CONTACT", OTHER_CONTACTS: "OTHER_CONTACT"}
_PREFIX = {CONNECTIONS: "people/", OTHER_CONTACTS: "otherContacts/"}

PersonData = dict[str, list[dict[str, Any]]]


def rfc3339(ts: float) -> str:
    """Google's timestamp format (UTC, microseconds, ``Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


@dataclass
class Contact:
    """One person of a collection; ``deleted`` ones are kept as tombstones for sync."""

    resource_name: str
    collection: str
    source_id: str
    data: PersonData
    seq: int
    updated_at: float
    etag: str
    source_etag: str
    deleted: bool = False

    def metadata(self) -> dict[str, Any]:
        """``person.metadata`` as Google returns it (``deleted`` only on tombstones)."""
        source: dict[str, Any] = {
            "type": _SOURCE_TYPE[self.collection],
            "id": self.source_id,
            "etag": self.source_etag,
            "updateTime": rfc3339(self.updated_at),
        }
        meta: dict[str, Any] = {"sources": [source], "objectType": "PERSON"}
        if self.deleted:
            meta["deleted"] = True
        return meta


@dataclass
class Group:
    """A contact group the user made (``USER_CONTACT_GROUP``); members are the contacts whose
    ``memberships`` name it."""

    resource_name: str
    name: str
    etag: str
    updated_at: float


@dataclass
class Book:
    """One account's address book."""

    contacts: dict[str, Contact] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    seq: int = 0
    seeded: bool = False


@dataclass
class ListSession:
    """A listing in progress: the resource names it will return, fixed at its first page,
    and what its last page's sync token will stand for."""

    sub: str
    collection: str
    names: list[str]
    incremental: bool
    snapshot_seq: int
    full_sync_at: float


@dataclass
class PageCursor:
    """What a page token stands for."""

    session: ListSession
    offset: int
    fingerprint: tuple[tuple[str, str], ...]


@dataclass
class SyncCursor:
    """What a sync token stands for."""

    sub: str
    collection: str
    seq: int
    full_sync_at: float
    fingerprint: tuple[tuple[str, str], ...]
    expired: bool = False


@dataclass
class FullSyncQuota:
    """The extra quota on the first page of a full sync: at most ``limit`` such requests per
    ``window_seconds`` per user (``email`` empty: every user). ``limit`` 0 turns it off."""

    limit: int = 0
    window_seconds: float = 60.0
    email: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the control API."""
        return {"limit": self.limit, "window_seconds": self.window_seconds, "email": self.email}


@dataclass
class Propagation:
    """How long a write takes to reach incremental listings: ``seconds`` for every account,
    ``accounts`` (email → seconds) for some; 0 means at once (the default)."""

    seconds: float = 0.0
    accounts: dict[str, float] = field(default_factory=dict)

    def delay(self, email: str) -> float:
        """The delay of ``email``'s writes (its own setting, else the global one)."""
        return self.accounts.get(email, self.seconds)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the control API."""
        return {"seconds": self.seconds, "accounts": dict(sorted(self.accounts.items()))}


def group_names(data: PersonData) -> set[str]:
    """The contact group resource names a person's ``memberships`` name."""
    found: set[str] = set()
    for item in data.get("memberships", []):
        membership = item.get("contactGroupMembership")
        if isinstance(membership, dict):
            name = membership.get("contactGroupResourceName") or (
                f"contactGroups/{membership['contactGroupId']}" if membership.get("contactGroupId") else None
            )
            if name:
                found.add(str(name))
    return found


def membership(group_resource_name: str) -> dict[str, Any]:
    """A ``memberships`` item for the group, as Google renders it."""
    return {
        "contactGroupMembership": {
            "contactGroupId": group_resource_name.removeprefix("contactGroups/"),
            "contactGroupResourceName": group_resource_name,
        }
    }


class PeopleStore:
    """Contacts, other contacts, change sequence and tokens of every account."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.reset()

    def __setstate__(self, saved: dict[str, Any]) -> None:
        # A state file saved before the propagation control existed loads with none.
        self.__dict__.update(saved)
        self.__dict__.setdefault("propagation", Propagation())

    def reset(self) -> None:
        """Forget every address book, token, quota and propagation setting."""
        with self.state.lock:
            self._books: dict[str, Book] = {}
            self._page_tokens: dict[str, PageCursor] = {}
            self._sync_tokens: dict[str, SyncCursor] = {}
            self.quota = FullSyncQuota()
            self._quota_hits: dict[str, deque[float]] = {}
            self.propagation = Propagation()

    # ------------------------------------------------------------------ contacts

    def book(self, sub: str) -> Book:
        """The address book of ``sub`` (created empty on first use)."""
        with self.state.lock:
            return self._books.setdefault(sub, Book())

    def _stamp(self, sub: str, book: Book, contact: Contact, at: float | None = None) -> None:
        # Every change takes the next sequence number and new etags: that is what sync and
        # updateContact's precondition both key on. Etags are derived, so seeding is repeatable.
        book.seq += 1
        contact.seq = book.seq
        contact.updated_at = self.state.now() if at is None else at
        raw = _digest(sub, contact.resource_name, str(book.seq))
        contact.etag = "%" + base64.urlsafe_b64encode(raw[:21]).decode()
        contact.source_etag = "#" + base64.urlsafe_b64encode(raw[21:30]).decode()

    def create(
        self, sub: str, collection: str, data: PersonData, *, id_seed: str | None = None, at: float | None = None
    ) -> Contact:
        """Add a person to ``collection``; ``id_seed`` makes the id deterministic (seeding)."""
        with self.state.lock:
            book = self.book(sub)
            attempt = 0
            while True:
                if id_seed is None:
                    number = str(10**18 + secrets.randbelow(9 * 10**18))
                else:
                    seed = f"{id_seed}:{attempt}"
                    number = str(10**18 + int.from_bytes(_digest(sub, seed)[:8], "big") % (9 * 10**18))
                name = f"{_PREFIX[collection]}c{number}"
                if name not in book.contacts:
                    break
                attempt += 1
            source_id = format(int(number), "x")
            if collection == CONNECTIONS and "memberships" not in data:
                # New contacts land in "My Contacts", as in Google Contacts.
                data = {
                    **data,
                    "memberships": [
                        {
                            "contactGroupMembership": {
                                "contactGroupId": "myContacts",
                                "contactGroupResourceName": "contactGroups/myContacts",
                            }
                        }
                    ],
                }
            contact = Contact(name, collection, source_id, data, 0, 0.0, "", "")
            self._stamp(sub, book, contact, at)
            book.contacts[name] = contact
            return contact

    def get(self, sub: str, resource_name: str, collection: str | None = None) -> Contact | None:
        """A live (not deleted) person by resource name."""
        with self.state.lock:
            contact = self.book(sub).contacts.get(resource_name)
            if contact is None or contact.deleted or (collection and contact.collection != collection):
                return None
            return contact

    def update(self, sub: str, contact: Contact, changes: PersonData, fields: frozenset[str]) -> Contact:
        """Replace ``fields`` of ``contact`` with ``changes`` (a field absent there is cleared)."""
        with self.state.lock:
            for name in fields:
                if changes.get(name):
                    contact.data[name] = changes[name]
                else:
                    contact.data.pop(name, None)
            self._stamp(sub, self.book(sub), contact)
            return contact

    def delete(self, sub: str, contact: Contact) -> None:
        """Turn ``contact`` into a tombstone (kept for incremental sync)."""
        with self.state.lock:
            contact.deleted = True
            contact.data = {}
            self._stamp(sub, self.book(sub), contact)

    def live(self, sub: str, collection: str) -> list[Contact]:
        """Live people of ``collection``, oldest change first."""
        with self.state.lock:
            found = [c for c in self.book(sub).contacts.values() if c.collection == collection and not c.deleted]
            return sorted(found, key=lambda c: c.seq)

    def changed_since(self, sub: str, collection: str, seq: int) -> list[Contact]:
        """People of ``collection`` (tombstones included) changed after sequence ``seq``."""
        with self.state.lock:
            found = [c for c in self.book(sub).contacts.values() if c.collection == collection and c.seq > seq]
            return sorted(found, key=lambda c: c.seq)

    def propagated(self, contact: Contact, email: str) -> bool:
        """Whether ``contact``'s last write has reached incremental listings (its account's
        propagation delay has passed on the emulator clock since the write)."""
        with self.state.lock:
            return self.state.now() >= contact.updated_at + self.propagation.delay(email)

    def configure_propagation(self, seconds: float, email: str = "") -> Propagation:
        """Set the propagation delay of ``email``'s writes (empty: the global one). It applies
        at read time, so it also moves writes already made (0 releases them all)."""
        with self.state.lock:
            if email:
                self.propagation.accounts[email] = seconds
            else:
                self.propagation.seconds = seconds
            return self.propagation

    # ------------------------------------------------------------------ groups

    def create_group(self, sub: str, name: str) -> Group | None:
        """A new user contact group; None if one of that name exists (Google: 409)."""
        with self.state.lock:
            book = self.book(sub)
            if any(g.name == name for g in book.groups.values()):
                return None
            gid = format(secrets.randbits(60), "x")
            raw = _digest(sub, gid, name)
            group = Group(f"contactGroups/{gid}", name, base64.urlsafe_b64encode(raw[:9]).decode(), self.state.now())
            book.groups[group.resource_name] = group
            return group

    def members(self, sub: str, group_resource_name: str) -> list[Contact]:
        """Live contacts whose memberships name the group."""
        with self.state.lock:
            return [c for c in self.live(sub, CONNECTIONS) if group_resource_name in group_names(c.data)]

    # ------------------------------------------------------------------ tokens

    @staticmethod
    def _new_token() -> str:
        # Opaque and unguessable; what it stands for lives server-side, bound to the account.
        return secrets.token_urlsafe(32)

    def issue_page_token(self, cursor: PageCursor) -> str:
        """A fresh page token for ``cursor``."""
        with self.state.lock:
            token = self._new_token()
            self._page_tokens[token] = cursor
            return token

    def page_cursor(self, token: str) -> PageCursor | None:
        """The cursor a page token stands for, if it was ever issued."""
        with self.state.lock:
            return self._page_tokens.get(token)

    def issue_sync_token(self, cursor: SyncCursor) -> str:
        """A fresh sync token for ``cursor``."""
        with self.state.lock:
            token = self._new_token()
            self._sync_tokens[token] = cursor
            return token

    def sync_cursor(self, token: str) -> SyncCursor | None:
        """The cursor a sync token stands for, if it was ever issued."""
        with self.state.lock:
            return self._sync_tokens.get(token)

    def sync_expired(self, cursor: SyncCursor) -> bool:
        """Expired by the control API, or 7 days after its full sync (emulator clock)."""
        return cursor.expired or self.state.now() >= cursor.full_sync_at + SYNC_TOKEN_LIFETIME_SECONDS

    def expire_sync_tokens(self, sub: str) -> int:
        """Expire every sync token issued so far to ``sub``; returns how many were live."""
        with self.state.lock:
            count = 0
            for cursor in self._sync_tokens.values():
                if cursor.sub == sub and not cursor.expired:
                    cursor.expired = True
                    count += 1
            return count

    # ------------------------------------------------------------------ quota

    def configure_quota(self, quota: FullSyncQuota) -> None:
        """Set the first-page-of-full-sync quota (and forget the requests counted so far)."""
        with self.state.lock:
            self.quota = quota
            self._quota_hits.clear()

    def take_full_sync_quota(self, sub: str, email: str) -> bool:
        """Count one first page of a full sync; False when it exceeds the configured quota."""
        with self.state.lock:
            quota = self.quota
            if quota.limit <= 0 or (quota.email and quota.email != email):
                return True
            now = self.state.now()
            hits = self._quota_hits.setdefault(sub, deque())
            while hits and hits[0] <= now - quota.window_seconds:
                hits.popleft()
            if len(hits) >= quota.limit:
                return False
            hits.append(now)
            return True

    # ------------------------------------------------------------------ demo data

    def seed_demo(self, email: str) -> int:
        """Give a demo account its contacts and other contacts (once; later calls do nothing).

        Deterministic: ids and etags derive from the account and the data, and update
        times are set relative to the emulator clock. Returns the number of people added.
        """
        with self.state.lock:
            account = self.state.add_account(email)
            book = self.book(account.sub)
            entries = DEMO_DATA.get(account.email, ())
            if book.seeded or not entries:
                return 0
            book.seeded = True
            now = self.state.now()
            for index, (collection, days_ago, data) in enumerate(entries):
                self.create(
                    account.sub,
                    collection,
                    {k: [dict(item) for item in v] for k, v in data.items()},
                    id_seed=f"demo:{index}",
                    at=now - days_ago * 86400,
                )
            return len(entries)
