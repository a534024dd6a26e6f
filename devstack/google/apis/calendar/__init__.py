"""Google Calendar v3 emulation: events with recurrence and sync tokens, watch channels, free/busy.

The registered import ``from devstack.google.apis.calendar import CalendarService`` lives here.
"""

from __future__ import annotations

from devstack.google.apis.calendar.service import CalendarService
from devstack.google.apis.calendar.store import CalendarStore

__all__ = ["CalendarService", "CalendarStore"]
