"""Control API for the emulated APIs: faults and push-notification disturbances."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.google.apis.faults import Fault
from devstack.google.responses import html_response, json_response
from devstack.google.server import EmulatorContext, Route

PREFIX = "/_emulator"


def _body(request: Request) -> dict[str, Any]:
    try:
        value = json.loads(request.get_data() or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class ApiControlService:
    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/faults", ("GET",), self.list_faults),
            Route(f"{PREFIX}/faults", ("POST",), self.add_fault),
            Route(f"{PREFIX}/faults", ("DELETE",), self.clear_faults),
            Route(f"{PREFIX}/push/disturb", ("POST",), self.disturb),
            Route(f"{PREFIX}/push/release", ("POST",), self.release),
            Route(f"{PREFIX}/push/log", ("GET",), self.push_log),
            Route(f"{PREFIX}/calls", ("GET",), self.calls),
            Route(f"{PREFIX}/tokens", ("POST",), self.mint_token),
            Route(f"{PREFIX}/ui", ("GET",), self.ui_index),
        ]

    def list_faults(self, request: Request) -> Response:
        return json_response(self.ctx.faults.list())

    def add_fault(self, request: Request) -> Response:
        body = _body(request)
        try:
            fault = Fault(
                kind=str(body.get("kind", "")),
                method=str(body.get("method", "")),
                email=str(body.get("email", "")),
                count=int(body.get("count", 1)),
                hang_seconds=float(body.get("hang_seconds", 30.0)),
            )
            self.ctx.faults.add(fault)
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"faults": self.ctx.faults.list()}, 201)

    def clear_faults(self, request: Request) -> Response:
        self.ctx.faults.clear()
        return json_response({})

    def disturb(self, request: Request) -> Response:
        body = _body(request)
        try:
            self.ctx.push.disturb(str(body.get("mode", "")), int(body.get("count", 1)))
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({}, 201)

    def release(self, request: Request) -> Response:
        return json_response({"released": self.ctx.push.release()})

    def push_log(self, request: Request) -> Response:
        self.ctx.push.wait_idle(timeout=5)
        return json_response(self.ctx.push.delivered)

    def calls(self, request: Request) -> Response:
        """GET /_emulator/calls?method=calendar.events.list&email=…&calendarId=…: how many
        authenticated requests that method received (of that account, with those path
        parameters; every other query parameter names a path parameter)."""
        method = request.args.get("method", "")
        if not method:
            return json_response({"error": "method is required"}, 400)
        email = request.args.get("email") or None
        path_values = {k: v for k, v in request.args.items() if k not in ("method", "email")}
        return json_response({"method": method, "count": self.ctx.calls.count(method, email, path_values)})

    def mint_token(self, request: Request) -> Response:
        """A shortcut past the consent screen, for tests and scripts: an access token for
        ``email`` with ``scopes`` (the account is created if new)."""
        body = _body(request)
        scopes = body.get("scopes") or []
        if not body.get("email") or not isinstance(scopes, list):
            return json_response({"error": "email and scopes[] are required"}, 400)
        try:
            account = self.ctx.state.add_account(str(body["email"]))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        token = self.ctx.state.issue_access_token(
            account.sub, str(body.get("client_id", "emulator-test-client")), tuple(str(s) for s in scopes)
        )
        return json_response(
            {"access_token": token.value, "expires_at": token.expires_at, "sub": account.sub, "email": account.email},
            201,
        )

    def ui_index(self, request: Request) -> Response:
        """A start page for people using `make dev`: each account's data in each API."""
        rows = "".join(
            f"<tr><td>{escape(a['email'])}</td>"
            + "".join(
                f'<td><a href="{PREFIX}/ui/{api}?email={escape(a["email"])}">{label}</a></td>'
                for api, label in (("calendar", "Calendar"), ("gmail", "Gmail"), ("people", "Contacts"))
            )
            + "</tr>"
            for a in self.ctx.state.accounts()
        )
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Google emulator</title></head><body style="font-family: system-ui, sans-serif; margin: 2em">
<h1>Google emulator</h1>
<p>Act as a Google user: every change made here syncs and pushes like a real one.</p>
<table cellpadding="6"><tr><th align="left">Account</th><th colspan="3" align="left">Data</th></tr>{rows}</table>
<p>Control API: <code>{PREFIX}/health</code>, <code>{PREFIX}/faults</code>, <code>{PREFIX}/push/log</code>,
<code>{PREFIX}/grants</code>.</p></body></html>"""
        return html_response(page)
