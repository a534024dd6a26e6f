"""The API function's routes (the /v1 API of :mod:`crmsync.api` and the settings pages here),
each router module imported on the first request it may serve.

The API is one function for some fifty routes over eleven router modules (and the settings
pages); importing them all, with their schemas, use cases and stores, was most of its cold
start (docs/PERFORMANCE.md, "Cold-start imports"), while a request needs one. :data:`ROUTERS`
names each module and the paths it serves, in the order the routers are included;
:class:`Api` keeps a resolver of the routers loaded so far and, when a request's path may be
served by a router not yet loaded, imports it and builds the resolver anew with every loaded
router in that order. So a request meets the routes the full API would have tried before its
own, in the same order, and is answered as the full API answers it (a path no router serves:
powertools' 404). tests/unit/test_api_routing.py checks the table against what each router
registers, and :meth:`Api.full` (every router) serves the OpenAPI document and the route checks.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from crmsync.api.http import refuse_unknown_query_parameters, register_error_handlers

#: Every router of the API function, in the order it is included (the order decides which of
#: two routes matching one request answers it), with the paths it serves (powertools' syntax).
ROUTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "crmsync.api.integrations",
        (
            "/v1/integrations",
            "/v1/integrations/<connection_id>",
            "/v1/integrations/google/authorize",
            "/v1/integrations/icloud",
            "/v1/integrations/microsoft/authorize",
        ),
    ),
    (
        "crmsync.api.calendars",
        (
            "/v1/calendars",
            "/v1/calendars/pending-deletions/apply",
            "/v1/calendars/pending-deletions/ignore",
            "/v1/integrations/<connection_id>/sync",
        ),
    ),
    (
        "crmsync.api.settings",
        (
            "/v1/settings/calendar",
            "/v1/settings/conflict-calendars",
            "/v1/settings/linked-calendar",
            "/v1/settings/sync-preferences",
        ),
    ),
    ("crmsync.api.appointments", ("/v1/appointments", "/v1/appointments/<appointment_id>")),
    ("crmsync.api.availability", ("/v1/availability",)),
    (
        "crmsync.api.email_settings",
        (
            "/v1/settings/bcc-address",
            "/v1/settings/bcc-address/rotate",
            "/v1/settings/never-log",
            "/v1/settings/never-log/<entry>",
            "/v1/settings/sender-addresses",
            "/v1/settings/sender-addresses/<email>",
        ),
    ),
    ("crmsync.api.mail_sync", ("/v1/settings/email-sync", "/v1/settings/email-sync/run")),
    ("crmsync.api.mail_send", ("/v1/contacts/<contact_id>/messages", "/v1/uploads")),
    # Before contacts: /v1/contacts/review and /v1/contacts/sync are not contact ids.
    (
        "crmsync.api.contact_review",
        (
            "/v1/contacts/review",
            "/v1/contacts/review/<candidate_id>",
            "/v1/contacts/review/answer",
            "/v1/contacts/review/restore",
            "/v1/contacts/review/select",
        ),
    ),
    (
        "crmsync.api.contacts_sync",
        (
            "/v1/contacts/sync",
            "/v1/contacts/sync/pending-deletions/apply",
            "/v1/contacts/sync/pending-deletions/ignore",
            "/v1/contacts/sync/run",
        ),
    ),
    (
        "crmsync.api.contacts",
        (
            "/v1/contact-types",
            "/v1/contacts",
            "/v1/contacts/<contact_id>",
            "/v1/contacts/<contact_id>/conversation",
            "/v1/contacts/<contact_id>/conversation/<message_key>",
            "/v1/settings/contacts",
        ),
    ),
    ("crmsync.web.pages", ("/settings/<page>", "/settings/contacts/review")),
)


def pattern(path: str) -> re.Pattern[str]:
    """A route's path as a regular expression that matches at least what powertools' matches
    (a parameter: one path segment)."""
    return re.compile(
        "".join("[^/]+" if part.startswith("<") else re.escape(part) for part in re.split(r"(<\w+>)", path))
    )


_PATTERNS = tuple((module, tuple(pattern(path) for path in paths)) for module, paths in ROUTERS)


def routers_for(path: str) -> list[str]:
    """The router modules with a route that may serve ``path`` (any method), in order."""
    return [module for module, patterns in _PATTERNS if any(p.fullmatch(path) for p in patterns)]


def build(modules: set[str] | frozenset[str]) -> APIGatewayHttpResolver:
    """A resolver of the given routers (in :data:`ROUTERS` order), with the API's validation,
    problem documents and query parameter check."""
    app = APIGatewayHttpResolver(enable_validation=True)
    register_error_handlers(app)
    app.use(middlewares=[refuse_unknown_query_parameters])
    for module, _ in ROUTERS:
        if module in modules:
            app.include_router(importlib.import_module(module).router)
    return app


class Api:
    """The API function's resolver, grown router by router as requests need them."""

    def __init__(self) -> None:
        self._loaded: frozenset[str] = frozenset()
        self._app: APIGatewayHttpResolver | None = None

    def resolver_for(self, path: str) -> APIGatewayHttpResolver:
        needed = frozenset(routers_for(path))
        if self._app is None or not needed <= self._loaded:
            self._loaded |= needed
            self._app = build(self._loaded)
        return self._app

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        app = self.resolver_for(str(event.get("rawPath") or ""))
        # A router reads the request through the resolver it was last included in
        # (``router.api_resolver``, set by ``include_router``): make sure that is this one, even
        # if another resolver of the same routers was built since (``full()``, in tests).
        for module in self._loaded:
            router = importlib.import_module(module).router
            if router.api_resolver is not app:
                router.api_resolver = app
        return app.resolve(event, context)

    @staticmethod
    def full() -> APIGatewayHttpResolver:
        """Every router: the whole API (its OpenAPI document, the route checks)."""
        return build(frozenset(module for module, _ in ROUTERS))
