"""Faults on demand: the next N matching Graph requests fail the way Graph fails.

Rules come from the Python API (:meth:`Faults.add`) or the control route
``POST /_microsoft/graph/faults``; each matching request uses up one count of the first
matching rule. ``lost_answer`` is the odd one: the request is carried out, then answered with
an error, as when a proxy times out after the mailbox already wrote the event.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

#: kind → (HTTP status, Graph error code, message). Statuses and the meaning of 429/503 with
#: Retry-After are from learn.microsoft.com/graph/errors and /graph/throttling; the codes of
#: 429/500/503/504 are guesses in Graph's style. ``sync_state_not_found`` is the 400 the
#: Graph team's blog describes for an expired delta token (devblogs.microsoft.com/microsoft365dev/
#: duration-of-change-tracking-tokens-for-identity-and-education-resources); ``resync_required``
#: (410 + resyncRequired) and ``gone`` (410 + Location) follow the "synchronization reset"
#: section of learn.microsoft.com/graph/delta-query-overview; their exact bodies are guesses.
KINDS: dict[str, tuple[int, str, str]] = {
    "throttled_429": (429, "TooManyRequests", "Too many requests, please retry after a while."),
    "unavailable_503": (503, "ServiceNotAvailable", "The service is temporarily unavailable."),
    "internal_500": (500, "InternalServerError", "An internal server error occurred."),
    "sync_state_not_found": (
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    ),
    "resync_required": (410, "resyncRequired", "A full resynchronization is required."),
    "gone": (410, "SyncStateInvalid", "The sync state is no longer valid; start again at Location."),
    "lost_answer": (504, "GatewayTimeout", "The gateway did not receive a timely response."),
    # A write that meets a concurrent change of the event (someone else's edit, or a stale
    # If-Match): Graph's 412 (learn.microsoft.com/graph/errors); the code is a guess.
    "precondition_failed": (412, "PreconditionFailed", "The event was changed by another request."),
}

#: Kinds that carry a Retry-After header.
RETRY_AFTER_KINDS = frozenset({"throttled_429", "unavailable_503"})


@dataclass
class Fault:
    """Fail the next ``count`` requests with ``kind`` whose method is ``method`` (any when
    empty), whose path starts with ``path`` (e.g. ``/v1.0/me/events``) and whose signed-in user
    is ``email`` (any when empty). ``retry_after`` is the Retry-After header in seconds."""

    kind: str
    method: str = ""
    path: str = ""
    email: str = ""
    count: int = 1
    retry_after: int = 2

    def matches(self, method: str, path: str, email: str) -> bool:
        return (
            (not self.method or self.method.upper() == method.upper())
            and path.startswith(self.path)
            and (not self.email or self.email == email)
        )


class Faults:
    """The rule list; thread-safe (the server is threaded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a rule; unknown kinds and counts below 1 are refused with ValueError."""
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {sorted(KINDS)}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        if fault.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        with self._lock:
            self._rules.append(fault)

    def clear(self, email: str | None = None) -> None:
        """Every rule, or only those of one signed-in user (``email``): a test that shares
        the server with others clears its own mailbox's."""
        with self._lock:
            if email is None:
                self._rules.clear()
            else:
                self._rules[:] = [r for r in self._rules if r.email != email]

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def take(self, method: str, path: str, email: str) -> Fault | None:
        """The first matching rule, with one count used up (None when nothing matches)."""
        with self._lock:
            rule = next((r for r in self._rules if r.matches(method, path, email)), None)
            if rule is None:
                return None
            rule.count -= 1
            if rule.count == 0:
                self._rules.remove(rule)
            return Fault(rule.kind, rule.method, rule.path, rule.email, 1, rule.retry_after)


class Calls:
    """How many Graph requests each signed-in mailbox made (control routes not counted): the
    benchmarks' request counts (bench/graph.py) come from here, not from the client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, email: str) -> None:
        with self._lock:
            self._counts[email] += 1

    def total(self, email: str | None = None) -> int:
        with self._lock:
            return self._counts[email] if email is not None else sum(self._counts.values())

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
