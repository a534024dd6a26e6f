"""Calendar v3 (not implemented yet: the discovery document is loaded, no method is served)."""

from __future__ import annotations

from devstack.google.apis.service import ApiService


class CalendarService(ApiService):
    api_name = "calendar"
    api_version = "v3"
