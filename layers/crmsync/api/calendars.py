"""Routes of /v1/calendars (F2)."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import principal_of
from crmsync.api.openapi import answer, responses
from crmsync.api.schemas import CalendarList, CalendarWithStatusOut
from crmsync.config import get_settings
from crmsync.logic.calendars import Calendars
from crmsync.logic.wiring import build_calendars

router = APIGatewayHttpRouter()


@lru_cache(maxsize=1)
def calendars() -> Calendars:
    return build_calendars(get_settings())


@router.get("/v1/calendars", responses=responses(200, CalendarList))
def list_calendars() -> Response[CalendarList]:
    principal = principal_of(router.current_event, get_settings())
    items = [CalendarWithStatusOut.of_status(c) for c in calendars().with_status(principal)]
    return answer(200, CalendarList(items=items))
