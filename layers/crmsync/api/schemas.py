"""Request and response bodies of the /v1 API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crmsync.domain import ConnectedCalendar, Connection

Feature = Literal["calendar", "email", "contacts"]


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Features to request scopes for; default: every feature enabled in this deployment.
    features: list[Feature] | None = Field(default=None, min_length=1, max_length=3)
    #: Pre-selects the Google account on the consent screen.
    login_hint: str | None = Field(default=None, max_length=320)


class AuthorizeResponse(BaseModel):
    authorization_url: str
    expires_at: datetime


class IntegrationOut(BaseModel):
    id: str
    provider: str
    email: str
    display_name: str | None
    status: Literal["connected", "needs_reauth", "error"]
    status_reason: str | None
    scopes: list[str]
    connected_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None

    @classmethod
    def of(cls, c: Connection) -> IntegrationOut:
        return cls(
            id=c.connection_id,
            provider=c.provider,
            email=c.email,
            display_name=c.display_name,
            status=c.status.value,
            status_reason=c.status_reason,
            scopes=list(c.scopes),
            connected_at=c.created_at,
            updated_at=c.updated_at,
            last_checked_at=c.last_checked_at,
        )


class IntegrationList(BaseModel):
    items: list[IntegrationOut]


class CalendarOut(BaseModel):
    connection_id: str
    account_email: str
    calendar_id: str
    name: str
    access_role: str
    primary: bool
    writable: bool
    color: str | None
    time_zone: str | None
    conflict: bool
    refreshed_at: datetime

    @classmethod
    def of(cls, c: ConnectedCalendar) -> CalendarOut:
        return cls(
            connection_id=c.connection_id,
            account_email=c.account_email,
            calendar_id=c.calendar_id,
            name=c.name,
            access_role=c.access_role,
            primary=c.primary,
            writable=c.writable,
            color=c.color,
            time_zone=c.time_zone,
            conflict=c.conflict,
            refreshed_at=c.refreshed_at,
        )


class CalendarList(BaseModel):
    items: list[CalendarOut]
