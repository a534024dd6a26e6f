"""Domain objects shared by logic, the DAL, the ports and the API. Plain data and rules: nothing
here imports anything that does I/O (the architecture test holds it to that).

``from crmsync.domain import X`` finds every object of :mod:`crmsync.domain.objects` (and
:class:`Principal`); those are loaded on first use of one of their names (PEP 562), not with
the package: the webhooks need only :class:`Principal` and the id rules, and a dozen
dataclasses and enums are a measurable part of their cold start (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crmsync.domain.principal import Principal

if TYPE_CHECKING:
    from crmsync.domain.objects import (
        MAX_APPOINTMENT_DURATION,
        WRITABLE_ROLES,
        Appointment,
        AppointmentStatus,
        CalendarRef,
        CalendarSettings,
        ConnectedCalendar,
        Connection,
        ConnectionStatus,
        Counter,
        CredentialKind,
        EventLink,
        ExternalDeletion,
        ExternalEvent,
        NoCounter,
        PendingAuthorization,
        ProviderCalendar,
        StoredConnection,
        SyncDirection,
        SyncPreferences,
        appointment_id_in,
        busy_span,
        event_end,
        event_id_for,
        imported_appointment_id,
    )

__all__ = [
    "MAX_APPOINTMENT_DURATION",
    "WRITABLE_ROLES",
    "Appointment",
    "AppointmentStatus",
    "CalendarRef",
    "CalendarSettings",
    "ConnectedCalendar",
    "Connection",
    "ConnectionStatus",
    "Counter",
    "CredentialKind",
    "EventLink",
    "ExternalDeletion",
    "ExternalEvent",
    "NoCounter",
    "PendingAuthorization",
    "Principal",
    "ProviderCalendar",
    "StoredConnection",
    "SyncDirection",
    "SyncPreferences",
    "appointment_id_in",
    "busy_span",
    "event_end",
    "event_id_for",
    "imported_appointment_id",
]
_OBJECTS = frozenset(__all__) - {"Principal"}


def __getattr__(name: str) -> Any:
    if name not in _OBJECTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("crmsync.domain.objects"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_OBJECTS])
