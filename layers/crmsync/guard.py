"""The mass-deletion guard: a sync that suddenly reports most of a mirror deleted is held for
the user's confirmation instead of being applied (vdirsyncer's "refuse to mirror a side that
became empty").

Google can answer an empty or truncated list for reasons that are not deletions (another
account at reconnect, a re-created calendar, a permission change, a server bug). Provider
agnostic and resource agnostic: a calendar today, an address book or a mailbox later — each
synced resource has at most one :class:`PendingDeletions` record, keyed by
:class:`GuardedResource`.

The rule (:meth:`DeletionThreshold.holds`): a sync's deletions are held when they are at least
``minimum`` items and either

- the sync's list is complete (a full sync) and they exceed ``share`` of the mirrored items, or
- they would empty the mirror (any sync, incremental ones included).

Incremental syncs that delete many but not all items (a user clearing a calendar on purpose)
are applied. What is held stays mirrored, and the CRM side stays as it is, until the user
answers: :attr:`Decision.APPLY` applies the deletions as usual, :attr:`Decision.IGNORE` keeps
the CRM side. Either answer is carried out by the resource's next sync, which re-reads the
provider's complete list (so nothing the provider lists again is deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Decision(StrEnum):
    APPLY = "apply"
    IGNORE = "ignore"


@dataclass(frozen=True)
class DeletionThreshold:
    """``share``: the part of the mirror a complete sync may delete without asking;
    ``minimum``: fewer deletions than this are never held (a small mirror is trivial)."""

    share: float = 0.5
    minimum: int = 20

    def holds(self, deletions: int, mirrored: int, *, complete: bool) -> bool:
        if deletions < self.minimum:
            return False
        if deletions >= mirrored:
            return True  # the sync would empty a non-trivial mirror
        return complete and deletions > self.share * mirrored


@dataclass(frozen=True)
class GuardedResource:
    """A synced resource: ``kind`` (``calendar``; later ``contacts``, ``mailbox``), the
    connection it belongs to and the provider's id of the resource."""

    kind: str
    connection_id: str
    resource_id: str


@dataclass(frozen=True)
class PendingDeletions:
    """Deletions a sync held back: ``deletions`` of the ``mirrored`` items, found at
    ``detected_at`` by a complete (full) sync or an incremental one; ``decision`` once the
    user answered (carried out by the next sync, which then drops this record)."""

    resource: GuardedResource
    deletions: int
    mirrored: int
    complete: bool
    detected_at: datetime
    decision: Decision | None = None
    version: int | None = None

    def authorizes(self, deletions: int) -> bool:
        """Whether the user's Apply covers ``deletions`` found now: at most as many as shown.
        More than that is a new situation, which the guard judges afresh."""
        return self.decision is Decision.APPLY and deletions <= self.deletions
