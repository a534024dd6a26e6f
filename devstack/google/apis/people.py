"""People v1 (not implemented yet: the discovery document is loaded, no method is served)."""

from __future__ import annotations

from devstack.google.apis.service import ApiService


class PeopleService(ApiService):
    api_name = "people"
    api_version = "v1"
