"""Faults on demand: the next N matching API requests fail the way Google fails.

Rules are set through the control API (``POST /_emulator/faults``) or in Python, and are
consumed in order: each matching request uses up one count of the first matching rule.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from devstack.google.apis.discovery import ApiError

#: kind → (HTTP status, reason, message, domain) as Google sends them: rate limits and
#: quotas in the ``usageLimits`` domain (Calendar's and Gmail's "Handle API errors" guides),
#: server errors in ``global``.
KINDS: dict[str, tuple[int, str, str, str]] = {
    "rate_limit_429": (429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
    "rate_limit_403": (403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
    "user_rate_limit_403": (403, "userRateLimitExceeded", "User Rate Limit Exceeded", "usageLimits"),
    "quota_429": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Queries' per minute per user.",
        "usageLimits",
    ),
    "backend_500": (500, "backendError", "Backend Error", "global"),
    "unavailable_503": (503, "backendError", "The service is currently unavailable.", "global"),
    "hang": (0, "", "", ""),
}


@dataclass
class Fault:
    """Fail the next ``count`` requests whose method id starts with ``method`` (e.g.
    ``calendar.events.list`` or just ``gmail.``) for ``email`` (any account when empty)."""

    kind: str
    method: str = ""
    email: str = ""
    count: int = 1
    hang_seconds: float = 30.0

    def matches(self, method_id: str, email: str) -> bool:
        return method_id.startswith(self.method) and (not self.email or self.email == email)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._stop = threading.Event()

    def add(self, fault: Fault) -> None:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {sorted(KINDS)}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def release_hangs(self) -> None:
        """Let hanging requests go (the emulator's shutdown calls this)."""
        self._stop.set()

    def apply(self, method_id: str, email: str) -> None:
        """Raise the error of the first matching rule (or hang), using up one count."""
        with self._lock:
            rule = next((r for r in self._rules if r.matches(method_id, email)), None)
            if rule is None:
                return
            rule.count -= 1
            if rule.count <= 0:
                self._rules.remove(rule)
        if rule.kind == "hang":
            # A request that never answers in time: the client's timeout fires first.
            self._stop.wait(rule.hang_seconds)
            raise ApiError(503, "The service is currently unavailable.", "backendError")
        status, reason, message, domain = KINDS[rule.kind]
        raise ApiError(status, message, reason, domain=domain)
