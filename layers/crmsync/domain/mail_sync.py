"""Two-way Gmail sync (F8) as plain data: the user's mailbox sync and where it stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: Mail of the last N days is backfilled (and pulled for a new contact) unless set otherwise.
DEFAULT_WINDOW_DAYS = 90
MAX_WINDOW_DAYS = 365


@dataclass(frozen=True)
class Backfill:
    """A backfill under way: the history cursor taken before listing (the sync resumes from it
    once every page is applied), the next page to list, and how far it got: ``reached`` is the
    receive date of the oldest message checked (the list is newest first)."""

    cursor: str
    page: str | None
    started_at: datetime
    reached: datetime | None = None
    checked: int = 0
    logged: int = 0
    #: What became of the messages logged before the backfill's cursor is unknown (a 404
    #: history gap; a CRM send or a pull before the first backfill), so the last step re-reads
    #: them (every backfill the engine begins; False only on backfills stored before that).
    reconcile: bool = False


@dataclass(frozen=True)
class MailSync:
    """The user's mail sync: off when ``connection_id`` is None."""

    connection_id: str | None = None
    account_email: str | None = None
    enabled_at: datetime | None = None
    window_days: int = DEFAULT_WINDOW_DAYS
    history_cursor: str | None = None
    backfill: Backfill | None = None
    last_synced_at: datetime | None = None
    last_error: str | None = None
    watch_expires_at: datetime | None = None
    watch_renewed_at: datetime | None = None
    version: int = 0

    @property
    def enabled(self) -> bool:
        return self.connection_id is not None

    @property
    def live(self) -> bool:
        """The first backfill is applied: the sync follows the mailbox's history."""
        return self.history_cursor is not None and self.backfill is None
