"""The emulator's own JSON control API under ``/_emulator/`` (not part of Google's surface).

Tests of other components and people running ``make dev`` use it to register clients,
add accounts, move the clock, revoke grants and inspect what was issued.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.google.oauth import endpoint_urls
from devstack.google.responses import json_response
from devstack.google.server import EmulatorContext, Route

PREFIX = "/_emulator"


def _bad_request(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _json_object(request: Request) -> dict[str, Any] | None:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else None


class ControlService:
    """Routes of the control API; every answer is JSON."""

    def __init__(self, ctx: EmulatorContext) -> None:
        self._ctx = ctx
        self._state = ctx.state

    def routes(self) -> list[Route]:
        """The control endpoints."""
        return [
            Route(f"{PREFIX}/health", ("GET",), self.health),
            Route(f"{PREFIX}/clients", ("GET",), self.list_clients),
            Route(f"{PREFIX}/clients", ("POST",), self.register_client),
            Route(f"{PREFIX}/accounts", ("GET",), self.list_accounts),
            Route(f"{PREFIX}/accounts", ("POST",), self.add_account),
            Route(f"{PREFIX}/accounts/demo", ("POST",), self.seed_demo_accounts),
            Route(f"{PREFIX}/accounts/password-change", ("POST",), self.change_password),
            Route(f"{PREFIX}/grants", ("GET",), self.list_grants),
            Route(f"{PREFIX}/grants/revoke", ("POST",), self.revoke_grant),
            Route(f"{PREFIX}/clock", ("GET",), self.clock),
            Route(f"{PREFIX}/clock/advance", ("POST",), self.advance_clock),
            Route(f"{PREFIX}/clock/freeze", ("POST",), self.freeze_clock),
            Route(f"{PREFIX}/issued", ("GET",), self.issued),
            Route(f"{PREFIX}/revocations", ("GET",), self.revocations),
            Route(f"{PREFIX}/reset", ("POST",), self.reset),
        ]

    def health(self, request: Request) -> Response:
        """GET /_emulator/health: readiness probe that also lists the endpoint URLs."""
        return json_response({"status": "ok", "endpoints": endpoint_urls(self._ctx.base_url)})

    def list_clients(self, request: Request) -> Response:
        """GET /_emulator/clients: registered clients, without their secrets."""
        with self._state.lock:
            return json_response([c.as_dict() for c in self._state.clients.values()])

    def register_client(self, request: Request) -> Response:
        """POST /_emulator/clients {client_id, client_secret, redirect_uris, name?}."""
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
        testing = body.get("publishing_status") == "testing"
        try:
            client = self._state.register_client(client_id, secret, uris, name, testing=testing)
        except ValueError as exc:
            return _bad_request(str(exc))
        return json_response(client.as_dict(), 201)

    def change_password(self, request: Request) -> Response:
        """POST /_emulator/accounts/password-change {email}: Gmail-scoped grants stop working."""
        body = _json_object(request) or {}
        try:
            revoked = self._state.change_password(str(body.get("email", "")))
        except KeyError:
            return _bad_request("unknown account", 404)
        return json_response({"revoked_refresh_tokens": revoked})

    def list_accounts(self, request: Request) -> Response:
        """GET /_emulator/accounts: ``[{sub, email, name}]``."""
        return json_response(self._state.accounts())

    def add_account(self, request: Request) -> Response:
        """POST /_emulator/accounts {email, name?}: idempotent."""
        body = _json_object(request)
        if body is None:
            return _bad_request("expected a JSON object")
        email, name = body.get("email"), body.get("name")
        if not isinstance(email, str) or (name is not None and not isinstance(name, str)):
            return _bad_request("email (and name, if given) must be strings")
        try:
            account = self._state.add_account(email, name)
        except ValueError as exc:
            return _bad_request(str(exc))
        return json_response(account.as_dict(), 201)

    def seed_demo_accounts(self, request: Request) -> Response:
        """POST /_emulator/accounts/demo: add the demo accounts."""
        return json_response([a.as_dict() for a in self._state.seed_demo_accounts()], 201)

    def list_grants(self, request: Request) -> Response:
        """GET /_emulator/grants: per account and client, scopes / revoked / live refresh tokens."""
        return json_response(self._state.grants())

    def revoke_grant(self, request: Request) -> Response:
        """POST /_emulator/grants/revoke {email, client_id}: the user removes the app's access."""
        body = _json_object(request)
        if body is None:
            return _bad_request("expected a JSON object")
        email, client_id = body.get("email"), body.get("client_id")
        if not isinstance(email, str) or not isinstance(client_id, str):
            return _bad_request("email and client_id must be strings")
        with self._state.lock:
            account = self._state.accounts_by_email.get(email.strip().lower())
            if account is None or not self._state.revoke_grant(account.sub, client_id):
                return _bad_request("no live grant for that account and client", 404)
        return json_response({"revoked": True})

    def clock(self, request: Request) -> Response:
        """GET /_emulator/clock: the emulator's time and its offset from the wall clock."""
        clock = self._state.clock
        return json_response({"now": clock.now(), "offset": clock.offset, "frozen": clock.frozen})

    def advance_clock(self, request: Request) -> Response:
        """POST /_emulator/clock/advance {seconds}: move the emulator clock forward."""
        body = _json_object(request)
        seconds = None if body is None else body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return _bad_request("seconds must be a non-negative number")
        now = self._state.advance_clock(seconds)
        return json_response({"now": now, "offset": self._state.clock.offset})

    def freeze_clock(self, request: Request) -> Response:
        """POST /_emulator/clock/freeze {frozen}: stop the emulator clock (it then moves only
        by /clock/advance) or let it run again from where it stands."""
        body = _json_object(request)
        frozen = None if body is None else body.get("frozen", True)
        if not isinstance(frozen, bool):
            return _bad_request("frozen must be true or false")
        now = self._state.clock.freeze(frozen)
        return json_response({"now": now, "offset": self._state.clock.offset, "frozen": frozen})

    def issued(self, request: Request) -> Response:
        """GET /_emulator/issued: every code and token issued since the last reset."""
        return json_response(self._state.issued())

    def revocations(self, request: Request) -> Response:
        """GET /_emulator/revocations: ``[{token_kind, email, client_id, at}]``."""
        return json_response(self._state.revocations())

    def reset(self, request: Request) -> Response:
        """POST /_emulator/reset: forget all state, clients, accounts and API data included."""
        self._ctx.reset()
        return json_response({})
