"""The calendar sync request as the webhooks send it: without pydantic (a third of their cold
start), as the same message.

:class:`PlainCalendarSyncRequest` is :class:`crmsync.messaging.messages.CalendarSyncRequest`
in a frozen dataclass: the same fields and limits, the same JSON body (so the same
deduplication id) and the same message group. tests/unit/test_messages.py checks that both
give the same body, group and deduplication id, and that the worker's parser reads the body
back as the pydantic message; a field added to one and not the other fails there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from crmsync.security.secrets import sha256_hex


@dataclass(frozen=True)
class PlainCalendarSyncRequest:
    """Sync one provider calendar into the mirror (F7). One FIFO group per calendar."""

    kind: ClassVar[str] = "calendar.sync"
    #: Field limits of the pydantic model: (min length, max length).
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "tenant_id": (1, 128),
        "user_id": (1, 128),
        "connection_id": (1, 128),
        "calendar_id": (1, 1024),
        "reason": (0, 64),
        "occasion": (0, 256),
        "channel_id": (0, 64),
    }

    tenant_id: str
    user_id: str
    connection_id: str
    calendar_id: str
    reason: str = "scheduled"
    occasion: str = ""
    channel_id: str = ""

    def __post_init__(self) -> None:
        for name, (low, high) in self.LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not low <= len(value) <= high:
                raise ValueError(f"invalid {name} for a calendar sync request")

    def model_dump_json(self) -> str:
        """pydantic's ``model_dump_json()`` of the same message: fields in declaration order
        (the base's first), compact, non-ASCII characters as they are."""
        return json.dumps(
            {
                "tenant_id": self.tenant_id,
                "user_id": self.user_id,
                "kind": self.kind,
                "connection_id": self.connection_id,
                "calendar_id": self.calendar_id,
                "reason": self.reason,
                "occasion": self.occasion,
                "channel_id": self.channel_id,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @property
    def deduplication_id(self) -> str:
        return sha256_hex(self.model_dump_json())[:64]

    @property
    def group_id(self) -> str:
        return sha256_hex(f"{self.tenant_id}#{self.user_id}#{self.connection_id}#{self.calendar_id}")[:64]
