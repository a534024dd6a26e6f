"""Gmail's per-user rate limit, enforced when switched on (off by default).

Google's "Usage limits" page: "250 quota units per user per second, moving average (allows
short bursts)" (the current page says the same as 15,000 units per user per minute), each
method costing the units of its table, and the per-user limit's "exceeded reason" is
``userRateLimitExceeded``. Gmail's "Resolve errors" guide answers it as 403
``userRateLimitExceeded`` in the ``usageLimits`` domain (429 is for the daily sending,
bandwidth and concurrency limits), and a batch of n requests counts as n requests.

The emulator keeps a moving window of one second on the emulator clock: a request is
refused when the units of the requests it accepted in the last second plus its own would
pass the limit. Refused requests cost nothing. Freeze the clock
(``POST /_emulator/clock/freeze``) and move it with ``/clock/advance`` to test it exactly.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from devstack.google.apis.discovery import ApiError

#: Google's documented per-user limit, in quota units per second.
UNITS_PER_SECOND = 250
WINDOW_SECONDS = 1.0
#: Units per method (Gmail's per-method quota usage table). threads.*, watch and stop are
#: from the same table's later rows.
METHOD_UNITS: dict[str, int] = {
    "drafts.create": 10,
    "drafts.delete": 10,
    "drafts.get": 5,
    "drafts.list": 5,
    "drafts.send": 100,
    "drafts.update": 15,
    "getProfile": 1,
    "history.list": 2,
    "labels.create": 5,
    "labels.delete": 5,
    "labels.get": 1,
    "labels.list": 1,
    "labels.update": 5,
    "messages.attachments.get": 5,
    "messages.batchDelete": 50,
    "messages.batchModify": 50,
    "messages.delete": 10,
    "messages.get": 5,
    "messages.import": 25,
    "messages.insert": 25,
    "messages.list": 5,
    "messages.modify": 5,
    "messages.send": 100,
    "messages.trash": 5,
    "messages.untrash": 5,
    "threads.delete": 20,
    "threads.get": 10,
    "threads.list": 10,
    "threads.modify": 10,
    "threads.trash": 10,
    "threads.untrash": 10,
    "stop": 50,
    "watch": 100,
}
_DEFAULT_UNITS = 5


def units_of(method_id: str) -> int:
    """The quota units of a discovery method id such as ``gmail.users.messages.get``."""
    return METHOD_UNITS.get(method_id.removeprefix("gmail.users."), _DEFAULT_UNITS)


def rate_limited() -> ApiError:
    """Gmail's answer for a user over the per-user rate limit."""
    return ApiError(403, "User Rate Limit Exceeded", "userRateLimitExceeded", domain="usageLimits")


@dataclass
class _Meter:
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    refused: int = 0

    def used(self, now: float) -> int:
        while self.spent and self.spent[0][0] <= now - WINDOW_SECONDS:
            self.spent.popleft()
        return sum(units for _, units in self.spent)


class Quota:
    """Per-user quota: a global switch, per-mailbox switches (which win), one meter per
    mailbox. ``limit`` None means off."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.default: int | None = None
        self.per_mailbox: dict[str, int | None] = {}
        self._meters: dict[str, _Meter] = {}

    def reset(self) -> None:
        with self._lock:
            self.default = None
            self.per_mailbox.clear()
            self._meters.clear()

    def configure(self, limit: int | None, email: str | None = None) -> None:
        """Switch the quota on (``limit`` units per second) or off (None), for one mailbox or
        for every mailbox without its own setting. Meters start afresh."""
        if limit is not None and limit < 1:
            raise ValueError("units_per_second must be at least 1")
        with self._lock:
            if email is None:
                self.default = limit
                self.per_mailbox.clear()
                self._meters.clear()
            else:
                self.per_mailbox[email] = limit
                self._meters.pop(email, None)

    def limit_for(self, email: str) -> int | None:
        with self._lock:
            return self.per_mailbox.get(email, self.default)

    def charge(self, email: str, method_id: str, now: float) -> None:
        """Spend the method's units for ``email``, or raise Gmail's 403 when over the limit."""
        units = units_of(method_id)
        with self._lock:
            limit = self.per_mailbox.get(email, self.default)
            if limit is None:
                return
            meter = self._meters.setdefault(email, _Meter())
            if meter.used(now) + units > limit:
                meter.refused += 1
                raise rate_limited()
            meter.spent.append((now, units))

    def status(self, email: str, now: float) -> dict[str, Any]:
        """The mailbox's limit, units spent in the current window and requests refused."""
        with self._lock:
            meter = self._meters.get(email, _Meter())
            return {
                "email": email,
                "units_per_second": self.per_mailbox.get(email, self.default),
                "used": meter.used(now),
                "refused": meter.refused,
            }
