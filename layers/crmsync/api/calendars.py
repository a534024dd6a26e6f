"""Routes of /v1/calendars (F2), and the answer to deletions held by the mass-deletion guard."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import principal_of
from crmsync.api.openapi import ConnectionId, answer, responses
from crmsync.api.schemas import CalendarList, CalendarRefIn, CalendarWithStatusOut, SyncQueuedOut
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.guard import Decision
from crmsync.logic.calendars import Calendars

router = APIGatewayHttpRouter()


def calendars() -> Calendars:
    return graph().calendars


@router.get("/v1/calendars", responses=responses(200, CalendarList))
def list_calendars() -> Response[CalendarList]:
    principal = principal_of(router.current_event, get_settings())
    # The settings page's load: its polled (CalDAV) calendars are polled now too.
    items = [CalendarWithStatusOut.of_status(c) for c in calendars().viewed(principal)]
    return answer(200, CalendarList(items=items))


def _decide(body: CalendarRefIn, decision: Decision) -> Response[CalendarWithStatusOut]:
    principal = principal_of(router.current_event, get_settings())
    status = calendars().decide_deletions(principal, body.connection_id, body.calendar_id, decision)
    # Accepted: the calendar's next sync (requested now) carries the answer out.
    return answer(202, CalendarWithStatusOut.of_status(status))


@router.post(
    "/v1/calendars/pending-deletions/apply", responses=responses(202, CalendarWithStatusOut, 404, 409, body=True)
)
def apply_pending_deletions(body: Annotated[CalendarRefIn, Body()]) -> Response[CalendarWithStatusOut]:
    return _decide(body, Decision.APPLY)


@router.post(
    "/v1/calendars/pending-deletions/ignore", responses=responses(202, CalendarWithStatusOut, 404, 409, body=True)
)
def ignore_pending_deletions(body: Annotated[CalendarRefIn, Body()]) -> Response[CalendarWithStatusOut]:
    return _decide(body, Decision.IGNORE)


@router.post("/v1/integrations/<connection_id>/sync", responses=responses(202, SyncQueuedOut, 404, 409))
def sync_integration(connection_id: ConnectionId) -> Response[SyncQueuedOut]:
    """The user's "Sync now": the account's synced calendars are queued for a sync."""
    principal = principal_of(router.current_event, get_settings())
    return answer(202, SyncQueuedOut(calendars=calendars().sync_now(principal, connection_id)))
