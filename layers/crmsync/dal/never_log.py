"""The user's never-log list: one item in the user's partition (``SETTINGS#never-log``).

Entries are a DynamoDB string set changed by ``ADD`` and ``DELETE`` updates, never by writing
the whole list back: two concurrent adds both land (no read-modify-write to lose one), and
the cap and "already there" are conditions of the same update.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import size

from crmsync.dal import condition_failed
from crmsync.domain import Principal
from crmsync.domain.never_log import MAX_ENTRIES, NeverLog, normalise_entry
from crmsync.errors import Conflict, Unprocessable
from crmsync.models.keys import user_pk
from crmsync.models.settings import NEVER_LOG_SK, NeverLogItem

#: An add whose condition failed although the entry is absent and the list has room (a
#: concurrent remove made room meanwhile) is tried again this many times.
_ADD_ATTEMPTS = 3


class NeverLogStore:
    def get(self, principal: Principal) -> NeverLog:
        """The user's list (empty when they never added anything). One consistent read."""
        try:
            item = NeverLogItem.get(_pk(principal), NEVER_LOG_SK, consistent_read=True)
        except DoesNotExist:
            return NeverLog()
        return NeverLog.of(item.entries or ())

    def list(self, principal: Principal) -> list[str]:
        """The entries, sorted."""
        return list(self.get(principal).entries)

    def add(self, principal: Principal, entry: str) -> bool:
        """Add one entry (normalised here too). True: added; False: it was already on the list.
        Raises Unprocessable when the list holds :data:`MAX_ENTRIES` already."""
        entry = normalise_entry(entry)
        entries = NeverLogItem.entries
        condition = entries.does_not_exist() | ((size(entries) < MAX_ENTRIES) & ~entries.contains(entry))
        for _ in range(_ADD_ATTEMPTS):
            try:
                NeverLogItem._get_connection().update_item(
                    _pk(principal),
                    NEVER_LOG_SK,
                    actions=[entries.add({entry}), NeverLogItem.updated_at.set(datetime.now(UTC))],
                    condition=condition,
                )
            except UpdateError as exc:
                if not condition_failed(exc):
                    raise
            else:
                return True
            current = self.get(principal)
            if entry in current.entries:
                return False
            if len(current) >= MAX_ENTRIES:
                raise Unprocessable(
                    f"The never-log list holds at most {MAX_ENTRIES:,} entries; remove one first "
                    "(a domain entry covers every address on that domain)."
                )
        raise Conflict("The never-log list changed at the same time; try again.")

    def remove(self, principal: Principal, entry: str) -> bool:
        """Remove one entry; False when it was not on the list."""
        entry = normalise_entry(entry)
        try:
            NeverLogItem._get_connection().update_item(
                _pk(principal),
                NEVER_LOG_SK,
                actions=[NeverLogItem.entries.delete({entry}), NeverLogItem.updated_at.set(datetime.now(UTC))],
                condition=NeverLogItem.entries.contains(entry),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True


def _pk(principal: Principal) -> str:
    return user_pk(principal.tenant_id, principal.user_id)
