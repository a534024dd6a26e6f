"""Domain objects shared by logic, the DAL and the API. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crmsync.models.keys import check_id


@dataclass(frozen=True)
class Principal:
    """The CRM user a request acts for, from the authorizer's JWT claims."""

    tenant_id: str
    user_id: str

    def __post_init__(self) -> None:
        check_id("tenant", self.tenant_id)
        check_id("user", self.user_id)


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"


@dataclass(frozen=True)
class Connection:
    """A provider account connected by a CRM user. Never holds a token."""

    tenant_id: str
    user_id: str
    connection_id: str
    provider: str
    subject: str
    email: str
    display_name: str | None
    scopes: tuple[str, ...]
    status: ConnectionStatus
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.user_id)


@dataclass(frozen=True)
class PendingAuthorization:
    """An OAuth flow that was started and not yet completed."""

    tenant_id: str
    user_id: str
    provider: str
    binding_hash: str
    code_verifier: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.user_id)

    def __repr__(self) -> str:
        return f"PendingAuthorization(tenant_id={self.tenant_id!r}, user_id={self.user_id!r})"


@dataclass(frozen=True)
class ConnectedCalendar:
    """A calendar of one of the user's connected accounts (F2)."""

    connection_id: str
    calendar_id: str
    account_email: str
    name: str
    access_role: str
    primary: bool
    color: str | None
    time_zone: str | None
    conflict: bool
    refreshed_at: datetime

    @property
    def writable(self) -> bool:
        return self.access_role in ("owner", "writer")
