"""GET /v1/availability (F4)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, Field

from crmsync.api.http import principal_of
from crmsync.api.openapi import answer, responses
from crmsync.api.schemas import Moment
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.errors import Unprocessable
from crmsync.logic.availability import Availability

router = APIGatewayHttpRouter()


Instant = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Slot(BaseModel):
    start: Instant
    end: Instant


class Busy(BaseModel):
    start: Instant
    end: Instant
    #: ``crm``: an appointment; ``calendar``: busy time in a conflict or the linked calendar.
    source: str


class AvailabilityOut(BaseModel):
    time_zone: str
    slots: list[Slot]
    busy: list[Busy]


def availability() -> Availability:
    return graph().availability


@router.get("/v1/availability", responses=responses(200, AvailabilityOut))
def get_availability(
    start: Annotated[Moment, Query()],
    end: Annotated[Moment, Query()],
    duration: Annotated[int, Query(), Field(ge=5, le=480)] = 30,
    step: Annotated[int | None, Query(), Field(ge=5, le=480)] = None,
    tz: Annotated[str, Query(), Field(max_length=64)] = "UTC",
) -> Response[AvailabilityOut]:
    """Free slots of ``duration`` minutes every ``step`` minutes (default: ``duration``),
    with the busy intervals that shaped them; times are shown in ``tz``."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Unprocessable(f"Unknown time zone {tz!r}.") from None
    principal = principal_of(router.current_event, get_settings())
    slots, busy = availability().free_slots(
        principal, start, end, timedelta(minutes=duration), timedelta(minutes=step or duration)
    )

    def show(moment: datetime) -> str:
        return moment.astimezone(zone).isoformat()

    body = AvailabilityOut(
        time_zone=tz,
        slots=[Slot(start=show(s), end=show(e)) for s, e in slots],
        busy=[Busy(start=show(b.start), end=show(b.end), source=b.source) for b in busy],
    )
    return answer(200, body)
