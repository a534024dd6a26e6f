"""The Graph v1.0 calendar surface as a werkzeug WSGI application.

``GraphApp(state, authenticate)`` serves ``/v1.0/me``, calendars, events,
``calendarView/delta`` and ``subscriptions`` for the user that ``authenticate(bearer_token)``
names, and the emulator's own control routes under ``/_microsoft/graph/`` (loopback callers only). The
identity platform and the TLS server live elsewhere and mount this app.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devstack.microsoft.graph.control import ControlRoutes, control_map
from devstack.microsoft.graph.faults import KINDS, RETRY_AFTER_KINDS, Fault
from devstack.microsoft.graph.render import json_response as _json
from devstack.microsoft.graph.render import render_event
from devstack.microsoft.graph.render import utc as _utc
from devstack.microsoft.graph.state import (
    DEFAULT_DELTA_PAGE,
    DeltaRound,
    GraphError,
    GraphState,
    bad_request,
)
from devstack.microsoft.graph.subscriptions import (
    CHANGE_TYPES,
    MAX_CLIENT_STATE,
    MAX_PER_MAILBOX,
    Subscription,
    too_many,
    validate_endpoint,
)
from devstack.microsoft.graph.zones import UnknownTimeZone, to_zone

Authenticate = Callable[[str], str | None]
GRAPH = "/v1.0"
CONTROL = "/_microsoft/graph"


class Preferences:
    """The ``Prefer`` header values the emulator honours."""

    def __init__(self, request: Request) -> None:
        self.timezone: str | None = None
        self.max_page_size: int | None = None
        for header in request.headers.getlist("Prefer"):
            for part in header.split(","):
                key, _, value = part.strip().partition("=")
                value = value.strip().strip('"')
                if key.strip() == "outlook.timezone" and value:
                    try:
                        to_zone(value)
                    except UnknownTimeZone:
                        continue  # a guess: Graph ignores a zone it does not know
                    self.timezone = value
                elif key.strip() == "odata.maxpagesize" and value.isdigit() and int(value) > 0:
                    self.max_page_size = int(value)

    def applied(self) -> dict[str, str]:
        parts = []
        if self.timezone:
            parts.append(f'outlook.timezone="{self.timezone}"')
        if self.max_page_size:
            parts.append(f"odata.maxpagesize={self.max_page_size}")
        return {"Preference-Applied": ", ".join(parts)} if parts else {}


def _expand_ids(request: Request) -> list[str] | None:
    """The ids of ``$expand=singleValueExtendedProperties($filter=id eq '…')`` (None when not
    asked). Only ``id eq`` filters joined by ``or`` are understood."""
    expand = request.args.get("$expand", "")
    if not expand.startswith("singleValueExtendedProperties"):
        return None
    ids: list[str] = []
    rest = expand
    while "id eq '" in rest:
        _, _, rest = rest.partition("id eq '")
        value, _, rest = rest.partition("'")
        ids.append(value)
    return ids


def _parse_instant(value: str | None, name: str) -> datetime:
    if not value:
        raise bad_request(
            "This request requires a time window specified by the query string parameters "
            f"StartDateTime and EndDateTime; {name} is missing."
        )
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(f"{name} is not an ISO date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class GraphApp:
    """A WSGI application: the Graph calendar routes plus the control routes."""

    def __init__(self, state: GraphState, authenticate: Authenticate) -> None:
        self.state = state
        self.authenticate = authenticate
        self.graph = Map(
            [
                Rule(f"{GRAPH}/me", endpoint="me", methods=["GET"]),
                Rule(f"{GRAPH}/me/calendars", endpoint="calendars", methods=["GET"]),
                Rule(f"{GRAPH}/me/calendars/<calendar_id>", endpoint="calendar", methods=["GET"]),
                Rule(f"{GRAPH}/me/calendars/<calendar_id>/events", endpoint="create", methods=["POST"]),
                Rule(f"{GRAPH}/me/events", endpoint="create", methods=["POST"]),
                Rule(f"{GRAPH}/me/events/<event_id>", endpoint="event", methods=["GET", "PATCH", "DELETE"]),
                Rule(f"{GRAPH}/me/calendars/<calendar_id>/calendarView/delta", endpoint="delta", methods=["GET"]),
                Rule(f"{GRAPH}/me/calendarView/delta", endpoint="delta", methods=["GET"]),
                Rule(f"{GRAPH}/subscriptions", endpoint="subscriptions", methods=["GET", "POST"]),
                Rule(
                    f"{GRAPH}/subscriptions/<subscription_id>",
                    endpoint="subscription",
                    methods=["GET", "PATCH", "DELETE"],
                ),
            ]
        )
        self.control = control_map()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith(CONTROL + "/") or request.path == CONTROL:
            if not _loopback(request.remote_addr):
                return _json({"error": "control routes answer loopback callers only"}, 403)
            return ControlRoutes(self.state).dispatch(self.control, request)
        try:
            endpoint, args = self.graph.bind_to_environ(request.environ).match()
        except NotFound:
            return self._error(
                request,
                GraphError(
                    400, "BadRequest", f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'."
                ),
            )
        except HTTPException as exc:
            return self._error(request, GraphError(exc.code or 405, "BadRequest", exc.description or "bad request"))
        email = self._signed_in(request)
        if email is None:
            return self._error(
                request,
                GraphError(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token is empty."
                    if not request.headers.get("Authorization")
                    else "Access token validation failure.",
                ),
                {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
        self.state.calls.count(email)
        fault = self.state.faults.take(request.method, request.path, email)
        if fault is not None and fault.kind != "lost_answer":
            return self._fault(request, email, fault, endpoint, args)
        try:
            response = getattr(self, f"_{endpoint}")(request, email, **args)
        except GraphError as exc:
            return self._error(request, exc, exc.headers)
        if fault is not None:  # lost_answer: the write happened, the client hears an error
            return self._fault(request, email, fault, endpoint, args)
        return response

    # ----- plumbing
    def _signed_in(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        email = self.authenticate(token.strip())
        return email if email in self.state.users else None

    def _error(self, request: Request, error: GraphError, headers: dict[str, str] | None = None) -> Response:
        """Graph's error shape (learn.microsoft.com/graph/errors): code, message, innerError."""
        inner = {
            "date": _utc(self.state.clock()),
            "request-id": str(uuid.uuid4()),
            "client-request-id": request.headers.get("client-request-id", str(uuid.uuid4())),
        }
        payload = {"error": {"code": error.code, "message": error.message, "innerError": inner}}
        return _json(payload, error.status, headers)

    def _fault(self, request: Request, email: str, fault: Fault, endpoint: str, args: Mapping[str, Any]) -> Response:
        status, code, message = KINDS[fault.kind]
        headers: dict[str, str] = {}
        if fault.kind in RETRY_AFTER_KINDS:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.kind == "gone":
            headers["Location"] = (
                self._restart_link(request, email, args.get("calendar_id")) if endpoint == "delta" else request.url
            )
        return self._error(request, GraphError(status, code, message), headers)

    def _restart_link(self, request: Request, email: str, calendar_id: str | None) -> str:
        """Where a reset round starts again: a fresh initial delta request over the same window
        (the round's, when the request carried a token)."""
        args = request.args
        start, end = args.get("startDateTime"), args.get("endDateTime")
        with self.state.lock:
            found: DeltaRound | None = None
            if "$deltatoken" in args:
                found = self.state.rounds.get(args["$deltatoken"])
            elif "$skiptoken" in args:
                page = self.state.pages.get(args["$skiptoken"])
                found = page.round if page else None
        if found is not None:
            start, end = _utc(found.window_start), _utc(found.window_end)
        query = urlencode({"startDateTime": start or "", "endDateTime": end or ""})
        return f"{request.base_url}?{query}"

    # ----- Graph routes
    def _me(self, request: Request, email: str) -> Response:
        user = self.state.users[email]
        return _json(
            {
                "@odata.context": f"{request.url_root.rstrip('/')}{GRAPH}/$metadata#users/$entity",
                "id": user.id,
                "userPrincipalName": user.email,
                "mail": user.email,
                "displayName": user.display_name,
            }
        )

    def _calendar_json(self, email: str, calendar_id: str) -> dict[str, Any]:
        calendar = self.state.calendar(email, calendar_id)
        user = self.state.users[email]
        return {
            "id": calendar.id,
            "name": calendar.name,
            "color": "auto",
            "hexColor": calendar.hex_color,
            "isDefaultCalendar": calendar.is_default,
            "canEdit": calendar.can_edit,
            "canShare": True,
            "canViewPrivateItems": True,
            "owner": {"name": user.display_name, "address": user.email},
        }

    def _calendars(self, request: Request, email: str) -> Response:
        """Pages with ``$top`` (default 10, a guess) and a ``$skip`` in @odata.nextLink."""
        try:
            top = int(request.args.get("$top", "10"))
            skip = int(request.args.get("$skip", "0"))
        except ValueError as exc:
            raise bad_request("$top and $skip must be integers") from exc
        if top < 1 or skip < 0:
            raise bad_request("$top must be positive and $skip not negative")
        calendars = self.state.user_calendars(email)
        page = [self._calendar_json(email, c.id) for c in calendars[skip : skip + top]]
        body: dict[str, Any] = {"value": page}
        if skip + top < len(calendars):
            body["@odata.nextLink"] = f"{request.base_url}?{urlencode({'$top': top, '$skip': skip + top})}"
        return _json(body)

    def _calendar(self, request: Request, email: str, calendar_id: str) -> Response:
        return _json(self._calendar_json(email, calendar_id))

    def _create(self, request: Request, email: str, calendar_id: str | None = None) -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise bad_request("expected a JSON event")
        calendar = calendar_id or self.state.default_calendar(email).id
        with self.state.lock:
            event, _ = self.state.create_event(email, calendar, body)
            payload = render_event(event, Preferences(request).timezone, _expand_ids(request))
        return _json(payload, 201)

    def _event(self, request: Request, email: str, event_id: str) -> Response:
        prefs = Preferences(request)
        with self.state.lock:
            if request.method == "DELETE":
                self.state.delete_event(email, event_id)
                return Response(status=204)
            if request.method == "PATCH":
                patch = request.get_json(force=True, silent=True)
                if not isinstance(patch, dict):
                    raise bad_request("expected a JSON object")
                event = self.state.update_event(email, event_id, patch, request.headers.get("If-Match"))
            else:
                event = self.state.get(email, event_id)
            return _json(render_event(event, prefs.timezone, _expand_ids(request)), headers=prefs.applied())

    def _delta(self, request: Request, email: str, calendar_id: str | None = None) -> Response:
        """calendarView/delta (learn.microsoft.com/graph/api/event-delta, /graph/delta-query-events):
        the window is fixed by the first request and encoded in the opaque tokens."""
        prefs = Preferences(request)
        calendar = calendar_id or self.state.default_calendar(email).id
        size = prefs.max_page_size or DEFAULT_DELTA_PAGE
        args = request.args
        with self.state.lock:
            if "$skiptoken" in args:
                page = self.state.find_page(email, args["$skiptoken"])
                if page.round.calendar_id != calendar:
                    raise GraphError(*KINDS["sync_state_not_found"])
                self._check_age(request, email, calendar_id, page.issued)
            else:
                if "$deltatoken" in args:
                    since = self.state.find_round(email, args["$deltatoken"])
                    if since.calendar_id != calendar:
                        raise GraphError(*KINDS["sync_state_not_found"])
                    self._check_age(request, email, calendar_id, since.issued)
                else:
                    start = _parse_instant(args.get("startDateTime"), "startDateTime")
                    end = _parse_instant(args.get("endDateTime"), "endDateTime")
                    since = self.state.new_round(email, calendar, start, end)
                expand = _expand_ids(request)
                token = self.state.changes(since, lambda e: render_event(e, prefs.timezone, expand), size)
                page = self.state.pages[token]
            items = page.items[page.offset : page.offset + page.size]
            body: dict[str, Any] = {
                "@odata.context": f"{request.url_root.rstrip('/')}{GRAPH}/$metadata#Collection(event)",
                "value": items,
            }
            if page.offset + page.size < len(page.items):
                body["@odata.nextLink"] = f"{request.base_url}?{urlencode({'$skiptoken': self.state.next_page(page)})}"
            else:
                body["@odata.deltaLink"] = f"{request.base_url}?{urlencode({'$deltatoken': page.delta_token})}"
        return _json(body, headers=prefs.applied())

    def _check_age(self, request: Request, email: str, calendar_id: str | None, issued: datetime) -> None:
        if self.state.too_old(issued):
            status, code, message = KINDS["gone"]
            raise GraphError(status, code, message, {"Location": self._restart_link(request, email, calendar_id)})

    # ----- subscriptions (learn.microsoft.com/graph/api/resources/subscription)
    def _subscriptions(self, request: Request, email: str) -> Response:
        """GET: the signed-in user's subscriptions; POST: create one (validation handshake
        first, without the state lock: the request waits on the webhook, nothing else does)."""
        context = f"{request.url_root.rstrip('/')}{GRAPH}/$metadata#subscriptions"
        if request.method == "GET":
            value = [s.render() for s in self.state.subscriptions.active(email)]
            return _json({"@odata.context": context, "value": value})
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise bad_request("expected a JSON subscription")
        change_types = _change_types(body.get("changeType"))
        resource = body.get("resource")
        if not isinstance(resource, str) or not resource:
            raise bad_request("resource is required")
        calendar_id = self._subscribed_calendar(email, resource)
        notification_url = _webhook_url(body.get("notificationUrl"), "notificationUrl", required=True) or ""

        lifecycle_url = _webhook_url(body.get("lifecycleNotificationUrl"), "lifecycleNotificationUrl")
        expiration = self.state.subscriptions.check_expiration(body.get("expirationDateTime"))
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
            # A guess at the code; the 128-character limit is documented (resources/subscription).
            raise GraphError(
                400, "InvalidRequest", f"clientState must be a string of at most {MAX_CLIENT_STATE} characters."
            )
        if len(self.state.subscriptions.active(email)) >= MAX_PER_MAILBOX:
            raise too_many()  # before the handshake too: a full mailbox wakes no webhook
        for url in filter(None, (notification_url, lifecycle_url)):
            failure = validate_endpoint(url, self.state.subscriptions.validation_timeout)
            if failure is not None:
                raise GraphError(400, "ValidationError", failure)
        user = self.state.users[email]
        subscription = self.state.subscriptions.register(
            Subscription(
                id=str(uuid.uuid4()),
                owner=email,
                owner_id=user.id,
                resource=resource,
                calendar_id=calendar_id,
                change_types=change_types,
                notification_url=notification_url,
                lifecycle_url=lifecycle_url,
                expiration=expiration,
                client_state=client_state,
            )
        )
        return _json({"@odata.context": f"{context}/$entity", **subscription.render()}, 201)

    def _subscription(self, request: Request, email: str, subscription_id: str) -> Response:
        """GET one; PATCH {expirationDateTime} renews it (no new handshake); DELETE (204)."""
        with self.state.lock:
            found = self.state.subscriptions.find(email, subscription_id)
            if found is None:
                # A guess at the code and message: the 404 is what Graph answers for a
                # subscription that is gone (subscription-delete, subscription-get).
                raise GraphError(404, "ResourceNotFound", f"The object was not found: subscription {subscription_id}.")
            if request.method == "DELETE":
                self.state.subscriptions.remove(email, subscription_id)
                return Response(status=204)
            if request.method == "PATCH":
                patch = request.get_json(force=True, silent=True)
                if not isinstance(patch, dict) or "expirationDateTime" not in patch:
                    raise bad_request("expected {expirationDateTime}")
                found.expiration = self.state.subscriptions.check_expiration(patch["expirationDateTime"])
            context = f"{request.url_root.rstrip('/')}{GRAPH}/$metadata#subscriptions/$entity"
            return _json({"@odata.context": context, **found.render()})

    def _subscribed_calendar(self, email: str, resource: str) -> str:
        """The calendar a subscription's resource names: ``me/events`` and
        ``me/calendar/events`` (the default calendar: a guess for ``me/events``),
        ``me/calendars/{id}/events``, and the same under ``users/{id or address}``. Another
        user's mailbox is 403 (a delegated token reaches only its own; the body is a guess)."""
        parts = [p for p in resource.strip("/").split("/") if p]
        lowered = [p.lower() for p in parts]
        if lowered[:1] == ["users"] and len(parts) >= 2:
            user = self.state.users[email]
            if parts[1].lower() not in (email.lower(), user.id.lower()):
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            parts, lowered = parts[2:], lowered[2:]
        elif lowered[:1] == ["me"]:
            parts, lowered = parts[1:], lowered[1:]
        else:
            parts, lowered = [], []
        if lowered in (["events"], ["calendar", "events"]):
            return self.state.default_calendar(email).id
        if len(lowered) == 3 and lowered[0] == "calendars" and lowered[2] == "events":
            return self.state.calendar(email, parts[1]).id
        # A guess at the code and message for a resource the emulator does not know.
        raise GraphError(400, "InvalidRequest", f"Resource '{resource}' is not supported for subscriptions.")


def _change_types(value: Any) -> tuple[str, ...]:
    """changeType: a comma-separated list of created, updated, deleted (resources/subscription)."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request("changeType is required")
    types = tuple(t.strip() for t in value.split(","))
    if any(t not in CHANGE_TYPES for t in types):
        raise bad_request(f"changeType must be a comma-separated list of {', '.join(CHANGE_TYPES)}")
    return tuple(dict.fromkeys(types))


def _webhook_url(value: Any, name: str, *, required: bool = False) -> str | None:
    """A webhook URL. Graph asks for https; the emulator takes http too (loopback receivers)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
        raise bad_request(f"{name} must be an http(s) URL")
    return value


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
