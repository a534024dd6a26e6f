"""Routes of /v1/contacts/sync (F10, seed 004 steps 1–5): Google Contacts sync on, off, state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from crmsync.api.binding import BINDING_COOKIE, binding_cookie, cookie_value
from crmsync.api.http import principal_of
from crmsync.api.openapi import ID_PATTERN, answer, no_content, responses
from crmsync.api.schemas import PendingDeletionsOut
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.errors import Conflict
from crmsync.guard import Decision, PendingDeletions
from crmsync.logic.contacts_sync_settings import ContactsSyncSettings, ContactsSyncStatus

router = APIGatewayHttpRouter()


class ContactPendingDeletionsOut(PendingDeletionsOut):
    """Contact deletions held back (the mass-deletion guard): ``deletions`` of the ``mirrored``
    linked contacts. ``side``: ``google`` (deleted in Google: applying unlinks the CRM contacts)
    or ``crm`` (deleted in the CRM: applying deletes the Google contacts the CRM created)."""

    side: Literal["google", "crm"]

    @classmethod
    def of_contacts(cls, p: PendingDeletions) -> ContactPendingDeletionsOut:
        return cls(**PendingDeletionsOut.of(p).model_dump(), side=p.resource.resource_id)  # type: ignore[arg-type]


class ContactsSyncOut(BaseModel):
    #: off; syncing (the first sync has not finished); complete (nothing to review);
    #: contacts_found (``candidates`` Google contacts wait for the import review); applying
    #: (the user's answer to the review is being carried out).
    state: Literal["off", "syncing", "complete", "contacts_found", "applying"]
    #: The contacts account (one of the user's integrations), null when off.
    connection_id: str | None
    account_email: str | None
    enabled_at: datetime | None
    candidates: int
    last_synced_at: datetime | None
    last_error: str | None
    #: Deletions waiting for the user's Apply or Ignore (empty when none).
    pending_deletions: list[ContactPendingDeletionsOut]

    @classmethod
    def of(cls, s: ContactsSyncStatus) -> ContactsSyncOut:
        return cls(
            state=s.state,
            connection_id=s.connection.connection_id if s.connection else None,
            account_email=s.connection.email if s.connection else None,
            enabled_at=s.enabled_at,
            candidates=s.candidates,
            last_synced_at=s.last_synced_at,
            last_error=s.last_error,
            pending_deletions=[ContactPendingDeletionsOut.of_contacts(p) for p in s.pending_deletions],
        )


class EnableContactsSyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The Google account to sync contacts with; absent: connect a new account.
    connection_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID_PATTERN)


class EnableContactsSyncResponse(BaseModel):
    #: Present when the user must consent at Google first: open it; the callback enables
    #: sync and returns to the Integrations page. Absent: enabled at once.
    authorization_url: str | None
    expires_at: datetime | None
    sync: ContactsSyncOut


def contacts_sync() -> ContactsSyncSettings:
    return graph().contacts_sync_settings


@router.get("/v1/contacts/sync", responses=responses(200, ContactsSyncOut))
def get_contacts_sync() -> Response[ContactsSyncOut]:
    principal = principal_of(router.current_event, get_settings())
    return answer(200, ContactsSyncOut.of(contacts_sync().status(principal)))


@router.post(
    "/v1/contacts/sync",
    responses=responses(200, EnableContactsSyncResponse, 404, 409, body=True),
)
def enable_contacts_sync(
    body: Annotated[EnableContactsSyncRequest | None, Body()] = None,
) -> Response[EnableContactsSyncResponse]:
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    request = body or EnableContactsSyncRequest()
    outcome = contacts_sync().enable(
        principal, request.connection_id, binding=cookie_value(router.current_event.cookies, BINDING_COOKIE)
    )
    start = outcome.authorization
    payload = EnableContactsSyncResponse(
        authorization_url=start.authorization_url if start else None,
        expires_at=start.expires_at if start else None,
        sync=ContactsSyncOut.of(outcome.status),
    )
    response = answer(200, payload)
    if start is not None:
        response.cookies.append(binding_cookie(settings, start.binding, settings.oauth_state_ttl_seconds))
    return response


@router.delete("/v1/contacts/sync", responses=responses(204, None))
def disable_contacts_sync() -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    contacts_sync().disable(principal)
    return no_content()


class SyncNowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["login", "manual"] = Field(
        default="manual",
        description="login: the CRM front end reports that the user logged in (seed 004: changes "
        "are reflected at the next login); manual: the user asks for a sync now.",
    )


@router.post("/v1/contacts/sync/run", responses=responses(202, ContactsSyncOut, 409, body=True))
def run_contacts_sync(body: Annotated[SyncNowIn | None, Body()] = None) -> Response[ContactsSyncOut]:
    """Sync the contacts account now (reported logins: one sync per minute however many;
    "Sync now": one per second, so a double click is one sync). 409 when contacts sync is off."""
    principal = principal_of(router.current_event, get_settings())
    service = contacts_sync()
    if not service.sync_now(principal, (body or SyncNowIn()).reason):
        raise Conflict("Contacts sync is off: enable it first (POST /v1/contacts/sync).")
    return answer(202, ContactsSyncOut.of(service.status(principal)))


@router.post("/v1/contacts/sync/pending-deletions/apply", responses=responses(202, ContactsSyncOut, 404, 409))
def apply_pending_contact_deletions() -> Response[ContactsSyncOut]:
    """Apply the contact deletions the sync held back; the sync queued now carries them out."""
    principal = principal_of(router.current_event, get_settings())
    return answer(202, ContactsSyncOut.of(contacts_sync().decide_deletions(principal, Decision.APPLY)))


@router.post("/v1/contacts/sync/pending-deletions/ignore", responses=responses(202, ContactsSyncOut, 404, 409))
def ignore_pending_contact_deletions() -> Response[ContactsSyncOut]:
    """Ignore them: the other side is kept; the sync queued now carries it out."""
    principal = principal_of(router.current_event, get_settings())
    return answer(202, ContactsSyncOut.of(contacts_sync().decide_deletions(principal, Decision.IGNORE)))
