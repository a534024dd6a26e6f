"""Messages on the sync queue. One message group per synced resource, so work on one
resource runs one at a time; the deduplication id makes a repeated send a no-op."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from crmsync.security.secrets import sha256_hex


class QueueMessage(BaseModel):
    """What every sync-queue message shares: who it is for, and its deduplication id (the
    whole message: sending the same message twice within SQS's 5-minute window is a no-op)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)

    @property
    def deduplication_id(self) -> str:
        return sha256_hex(self.model_dump_json())[:64]


class ConnectionCheck(QueueMessage):
    """Check that a connection's grant still works (refresh its access token)."""

    kind: Literal["connection.check"] = "connection.check"
    connection_id: str = Field(min_length=1, max_length=128)
    #: Why the check was asked for: "connected", "scheduled", ... (diagnostics only).
    reason: str = Field(default="scheduled", max_length=64)
    #: Distinguishes requests made for different occasions (e.g. the schedule tick).
    occasion: str = Field(default="", max_length=128)

    @property
    def group_id(self) -> str:
        return f"{self.tenant_id}#{self.user_id}#{self.connection_id}"


class AppointmentPush(QueueMessage):
    """Bring the linked calendar up to ``revision`` of the appointment (F3)."""

    kind: Literal["appointment.push"] = "appointment.push"
    appointment_id: str = Field(min_length=1, max_length=128)
    revision: int = Field(ge=1)
    #: Distinguishes pushes of one revision made for different reasons (e.g. a newly linked
    #: calendar), which the FIFO queue would otherwise drop as duplicates.
    occasion: str = Field(default="", max_length=256)

    @property
    def group_id(self) -> str:
        # One user's appointments go to one linked calendar: push them one at a time.
        return f"{self.tenant_id}#{self.user_id}#appointments"


#: The ``reason`` of a calendar sync the user asked for (the settings page's Sync now).
MANUAL_SYNC = "manual"


class CalendarSyncRequest(QueueMessage):
    """Sync one provider calendar into the mirror (F7). One FIFO group per calendar."""

    kind: Literal["calendar.sync"] = "calendar.sync"
    connection_id: str = Field(min_length=1, max_length=128)
    calendar_id: str = Field(min_length=1, max_length=1024)
    reason: str = Field(default="scheduled", max_length=64)
    occasion: str = Field(default="", max_length=256)
    #: The subscription a Graph lifecycle event named (``reason`` is the event): the sync
    #: acts on it only if it is still the calendar's (empty otherwise).
    channel_id: str = Field(default="", max_length=64)

    @property
    def group_id(self) -> str:
        return sha256_hex(f"{self.tenant_id}#{self.user_id}#{self.connection_id}#{self.calendar_id}")[:64]


class ContactSyncRequest(QueueMessage):
    """Sync the user's contacts account with the CRM's contacts (F10). One FIFO group per user:
    Google asks for one contacts mutation at a time per account, and the CRM side is the
    user's. ``reason``: ``scheduled`` (every 15 minutes), ``login`` (the CRM front end
    reported one), ``manual`` (on demand), ``enabled``; ``occasion`` distinguishes requests
    the FIFO queue must not drop as duplicates (the schedule's 15-minute bucket; a request
    repeated within SQS's 5-minute window with the same occasion is one sync)."""

    kind: Literal["contacts.sync"] = "contacts.sync"
    connection_id: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="scheduled", max_length=64)
    occasion: str = Field(default="", max_length=256)

    @property
    def group_id(self) -> str:
        return sha256_hex(f"{self.tenant_id}#{self.user_id}#contacts")[:64]


class ContactImportRequest(QueueMessage):
    """Carry out the user's answer to the contact review (F10): decline the rows it declines,
    import the rows selected. In the user's contacts FIFO group: never beside a contacts sync.
    ``occasion``: the answer it carries out."""

    kind: Literal["contacts.import"] = "contacts.import"
    occasion: str = Field(default="", max_length=256)

    @property
    def group_id(self) -> str:
        return sha256_hex(f"{self.tenant_id}#{self.user_id}#contacts")[:64]


class MailSyncRequest(QueueMessage):
    """Sync the user's Gmail with their contacts' conversations (F8). One FIFO group per user's
    mailbox, so a backfill step, a push and a contact's pull never run side by side.
    ``reason``: ``push`` (a Gmail notification), ``enabled``, ``backfill`` (the next step of a
    backfill), ``scheduled`` (the safety net and the daily watch renewal), ``contacts`` (new
    contacts pull their past mail: ``emails``), ``manual``. ``occasion`` distinguishes requests
    the FIFO queue must not drop as duplicates."""

    kind: Literal["mail.sync"] = "mail.sync"
    connection_id: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="scheduled", max_length=64)
    occasion: str = Field(default="", max_length=256)
    #: With ``reason`` ``contacts``: the new contacts' addresses whose mail to pull.
    emails: tuple[Annotated[str, Field(min_length=3, max_length=320)], ...] = Field(default=(), max_length=50)

    @property
    def group_id(self) -> str:
        return sha256_hex(f"{self.tenant_id}#{self.user_id}#mail")[:64]


SyncMessage = Annotated[
    ConnectionCheck
    | AppointmentPush
    | CalendarSyncRequest
    | ContactSyncRequest
    | ContactImportRequest
    | MailSyncRequest,
    Field(discriminator="kind"),
]
sync_message_adapter: TypeAdapter[SyncMessage] = TypeAdapter(SyncMessage)
