"""Routes of /v1/appointments: the CRM side of F3 (each change is pushed to the linked calendar)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import principal_of
from crmsync.api.idempotency import IdempotencyKeyHeader, idempotent_create
from crmsync.api.openapi import AppointmentId, answer, responses
from crmsync.api.schemas import AppointmentIn, AppointmentList, AppointmentOut, AppointmentPatch, Moment
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import Appointment
from crmsync.logic.appointments import Appointments

router = APIGatewayHttpRouter()


def appointments() -> Appointments:
    return graph().appointments


def _one(status: int, appointment: Appointment) -> Response[AppointmentOut]:
    return answer(status, AppointmentOut.of(appointment))


@router.post("/v1/appointments", responses=responses(201, AppointmentOut, 409, 503, body=True))
def create_appointment(
    body: Annotated[AppointmentIn, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> Response[AppointmentOut]:
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    fields = AppointmentFields(
        title=body.title,
        start=body.start,
        end=body.end,
        time_zone=body.time_zone,
        contact_id=body.contact_id,
        attendees=tuple(body.attendees),
        location=body.location,
        description=body.description,
    )
    return idempotent_create(
        "appointments.create",
        principal,
        idempotency_key,
        body,
        lambda: _one(201, appointments().create(principal, fields)),
        settings=settings,
        lambda_context=getattr(router, "lambda_context", None),
    )


@router.get("/v1/appointments", responses=responses(200, AppointmentList))
def list_appointments(
    start: Annotated[Moment | None, Query()] = None, end: Annotated[Moment | None, Query()] = None
) -> Response[AppointmentList]:
    principal = principal_of(router.current_event, get_settings())
    items = [AppointmentOut.of(a) for a in appointments().between(principal, start, end)]
    return answer(200, AppointmentList(items=items))


@router.get("/v1/appointments/<appointment_id>", responses=responses(200, AppointmentOut, 404))
def get_appointment(appointment_id: AppointmentId) -> Response[AppointmentOut]:
    return _one(200, appointments().get(principal_of(router.current_event, get_settings()), appointment_id))


@router.patch("/v1/appointments/<appointment_id>", responses=responses(200, AppointmentOut, 404, 409, body=True))
def patch_appointment(
    appointment_id: AppointmentId, body: Annotated[AppointmentPatch, Body()]
) -> Response[AppointmentOut]:
    principal = principal_of(router.current_event, get_settings())
    changes = body.model_dump(exclude_unset=True)
    if "attendees" in changes:
        changes["attendees"] = tuple(changes["attendees"] or ())
    return _one(200, appointments().change(principal, appointment_id, **changes))


@router.delete("/v1/appointments/<appointment_id>", responses=responses(200, AppointmentOut, 404))
def cancel_appointment(appointment_id: AppointmentId) -> Response[AppointmentOut]:
    return _one(200, appointments().cancel(principal_of(router.current_event, get_settings()), appointment_id))
