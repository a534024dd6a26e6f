"""Routes of /v1/settings/email-sync (F8, seed 000 "Email (2-way sync)"): two-way Gmail sync
on, off, and its state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from crmsync.api.binding import BINDING_COOKIE, binding_cookie, cookie_value
from crmsync.api.http import principal_of
from crmsync.api.openapi import ID_PATTERN, answer, no_content, responses
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.domain.mail_sync import DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS
from crmsync.errors import Conflict
from crmsync.logic.mail_sync_settings import MailSyncSettings, MailSyncStatus

router = APIGatewayHttpRouter()


class BackfillOut(BaseModel):
    #: Messages checked and logged so far.
    checked: int
    logged: int
    #: How much of the window is behind the backfill (0–99; it is done when the state is live).
    percent: int


class EmailSyncOut(BaseModel):
    #: off; backfilling (the window's mail is being read, ``backfill`` says how far); live
    #: (new mail arrives as Gmail reports it); needs_reauthorization (the account must be
    #: connected again, or Google no longer grants its mail); error (``last_error`` says why;
    #: the sync retries).
    state: Literal["off", "backfilling", "live", "needs_reauthorization", "error"]
    connection_id: str | None
    account_email: str | None
    enabled_at: datetime | None
    #: Mail of the last N days is backfilled, and pulled for each new contact.
    window_days: int
    backfill: BackfillOut | None
    last_synced_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, s: MailSyncStatus) -> EmailSyncOut:
        return cls(
            state=s.state,
            connection_id=s.connection.connection_id if s.connection else None,
            account_email=s.connection.email if s.connection else None,
            enabled_at=s.enabled_at,
            window_days=s.window_days,
            backfill=BackfillOut(checked=s.backfill.checked, logged=s.backfill.logged, percent=s.backfill.percent)
            if s.backfill
            else None,
            last_synced_at=s.last_synced_at,
            last_error=s.last_error,
        )


class EnableEmailSyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The Google account whose Gmail to sync; absent: connect a new account.
    connection_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID_PATTERN)
    #: How many days of past mail to bring in (default 90).
    window_days: StrictInt = Field(default=DEFAULT_WINDOW_DAYS, ge=1, le=MAX_WINDOW_DAYS)


class EnableEmailSyncResponse(BaseModel):
    #: Present when the user must consent at Google first (Gmail's read and send access):
    #: open it; the callback enables sync and returns to the Email settings page. Absent:
    #: enabled at once.
    authorization_url: str | None
    expires_at: datetime | None
    sync: EmailSyncOut


class EmailSyncRunOut(BaseModel):
    queued: bool


def mail_sync() -> MailSyncSettings:
    return graph().mail_sync_settings


@router.get("/v1/settings/email-sync", responses=responses(200, EmailSyncOut))
def get_email_sync() -> Response[EmailSyncOut]:
    principal = principal_of(router.current_event, get_settings())
    return answer(200, EmailSyncOut.of(mail_sync().status(principal)))


@router.post("/v1/settings/email-sync", responses=responses(200, EnableEmailSyncResponse, 404, 422, body=True))
def enable_email_sync(
    body: Annotated[EnableEmailSyncRequest | None, Body()] = None,
) -> Response[EnableEmailSyncResponse]:
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    request = body or EnableEmailSyncRequest()
    outcome = mail_sync().enable(
        principal,
        request.connection_id,
        request.window_days,
        binding=cookie_value(router.current_event.cookies, BINDING_COOKIE),
    )
    start = outcome.authorization
    payload = EnableEmailSyncResponse(
        authorization_url=start.authorization_url if start else None,
        expires_at=start.expires_at if start else None,
        sync=EmailSyncOut.of(outcome.status),
    )
    response = answer(200, payload)
    if start is not None:
        response.cookies.append(binding_cookie(settings, start.binding, settings.oauth_state_ttl_seconds))
    return response


@router.delete("/v1/settings/email-sync", responses=responses(204, None))
def disable_email_sync() -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    mail_sync().disable(principal)
    return no_content()


@router.post("/v1/settings/email-sync/run", responses=responses(202, EmailSyncRunOut, 409))
def run_email_sync() -> Response[EmailSyncRunOut]:
    principal = principal_of(router.current_event, get_settings())
    if not mail_sync().sync_now(principal):
        raise Conflict("Two-way email sync is off; enable it first.")
    return answer(202, EmailSyncRunOut(queued=True))
