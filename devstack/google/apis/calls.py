"""What the emulated APIs were asked: a count of authenticated requests per method, account
and path parameters (e.g. ``calendar.events.list`` for one ``calendarId``), so a test or a
benchmark can check how many requests the product made without wrapping its clients."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

Key = tuple[str, str, tuple[tuple[str, str], ...]]


class CallCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Key] = Counter()

    def record(self, method_id: str, email: str, path_values: Mapping[str, str]) -> None:
        key = (method_id, email, tuple(sorted((k, str(v)) for k, v in path_values.items())))
        with self._lock:
            self._counts[key] += 1

    def count(self, method_id: str, email: str | None = None, path_values: Mapping[str, str] | None = None) -> int:
        """Requests to ``method_id``, of ``email`` (any if None), whose path parameters
        include every item of ``path_values``."""
        wanted = set((path_values or {}).items())
        with self._lock:
            return sum(
                n
                for (method, account, values), n in self._counts.items()
                if method == method_id and (email is None or account == email) and wanted <= set(values)
            )

    def totals(self) -> dict[str, int]:
        """Requests per method id, every account together (the cost model's count)."""
        totals: Counter[str] = Counter()
        with self._lock:
            for (method, _, _), n in self._counts.items():
                totals[method] += n
        return dict(totals)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
