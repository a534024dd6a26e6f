"""Outgoing push notifications (Calendar watch channels, Gmail's Pub/Sub pushes).

Deliveries go out from one background thread, in order, as real HTTP POSTs. Delivery
troubles are injected on demand — drop, duplicate, delay (hold until released) or reorder
the next N notifications — and every attempt is recorded for tests.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger("devstack.google.push")


@dataclass
class Notification:
    kind: str  # "calendar" | "gmail"
    url: str
    headers: dict[str, str]
    body: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Disturbance:
    mode: str  # drop | duplicate | delay | reorder
    count: int


MODES = ("drop", "duplicate", "delay", "reorder")


class PushDispatcher:
    def __init__(self, timeout: float = 5.0) -> None:
        self._queue: queue.Queue[Notification | None] = queue.Queue()
        self._lock = threading.Lock()
        self._disturbances: list[Disturbance] = []
        self._held: list[Notification] = []
        self._reorder: list[Notification] = []
        self.delivered: list[dict[str, Any]] = []
        self._timeout = timeout
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="google-push", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------------------ control
    def disturb(self, mode: str, count: int = 1) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._disturbances.append(Disturbance(mode, count))

    def release(self) -> int:
        """Send every held (delayed) notification now, in the order they were held."""
        with self._lock:
            held, self._held = self._held, []
        for n in held:
            self._enqueue(n)
        return len(held)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until everything queued has been attempted (for tests; a condition, not a sleep)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # ------------------------------------------------------------------ sending
    def send(self, notification: Notification) -> None:
        with self._lock:
            disturbance = self._disturbances[0] if self._disturbances else None
            if disturbance is not None:
                disturbance.count -= 1
                if disturbance.count <= 0:
                    self._disturbances.pop(0)
            if disturbance is None:
                pass
            elif disturbance.mode == "drop":
                self.delivered.append(self._record(notification, "dropped"))
                return
            elif disturbance.mode == "delay":
                self._held.append(notification)
                return
            elif disturbance.mode == "reorder":
                self._reorder.append(notification)
                if disturbance.count > 0:
                    return
                batch, self._reorder = list(reversed(self._reorder)), []
        if disturbance is not None and disturbance.mode == "reorder":
            for n in batch:
                self._enqueue(n)
            return
        self._enqueue(notification)
        if disturbance is not None and disturbance.mode == "duplicate":
            self._enqueue(notification)

    def _enqueue(self, notification: Notification) -> None:
        with self._lock:
            self._in_flight += 1
        self._queue.put(notification)

    def _run(self) -> None:
        while True:
            notification = self._queue.get()
            if notification is None:
                return
            try:
                outcome = self._post(notification)
            finally:
                with self._idle:
                    self.delivered.append(self._record(notification, outcome))
                    self._in_flight -= 1
                    self._idle.notify_all()

    def _post(self, notification: Notification) -> str:
        try:
            response = self._session.post(
                notification.url, data=notification.body, headers=notification.headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            log.debug("push to %s failed: %s", notification.url, type(exc).__name__)
            return "unreachable"
        return str(response.status_code)

    @staticmethod
    def _record(notification: Notification, outcome: str) -> dict[str, Any]:
        return {
            "kind": notification.kind,
            "url": notification.url,
            "headers": dict(notification.headers),
            "body": notification.body.decode(errors="replace"),
            "outcome": outcome,
            **notification.meta,
        }
