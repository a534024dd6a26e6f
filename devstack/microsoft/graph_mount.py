"""Graph on the Microsoft emulator's port: :class:`GraphMount` serves a
:class:`~devstack.microsoft.graph.app.GraphApp` (a plain WSGI app) as an emulator service.

It lives outside ``devstack/microsoft/graph/`` on purpose: Graph knows nothing of the
identity platform; this wrapper is the one place that joins them. A Graph call is
authenticated by the identity platform's access token (``user_for_access_token``), and the
signed-in user gets a mailbox (with its default calendar) on first use, so whoever signs in
with Microsoft locally has an Outlook calendar, as every Microsoft 365 / Outlook.com account
does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from werkzeug.wrappers import Request, Response

from devstack.microsoft.emulator import MicrosoftEmulator
from devstack.microsoft.graph.app import GraphApp
from devstack.microsoft.graph.state import GraphState
from devstack.microsoft.server import Route

ALL_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


class GraphMount:
    """The emulator service that forwards ``/v1.0/...`` and ``/_microsoft/graph/...`` to a
    GraphApp; ``reset()`` (called by the emulator's reset) starts Graph afresh."""

    def __init__(self, emulator: MicrosoftEmulator) -> None:
        self._emulator = emulator
        self.state = self._new_state()
        self.app = GraphApp(self.state, self._authenticate)

    def _new_state(self) -> GraphState:
        # Graph's times follow the emulator clock, which tests advance instead of sleeping.
        clock = self._emulator.state.clock
        return GraphState(clock=lambda: datetime.fromtimestamp(clock.now(), UTC))

    def _authenticate(self, token: str) -> str | None:
        """The mailbox of the access token's user (made on its first Graph call), or None."""
        user = self._emulator.identity.user_for_access_token(token)
        if user is None:
            return None
        self.state.add_user(user.email, user.name)
        return str(user.email)

    def add_user(self, email: str, name: str | None = None) -> None:
        """A mailbox before its owner signs in (demo seeding: events to see at once)."""
        self.state.add_user(email, name)

    def routes(self) -> list[Route]:
        return [
            Route("/v1.0/<path:rest>", ALL_METHODS, self._forward),
            Route("/_microsoft/graph/<path:rest>", ALL_METHODS, self._forward),
            Route("/_microsoft/graph", ALL_METHODS, self._forward),
        ]

    def _forward(self, request: Request, rest: str = "") -> Response:
        return self.app.dispatch(request)

    def reset(self) -> None:
        self.state = self._new_state()
        self.app = GraphApp(self.state, self._authenticate)


def mount_graph(emulator: MicrosoftEmulator) -> GraphMount:
    """Mount Graph on ``emulator`` (before ``start()``) and return the mount."""
    mount = GraphMount(emulator)
    emulator.mount(mount)
    return mount
