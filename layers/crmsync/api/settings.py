"""Routes of /v1/settings: linked calendar (F3), conflict calendars (F4), sync preferences (F6)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import principal_of
from crmsync.api.openapi import answer, responses
from crmsync.api.schemas import CalendarRefIn, CalendarSettingsOut, ConflictCalendarsIn, SyncPreferencesIn
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.domain import CalendarRef, ExternalDeletion, SyncDirection, SyncPreferences
from crmsync.logic.calendar_settings import CalendarSettingsService, CalendarSettingsView

router = APIGatewayHttpRouter()


def service() -> CalendarSettingsService:
    return graph().calendar_settings


def _answer(view: CalendarSettingsView) -> Response[CalendarSettingsOut]:
    return answer(200, CalendarSettingsOut.of(view))


@router.get("/v1/settings/calendar", responses=responses(200, CalendarSettingsOut))
def get_calendar_settings() -> Response[CalendarSettingsOut]:
    return _answer(service().view(principal_of(router.current_event, get_settings())))


@router.put("/v1/settings/linked-calendar", responses=responses(200, CalendarSettingsOut, 404, 409, body=True))
def put_linked_calendar(body: Annotated[CalendarRefIn, Body()]) -> Response[CalendarSettingsOut]:
    principal = principal_of(router.current_event, get_settings())
    return _answer(service().link(principal, CalendarRef(body.connection_id, body.calendar_id)))


@router.delete("/v1/settings/linked-calendar", responses=responses(200, CalendarSettingsOut))
def delete_linked_calendar() -> Response[CalendarSettingsOut]:
    return _answer(service().unlink(principal_of(router.current_event, get_settings())))


@router.put("/v1/settings/conflict-calendars", responses=responses(200, CalendarSettingsOut, 404, 409, body=True))
def put_conflict_calendars(body: Annotated[ConflictCalendarsIn, Body()]) -> Response[CalendarSettingsOut]:
    principal = principal_of(router.current_event, get_settings())
    refs = [CalendarRef(c.connection_id, c.calendar_id) for c in body.calendars]
    return _answer(service().set_conflict_calendars(principal, refs))


@router.put("/v1/settings/sync-preferences", responses=responses(200, CalendarSettingsOut, body=True))
def put_sync_preferences(body: Annotated[SyncPreferencesIn, Body()]) -> Response[CalendarSettingsOut]:
    principal = principal_of(router.current_event, get_settings())
    preferences = SyncPreferences(
        direction=SyncDirection(body.direction),
        external_deletion=ExternalDeletion(body.external_deletion),
        window_days_back=body.window_days_back,
        window_days_ahead=body.window_days_ahead,
    )
    return _answer(service().set_preferences(principal, preferences))
