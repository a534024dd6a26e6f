"""The emulator's own JSON control routes under ``/_microsoft/graph/`` (not Graph's surface).

Tests and people running the local stack use them to add mailboxes, act as the Outlook user
(create, edit, move, cancel, delete events and occurrences), queue faults, drop sync
states, and drive change notifications (lifecycle events, revoked grants, delivery faults).
``GraphApp`` answers them to loopback callers only.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devstack.microsoft.graph.faults import Fault
from devstack.microsoft.graph.render import json_response, render_event
from devstack.microsoft.graph.state import GraphError, GraphState

PREFIX = "/_microsoft/graph"


def control_map() -> Map:
    """The control routes."""
    return Map(
        [
            Rule(f"{PREFIX}/health", endpoint="health", methods=["GET"]),
            Rule(f"{PREFIX}/users", endpoint="add_user", methods=["POST"]),
            Rule(f"{PREFIX}/users/<email>/calendars", endpoint="calendars", methods=["GET", "POST"]),
            Rule(f"{PREFIX}/users/<email>/events", endpoint="events", methods=["GET", "POST"]),
            Rule(f"{PREFIX}/users/<email>/events/<event_id>", endpoint="event", methods=["PATCH", "DELETE"]),
            Rule(f"{PREFIX}/users/<email>/events/<event_id>/cancel", endpoint="cancel", methods=["POST"]),
            Rule(f"{PREFIX}/faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
            Rule(f"{PREFIX}/sync-states/forget", endpoint="forget", methods=["POST"]),
            Rule(f"{PREFIX}/calls", endpoint="calls", methods=["GET", "DELETE"]),
            Rule(f"{PREFIX}/subscriptions", endpoint="subscriptions", methods=["GET"]),
            Rule(f"{PREFIX}/subscriptions/<subscription_id>/lifecycle", endpoint="lifecycle", methods=["POST"]),
            Rule(f"{PREFIX}/users/<email>/revoke-subscriptions", endpoint="revoke", methods=["POST"]),
            Rule(f"{PREFIX}/notifications", endpoint="notifications", methods=["GET"]),
            Rule(f"{PREFIX}/notifications/faults", endpoint="notification_faults", methods=["GET", "POST", "DELETE"]),
            Rule(f"{PREFIX}/notifications/flush", endpoint="flush", methods=["POST"]),
        ]
    )


def _object(request: Request) -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


class ControlRoutes:
    """One request's worth of control handlers; every answer is JSON."""

    def __init__(self, state: GraphState) -> None:
        self.state = state

    def dispatch(self, routes: Map, request: Request) -> Response:
        try:
            endpoint, args = routes.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            return json_response({"error": exc.description}, exc.code or 404)
        try:
            return getattr(self, endpoint)(request, **args)
        except GraphError as exc:
            return json_response({"error": {"code": exc.code, "message": exc.message}}, exc.status)
        except (KeyError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)

    def health(self, request: Request) -> Response:
        """GET: readiness probe."""
        return json_response({"status": "ok"})

    def add_user(self, request: Request) -> Response:
        """POST {email, name?}: a mailbox with its default calendar; idempotent."""
        body = _object(request)
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise ValueError("email must be an address")
        user = self.state.add_user(email, body.get("name"))
        return json_response({"email": user.email, "id": user.id, "displayName": user.display_name}, 201)

    def calendars(self, request: Request, email: str) -> Response:
        """GET: the user's calendars; POST {name}: add one."""
        if request.method == "POST":
            name = _object(request).get("name")
            if not isinstance(name, str) or not name:
                raise ValueError("name must be a non-empty string")
            calendar = self.state.add_calendar(email, name)
            return json_response({"id": calendar.id, "name": calendar.name}, 201)
        return json_response(
            [{"id": c.id, "name": c.name, "isDefaultCalendar": c.is_default} for c in self.state.user_calendars(email)]
        )

    def events(self, request: Request, email: str) -> Response:
        """GET: every stored event (masters, not occurrences) in UTC; POST {event, calendarId?}:
        the user creates one in Outlook."""
        with self.state.lock:
            if request.method == "POST":
                body = _object(request)
                event = self.state.user_create_event(email, body.get("event") or {}, body.get("calendarId"))
                return json_response(render_event(event, None), 201)
            stored = [e for e in self.state.events.values() if e.owner == email]
            return json_response([render_event(e, None, list(e.extended)) for e in stored])

    def event(self, request: Request, email: str, event_id: str) -> Response:
        """PATCH (a Graph event patch, e.g. new start/end to move it): the user edits an event
        or one occurrence; DELETE: the user deletes it."""
        with self.state.lock:
            if request.method == "DELETE":
                self.state.user_delete(email, event_id)
                return json_response({}, 200)
            return json_response(render_event(self.state.user_update(email, event_id, _object(request)), None))

    def cancel(self, request: Request, email: str, event_id: str) -> Response:
        """POST: the organizer cancels the meeting or one occurrence (``isCancelled``)."""
        with self.state.lock:
            return json_response(render_event(self.state.user_cancel(email, event_id), None))

    def faults(self, request: Request) -> Response:
        """GET: queued rules; POST {kind, method?, path?, email?, count?, retry_after?}; DELETE: clear."""
        if request.method == "POST":
            body = _object(request)
            fault = Fault(
                kind=str(body.get("kind", "")),
                method=str(body.get("method", "")),
                path=str(body.get("path", "")),
                email=str(body.get("email", "")),
                count=int(body.get("count", 1)),
                retry_after=int(body.get("retry_after", 2)),
            )
            self.state.faults.add(fault)
            return json_response(self.state.faults.list(), 201)
        if request.method == "DELETE":
            self.state.faults.clear()
        return json_response(self.state.faults.list())

    def calls(self, request: Request) -> Response:
        """GET ?email=: how many Graph requests the mailbox (every mailbox without it) made;
        DELETE: start counting again."""
        if request.method == "DELETE":
            self.state.calls.clear()
        return json_response({"count": self.state.calls.total(request.args.get("email"))})

    def forget(self, request: Request) -> Response:
        """POST {email?}: drop delta/skip tokens; their next use answers syncStateNotFound."""
        email = _object(request).get("email")
        return json_response({"forgotten": self.state.forget_sync_states(email if isinstance(email, str) else None)})

    def subscriptions(self, request: Request) -> Response:
        """GET: every unexpired subscription of every mailbox (without clientState)."""
        subs = self.state.subscriptions.active()
        return json_response([{**s.render(), "clientState": None, "owner": s.owner} for s in subs])

    def lifecycle(self, request: Request, subscription_id: str) -> Response:
        """POST {lifecycleEvent}: send reauthorizationRequired, subscriptionRemoved (which also
        removes the subscription) or missed to the subscription's lifecycleNotificationUrl."""
        event = str(_object(request).get("lifecycleEvent", ""))
        try:
            sent = self.state.subscriptions.lifecycle(subscription_id, event)
        except KeyError:
            return json_response({"error": f"no subscription {subscription_id}"}, 404)
        return json_response({"sent": sent})

    def revoke(self, request: Request, email: str) -> Response:
        """POST: the user revokes the app's grant; every subscription of the mailbox goes, each
        with a subscriptionRemoved lifecycle notification."""
        return json_response({"removed": self.state.revoke_subscriptions(email)})

    def notifications(self, request: Request) -> Response:
        """GET: what became of each delivery (url without query, kind, count, attempts, status)."""
        return json_response(self.state.notifications.deliveries())

    def notification_faults(self, request: Request) -> Response:
        """GET: the counters; POST {drop?, duplicate?, delay?, retries?}: set them; DELETE: clear."""
        dispatcher = self.state.notifications
        if request.method == "POST":
            body = _object(request)
            for name, setter in (
                ("drop", dispatcher.drop),
                ("duplicate", dispatcher.duplicate),
                ("delay", dispatcher.delay),
                ("retries", dispatcher.retry),
            ):
                if name in body:
                    setter(int(body[name]))
            return json_response(dispatcher.faults(), 201)
        if request.method == "DELETE":
            dispatcher.clear()
        return json_response(dispatcher.faults())

    def flush(self, request: Request) -> Response:
        """POST: send the notifications that ``delay`` holds."""
        return json_response({"released": self.state.notifications.flush()})
