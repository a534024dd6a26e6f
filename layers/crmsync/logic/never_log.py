"""The never-log list as the settings API edits it: what was typed becomes an entry or a
clear refusal (422), then the store adds or removes it."""

from __future__ import annotations

from dataclasses import dataclass

from crmsync.dal.never_log import NeverLogStore
from crmsync.domain import Principal
from crmsync.domain.never_log import EntryKind, InvalidEntry, entry_kind, normalise_entry
from crmsync.errors import NotFound, Unprocessable


@dataclass(frozen=True)
class NeverLogEntry:
    entry: str
    kind: EntryKind

    @classmethod
    def of(cls, entry: str) -> NeverLogEntry:
        return cls(entry, entry_kind(entry))


class NeverLogSettings:
    def __init__(self, store: NeverLogStore) -> None:
        self._store = store

    def entries(self, principal: Principal) -> list[NeverLogEntry]:
        """Sorted: domains and addresses together, as they are stored."""
        return [NeverLogEntry.of(e) for e in self._store.list(principal)]

    def add(self, principal: Principal, typed: str) -> tuple[NeverLogEntry, bool]:
        """The entry as stored, and whether it is new (False: it was on the list already)."""
        entry = _entry(typed)
        return NeverLogEntry.of(entry), self._store.add(principal, entry)

    def remove(self, principal: Principal, typed: str) -> None:
        entry = _entry(typed)
        if not self._store.remove(principal, entry):
            raise NotFound(f"{entry} is not on your never-log list.")


def _entry(typed: str) -> str:
    try:
        return normalise_entry(typed)
    except InvalidEntry as exc:
        raise Unprocessable(str(exc)) from exc
