"""People v1 (Google Contacts): see :mod:`devstack.google.apis.people.service`."""

from __future__ import annotations

from devstack.google.apis.people.service import PeopleService
from devstack.google.apis.people.store import PeopleStore

__all__ = ["PeopleService", "PeopleStore"]
