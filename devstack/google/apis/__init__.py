"""The emulated Google REST APIs (Calendar v3, Gmail v1, People v1).

Each API is an :class:`~devstack.google.apis.service.ApiService`: it names the methods it
implements by their discovery-document ids, and the base class gives every one of them
Google's edge — discovery-based request validation, bearer-token authentication with
scope checks, injected faults and Google's JSON error shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.google.server import EmulatorContext, Service


def api_services(ctx: EmulatorContext) -> list[Service]:
    """Every emulated API that exists. Each API module registers itself here."""
    from devstack.google.apis.calendar import CalendarService
    from devstack.google.apis.gmail import GmailService
    from devstack.google.apis.people import PeopleService

    return [CalendarService(ctx), GmailService(ctx), PeopleService(ctx)]
