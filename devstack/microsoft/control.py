"""The emulator's own JSON control API under ``/_microsoft/`` (not part of Microsoft's surface).

Tests of other components and people running ``make dev`` use it to register apps, add users,
revoke a user's grants and move the clock. It is served only on loopback, like the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.microsoft.server import Route, json_response
from devstack.microsoft.state import State

PREFIX = "/_microsoft"


def _bad_request(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _json_object(request: Request) -> dict[str, Any] | None:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else None


class ControlService:
    """Routes of the control API; every answer is JSON."""

    def __init__(self, state: State, endpoints: Callable[[], dict[str, str]], reset: Callable[[], None]) -> None:
        self._state = state
        self._endpoints = endpoints
        self._reset = reset

    def routes(self) -> list[Route]:
        """The control endpoints."""
        return [
            Route(f"{PREFIX}/health", ("GET",), self.health),
            Route(f"{PREFIX}/clients", ("GET",), self.list_clients),
            Route(f"{PREFIX}/clients", ("POST",), self.register_client),
            Route(f"{PREFIX}/users", ("GET",), self.list_users),
            Route(f"{PREFIX}/users", ("POST",), self.add_user),
            Route(f"{PREFIX}/users/demo", ("POST",), self.seed_demo_users),
            Route(f"{PREFIX}/grants/revoke", ("POST",), self.revoke),
            Route(f"{PREFIX}/clock", ("GET",), self.clock),
            Route(f"{PREFIX}/clock/advance", ("POST",), self.advance_clock),
            Route(f"{PREFIX}/clock/freeze", ("POST",), self.freeze_clock),
            Route(f"{PREFIX}/reset", ("POST",), self.reset),
        ]

    def health(self, request: Request) -> Response:
        """GET /_microsoft/health: readiness probe listing the ``common`` authority's URLs."""
        return json_response({"status": "ok", "endpoints": self._endpoints()})

    def list_clients(self, request: Request) -> Response:
        """GET /_microsoft/clients: app registrations, without their secrets."""
        with self._state.lock:
            return json_response([c.as_dict() for c in self._state.clients.values()])

    def register_client(self, request: Request) -> Response:
        """POST /_microsoft/clients {client_id, client_secret, redirect_uris, name?}."""
        body = _json_object(request)
        if body is None:
            return _bad_request("expected a JSON object")
        client_id, secret = body.get("client_id"), body.get("client_secret")
        uris, name = body.get("redirect_uris", []), body.get("name")
        if not isinstance(client_id, str) or not isinstance(secret, str):
            return _bad_request("client_id and client_secret must be strings")
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            return _bad_request("redirect_uris must be a list of strings")
        if name is not None and not isinstance(name, str):
            return _bad_request("name must be a string")
        try:
            client = self._state.register_client(client_id, secret, uris, name)
        except ValueError as exc:
            return _bad_request(str(exc))
        return json_response(client.as_dict(), 201)

    def list_users(self, request: Request) -> Response:
        """GET /_microsoft/users."""
        with self._state.lock:
            return json_response([u.as_dict() for u in self._state.users.values()])

    def add_user(self, request: Request) -> Response:
        """POST /_microsoft/users {email, name?, personal?, tid?, admin_consent_required?}: idempotent."""
        body = _json_object(request)
        if body is None:
            return _bad_request("expected a JSON object")
        email, name, tid = body.get("email"), body.get("name"), body.get("tid")
        personal, admin = body.get("personal", False), body.get("admin_consent_required", False)
        if not isinstance(email, str) or any(v is not None and not isinstance(v, str) for v in (name, tid)):
            return _bad_request("email (and name, tid if given) must be strings")
        if not isinstance(personal, bool) or not isinstance(admin, bool):
            return _bad_request("personal and admin_consent_required must be true or false")
        try:
            user = self._state.add_user(email, name, personal=personal, tid=tid, admin_consent_required=admin)
        except ValueError as exc:
            return _bad_request(str(exc))
        return json_response(user.as_dict(), 201)

    def seed_demo_users(self, request: Request) -> Response:
        """POST /_microsoft/users/demo: add the demo users."""
        return json_response([u.as_dict() for u in self._state.seed_demo_users()], 201)

    def revoke(self, request: Request) -> Response:
        """POST /_microsoft/grants/revoke {email, client_id?, access_tokens?}: the user's refresh
        tokens die (answer invalid_grant), of one app or all, like revokeSignInSessions; with
        ``access_tokens`` their access tokens too (Microsoft lets those live until expiry)."""
        body = _json_object(request)
        if body is None:
            return _bad_request("expected a JSON object")
        email, client_id, access = body.get("email"), body.get("client_id"), body.get("access_tokens", False)
        if not isinstance(email, str) or (client_id is not None and not isinstance(client_id, str)):
            return _bad_request("email (and client_id, if given) must be strings")
        if not isinstance(access, bool):
            return _bad_request("access_tokens must be true or false")
        try:
            killed = self._state.revoke_user(email, client_id, access_tokens=access)
        except KeyError:
            return _bad_request("unknown user", 404)
        return json_response({"revoked_refresh_tokens": killed})

    def clock(self, request: Request) -> Response:
        """GET /_microsoft/clock: the emulator's time and its offset from the wall clock."""
        clock = self._state.clock
        return json_response({"now": clock.now(), "offset": clock.offset, "frozen": clock.frozen})

    def advance_clock(self, request: Request) -> Response:
        """POST /_microsoft/clock/advance {seconds}: move the emulator clock forward."""
        body = _json_object(request)
        seconds = None if body is None else body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return _bad_request("seconds must be a non-negative number")
        now = self._state.clock.advance(seconds)
        return json_response({"now": now, "offset": self._state.clock.offset})

    def freeze_clock(self, request: Request) -> Response:
        """POST /_microsoft/clock/freeze {frozen}: stop the clock (it then moves only by
        /clock/advance) or let it run again from where it stands."""
        body = _json_object(request)
        frozen = None if body is None else body.get("frozen", True)
        if not isinstance(frozen, bool):
            return _bad_request("frozen must be true or false")
        now = self._state.clock.freeze(frozen)
        return json_response({"now": now, "offset": self._state.clock.offset, "frozen": frozen})

    def reset(self, request: Request) -> Response:
        """POST /_microsoft/reset: forget clients, users, codes and tokens; rewind the clock."""
        self._reset()
        return json_response({})
