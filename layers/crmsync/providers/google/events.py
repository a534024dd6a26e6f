"""Calendar event bodies for CRM appointments, and the event ids derived from them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmsync.domain import Appointment, ExternalEvent

#: Keys of ``extendedProperties.private`` that mark an event as ours (echo recognition).
PROP_APPOINTMENT = "crmAppointmentId"
PROP_TENANT = "crmTenantId"
PROP_REVISION = "crmRevision"


def event_id_for(appointment_id: str) -> str:
    """Google lets clients choose event ids (base32hex: a–v, 0–9; 5–1024 characters). Deriving
    it from the appointment id makes a retried insert after a timeout hit the same event
    (409) instead of creating a second one."""
    event_id = "crm" + appointment_id.lower()
    if not (5 <= len(event_id) <= 1024) or any(ch not in "0123456789abcdefghijklmnopqrstuv" for ch in event_id):
        raise ValueError("appointment ids must be hex")
    return event_id


def appointment_id_in(event_id: str) -> str | None:
    """The appointment id an event id was derived from (:func:`event_id_for`), if it was."""
    if not event_id.startswith("crm") or len(event_id) <= 3:
        return None
    rest = event_id[3:]
    return rest if all(ch in "0123456789abcdef" for ch in rest) else None


def event_body(appointment: Appointment) -> dict[str, Any]:
    """The event as the CRM wants it; our ids ride in private extended properties."""
    body: dict[str, Any] = {
        "id": event_id_for(appointment.appointment_id),
        "summary": appointment.title,
        "start": {"dateTime": _rfc3339(appointment.start), "timeZone": appointment.time_zone},
        "end": {"dateTime": _rfc3339(appointment.end), "timeZone": appointment.time_zone},
        "status": "confirmed",
        "extendedProperties": {
            "private": {
                PROP_APPOINTMENT: appointment.appointment_id,
                PROP_TENANT: appointment.tenant_id,
                PROP_REVISION: str(appointment.revision),
            }
        },
    }
    if appointment.location:
        body["location"] = appointment.location
    if appointment.description:
        body["description"] = appointment.description
    if appointment.attendees:
        body["attendees"] = [{"email": email} for email in appointment.attendees]
    return body


def _rfc3339(moment: Any) -> str:
    return str(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def parse_event(raw: dict[str, Any], tenant_id: str) -> ExternalEvent:
    """A provider event as we mirror it. Cancelled items may carry nothing but an id."""
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
