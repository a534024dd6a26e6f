"""How the emulator writes Graph JSON: events, times, responses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Response

from devstack.microsoft.graph.state import Event
from devstack.microsoft.graph.zones import to_zone


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status, headers=headers, content_type="application/json")


def fmt(moment: datetime) -> str:
    # Graph writes seven fractional digits and no offset inside dateTimeTimeZone.
    return f"{moment:%Y-%m-%dT%H:%M:%S}.0000000"


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_event(event: Event, timezone: str | None, expand: list[str] | None = None) -> dict[str, Any]:
    """An event as Graph returns it. Times are in UTC unless ``timezone`` (from
    ``Prefer: outlook.timezone``) names another zone; all-day events stay midnight to midnight
    in their own zone, as Microsoft Q&A 1382503 reports Graph doing."""

    def when(wall: datetime, zone: str) -> dict[str, str]:
        if event.is_all_day:
            return {"dateTime": fmt(wall), "timeZone": zone}
        target = timezone or "UTC"
        moment = wall.replace(tzinfo=to_zone(zone)).astimezone(to_zone(target))
        return {"dateTime": fmt(moment), "timeZone": target}

    body: dict[str, Any] = {
        "@odata.etag": event.etag(),
        "id": event.id,
        "createdDateTime": utc(event.created),
        "lastModifiedDateTime": utc(event.modified),
        "changeKey": event.change_key(),
        "transactionId": event.transaction_id,
        "subject": event.subject,
        "bodyPreview": event.body.get("content", "")[:255],
        "body": dict(event.body),
        "start": when(event.start, event.zone),
        "end": when(event.end, event.end_zone),
        "originalStartTimeZone": event.zone,
        "originalEndTimeZone": event.end_zone,
        "isAllDay": event.is_all_day,
        "showAs": event.show_as,
        "isCancelled": event.is_cancelled,
        "responseStatus": {"response": event.response, "time": "0001-01-01T00:00:00Z"},
        "type": event.type,
        "seriesMasterId": event.series_master_id,
        "recurrence": event.recurrence,
    }
    if event.original_start is not None:
        body["originalStart"] = utc(event.original_start.replace(tzinfo=to_zone(event.zone)))
    if expand is not None:
        wanted = {i.lower() for i in expand}
        props = [{"id": k, "value": v} for k, v in event.extended.items() if k.lower() in wanted]
        if props:
            body["singleValueExtendedProperties"] = props
    return body
