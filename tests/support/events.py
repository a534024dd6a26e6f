"""A domain-event publisher for in-process tests: keeps what it is given (the production
publisher puts it on EventBridge; the e2e tests read the local bus)."""

from __future__ import annotations

from collections.abc import Sequence

from crmsync.messaging.events import DomainEvent


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)

    def take(self) -> list[tuple[str, str]]:
        """``(detail type, origin)`` of every event since the last call."""
        taken, self.events = self.events, []
        return [(e.detail_type, e.origin) for e in taken]
