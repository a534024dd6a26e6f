"""An Outlook user working in their own calendar, and the Graph emulator served for tests.

``GraphServer`` serves ``devstack.microsoft.graph.GraphApp`` on a loopback werkzeug server in
a thread (plain http: the identity part of the Microsoft emulator, with TLS, is built
separately); bearer tokens map to mailboxes through a stub ``authenticate``. ``GraphUser``
edits through ``GraphState``'s ``user_*`` API, never through the adapter under test.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from devstack.microsoft.graph import GraphApp, GraphState


class _Quiet(WSGIRequestHandler):
    """No access log: tokens travel in headers only, but delta tokens are in URLs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class GraphServer:
    """The Graph emulator on ``http://127.0.0.1:<port>``; ``base_url`` ends in ``/v1.0``."""

    def __init__(self, state: GraphState | None = None) -> None:
        self.state = state or GraphState()
        self.tokens: dict[str, str] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def token_for(self, email: str) -> str:
        """A fresh bearer token that the stub ``authenticate`` maps to ``email``."""
        token = secrets.token_urlsafe(16)
        self.tokens[token] = email
        return token

    def __enter__(self) -> GraphServer:
        app = GraphApp(self.state, self.tokens.get)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}/v1.0"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class Webhook:
    """A loopback webhook for Graph subscriptions: echoes the validation token as Graph's
    handshake asks (200, text/plain), answers 202 to notifications; ``url`` is its address."""

    def __init__(self) -> None:
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @staticmethod
    def _app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        token = request.args.get("validationToken")
        response = Response(token, content_type="text/plain") if token is not None else Response(status=202)
        return response(environ, start_response)

    def __enter__(self) -> Webhook:
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class GraphUser:
    """A fresh mailbox on the emulator with its default calendar (``calendar_id``)."""

    def __init__(self, server: GraphServer, email: str | None = None) -> None:
        self.server = server
        self.state = server.state
        self.email = email or f"outlook-{uuid.uuid4().hex[:10]}@contoso.test"
        self.state.add_user(self.email)
        self.calendar_id = self.state.default_calendar(self.email).id
        self.token = server.token_for(self.email)

    def add(self, summary: str, start: datetime, end: datetime, **extra: Any) -> str:
        body = {"subject": summary, "start": _when(start), "end": _when(end), **extra}
        return self.state.user_create_event(self.email, body, self.calendar_id).id

    def create(self, body: dict[str, Any]) -> str:
        """Any Graph event body (a series, an all-day event, a Windows zone...)."""
        return self.state.user_create_event(self.email, body, self.calendar_id).id

    def update(self, event_id: str, patch: dict[str, Any]) -> None:
        self.state.user_update(self.email, event_id, patch)

    def move(self, event_id: str, start: datetime, end: datetime) -> None:
        self.state.user_move(self.email, event_id, start, end)

    def cancel(self, event_id: str) -> None:
        self.state.user_cancel(self.email, event_id)

    def delete(self, event_id: str) -> None:
        self.state.user_delete(self.email, event_id)

    def invalidate_cursors(self, *, purge_deleted: bool = False) -> None:
        """Graph forgets the delta tokens (``syncStateNotFound``); it keeps no tombstones, so
        there is nothing to purge."""
        self.state.forget_sync_states(self.email)

    def events(self) -> list[Any]:
        """Stored events (masters, not occurrences), straight from the mailbox."""
        with self.state.lock:
            return [e for e in self.state.events.values() if e.owner == self.email]


def _when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
