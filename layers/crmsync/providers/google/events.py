"""Google Calendar's event format: the body of an :class:`EventDraft`, and an event as the
calendar port's :class:`ExternalEvent`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmsync.domain import ExternalEvent, event_id_for
from crmsync.ports.calendar import EventDraft

#: Keys of ``extendedProperties.private`` that mark an event as ours (echo recognition).
PROP_APPOINTMENT = "crmAppointmentId"
PROP_TENANT = "crmTenantId"
PROP_REVISION = "crmRevision"


def event_body(draft: EventDraft) -> dict[str, Any]:
    """The event as the CRM wants it, under the id derived from ours (Google lets clients
    choose event ids); our ids ride in private extended properties."""
    body: dict[str, Any] = {
        "id": event_id_for(draft.key),
        "summary": draft.title,
        "start": {"dateTime": rfc3339(draft.start), "timeZone": draft.time_zone},
        "end": {"dateTime": rfc3339(draft.end), "timeZone": draft.time_zone},
        "status": "confirmed",
        "extendedProperties": {
            "private": {
                PROP_APPOINTMENT: draft.key,
                PROP_TENANT: draft.tenant_id,
                PROP_REVISION: str(draft.revision),
            }
        },
    }
    if draft.location:
        body["location"] = draft.location
    if draft.description:
        body["description"] = draft.description
    if draft.attendees:
        body["attendees"] = [{"email": email} for email in draft.attendees]
    return body


def rfc3339(moment: datetime) -> str:
    """A UTC instant as Google writes it (whole seconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_event(raw: dict[str, Any], tenant_id: str) -> ExternalEvent:
    """A provider event as we mirror it. Cancelled items may carry nothing but an id.
    Only our own tenant's marker makes an event ours (another tenant's is someone else's)."""
    private = (raw.get("extendedProperties") or {}).get("private") or {}
    ours = private.get(PROP_APPOINTMENT) if private.get(PROP_TENANT) == tenant_id else None
    start, end = raw.get("start") or {}, raw.get("end") or {}
    me = next((a for a in raw.get("attendees") or [] if a.get("self")), None)
    return ExternalEvent(
        event_id=str(raw["id"]),
        cancelled=raw.get("status") == "cancelled",
        start=_parse_instant(start.get("dateTime")),
        end=_parse_instant(end.get("dateTime")),
        start_date=start.get("date"),
        end_date=end.get("date"),
        transparent=raw.get("transparency") == "transparent",
        declined=bool(me and me.get("responseStatus") == "declined"),
        summary=raw.get("summary"),
        etag=raw.get("etag"),
        crm_appointment_id=ours,
        time_zone=start.get("timeZone"),
        event_type=str(raw.get("eventType") or "default"),
    )


def _parse_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
