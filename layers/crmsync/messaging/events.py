"""Domain events on the EventBridge bus (AppointmentCreated/Changed/Cancelled,
ExternalBusyChanged, DeletionsHeld, EmailLogged).

Every event carries the tenant and user it concerns, an ``origin`` (``crm`` when a CRM user
or API call caused it, ``provider`` when it came from Google), and an ``event_id`` that is
deterministic for the change it describes (e.g. appointment id + revision): a consumer
that sees the same ``event_id`` twice has seen the same change twice.

Events are published after the change is committed. A publish failure is logged and
counted (``DomainEventPublishFailed``) and never undoes or fails the change itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "crmsync"
log = logging.getLogger("crmsync.events")

#: Where a change came from: the CRM (its API), the provider (a sync), BCC logging, or the
#: user's import of provider contacts.
Origin = Literal["crm", "provider", "bcc", "import"]


class DomainEvent(BaseModel):
    """The ``detail`` of an EventBridge event; ``detail_type`` is its ``DetailType``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    detail_type: ClassVar[str] = "DomainEvent"

    event_id: str = Field(min_length=1, max_length=256)
    tenant_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    origin: Origin
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class AppointmentEvent(DomainEvent):
    appointment_id: str
    revision: int
    status: str
    title: str
    start: datetime
    end: datetime
    time_zone: str


class AppointmentCreated(AppointmentEvent):
    detail_type: ClassVar[str] = "AppointmentCreated"


class AppointmentChanged(AppointmentEvent):
    detail_type: ClassVar[str] = "AppointmentChanged"


class AppointmentCancelled(AppointmentEvent):
    detail_type: ClassVar[str] = "AppointmentCancelled"


class ExternalBusyChanged(DomainEvent):
    """Busy time in a conflict calendar changed (availability may have changed)."""

    detail_type: ClassVar[str] = "ExternalBusyChanged"
    origin: Origin = "provider"
    connection_id: str
    calendar_id: str
    #: Events whose busy time appeared, moved or disappeared in this change.
    changed_events: int = Field(ge=0)


class DeletionsHeld(DomainEvent):
    """A sync would have deleted most (or all) of a synced resource's mirror; the deletions
    are held until the user applies or ignores them (the mass-deletion guard)."""

    detail_type: ClassVar[str] = "DeletionsHeld"
    origin: Origin = "provider"
    #: ``calendar`` (later ``contacts``, ``mailbox``).
    resource_kind: str
    connection_id: str
    #: The provider's id of the resource (a calendar id).
    resource_id: str
    deletions: int = Field(ge=0)
    mirrored: int = Field(ge=0)
    #: Found by a complete (full) sync, not an incremental one.
    complete: bool


class ContactEvent(DomainEvent):
    contact_id: str
    version: int
    name: str | None = None
    emails: list[str] = Field(default_factory=list)
    source: str


class ContactCreated(ContactEvent):
    detail_type: ClassVar[str] = "ContactCreated"


class ContactChanged(ContactEvent):
    detail_type: ClassVar[str] = "ContactChanged"


class ContactImported(ContactEvent):
    """A provider contact the user chose in the import review became a CRM contact (or was
    linked to the one it matched)."""

    detail_type: ClassVar[str] = "ContactImported"
    origin: Origin = "import"
    connection_id: str


class EmailLogged(DomainEvent):
    """A message sent to the user's BCC address was logged into contacts' conversations (F9)."""

    detail_type: ClassVar[str] = "EmailLogged"
    origin: Origin = "crm"
    message_key: str
    contact_ids: list[str]
    direction: Literal["outbound", "inbound"]
    subject: str = ""


class EmailSynced(DomainEvent):
    """Two-way sync logged a message of the user's Gmail into contacts' conversations (F8)."""

    detail_type: ClassVar[str] = "EmailSynced"
    origin: Origin = "provider"
    message_key: str
    contact_ids: list[str]
    direction: Literal["outbound", "inbound"]
    subject: str = ""
    thread_id: str = ""


class EmailSent(DomainEvent):
    """The user sent a message from the CRM through their Gmail (F8); it is logged in the
    conversation of each recipient who is a contact."""

    detail_type: ClassVar[str] = "EmailSent"
    origin: Origin = "crm"
    message_key: str
    contact_ids: list[str]
    subject: str = ""
    thread_id: str = ""
    #: Gmail's id of the sent message.
    gmail_id: str = ""


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> None: ...


class EventBridgePublisher:
    """Puts events on one bus, in batches of 10 (PutEvents' limit). Never raises."""

    def __init__(
        self,
        bus_name: str,
        client: EventBridgeClient | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._bus = bus_name
        self._client = client
        self._on_failure = on_failure

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            import boto3

            self._client = boto3.client("events")
        return self._client

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if not events or not self._bus:
            return
        for start in range(0, len(events), 10):
            batch = events[start : start + 10]
            entries = [
                {
                    "EventBusName": self._bus,
                    "Source": SOURCE,
                    "DetailType": event.detail_type,
                    "Detail": event.model_dump_json(),
                    "Time": event.occurred_at,
                }
                for event in batch
            ]
            try:
                answer = self.client.put_events(Entries=entries)  # type: ignore[arg-type]
                failed = [
                    (event, entry)
                    for event, entry in zip(batch, answer.get("Entries", []), strict=False)
                    if entry.get("ErrorCode")
                ]
            except Exception as exc:  # noqa: BLE001 - publishing never fails the committed change
                failed = [(event, {"ErrorCode": type(exc).__name__}) for event in batch]
            for event, entry in failed:
                log.error(
                    "domain event not published",
                    extra={
                        "detail_type": event.detail_type,
                        "event_id": event.event_id,
                        "error": entry.get("ErrorCode"),
                    },
                )
                if self._on_failure is not None:
                    self._on_failure("DomainEventPublishFailed")
