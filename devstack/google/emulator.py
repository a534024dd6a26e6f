"""The :class:`GoogleEmulator`: one local HTTP server standing in for Google."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from devstack.google import persistence
from devstack.google.apis import api_services
from devstack.google.apis.calls import CallCounter
from devstack.google.apis.control import ApiControlService
from devstack.google.apis.faults import Faults
from devstack.google.apis.push import PushDispatcher
from devstack.google.control import ControlService
from devstack.google.keys import SigningKeys
from devstack.google.oauth import OAuthService, endpoint_urls
from devstack.google.server import EmulatorApp, EmulatorContext, QuietRequestHandler
from devstack.google.state import State


class GoogleEmulator:
    """Google's OAuth 2.0 / OpenID endpoints (and later its APIs) on one local port.

    Usage::

        emu = GoogleEmulator(port=0).start()
        emu.register_client("id", "secret", ["http://127.0.0.1:8000/callback"])
        emu.seed_demo_accounts()
        ...  # point the product at emu.endpoints
        emu.stop()

    Everything the Python interface does is also reachable over HTTP under ``/_emulator/``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, persist_path: Path | None = None) -> None:
        """``persist_path``: load the state saved there at start, save it there at stop."""
        self.host = host
        self.port = port
        self.persist_path = persist_path
        self.state = State()
        self.faults = Faults()
        self.push = PushDispatcher()
        self.calls = CallCounter()
        self._ctx = EmulatorContext(
            state=self.state, keys=SigningKeys(), faults=self.faults, push=self.push, calls=self.calls
        )
        self._app = EmulatorApp(
            [OAuthService(self._ctx), ControlService(self._ctx), ApiControlService(self._ctx), *api_services(self._ctx)]
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GoogleEmulator:
        """Bind the port and serve from a daemon thread; returns ``self`` without blocking."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        if self.persist_path is not None:
            persistence.load(self._ctx, self.persist_path)
        server = make_server(self.host, self.port, self._app, threaded=True, request_handler=QuietRequestHandler)
        self._server = server
        self.push.start()
        self._ctx.base_url = f"http://{self._url_host()}:{server.server_port}"
        # A short poll interval keeps stop() quick; the loop is idle otherwise.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"google-emulator-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; state is kept (see :meth:`reset`)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self.faults.release_hangs()
        self.push.stop()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if server is not None and self.persist_path is not None:
            persistence.save(self._ctx, self.persist_path)

    def __enter__(self) -> GoogleEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without a trailing slash (known once started, or if port != 0)."""
        if self._ctx.base_url:
            return self._ctx.base_url
        if self.port:
            return f"http://{self._url_host()}:{self.port}"
        raise RuntimeError("the port is chosen at start(); start the emulator first")

    @property
    def issuer(self) -> str:
        """The ``iss`` claim of the emulator's id_tokens (equal to :attr:`base_url`)."""
        return self.base_url

    @property
    def endpoints(self) -> dict[str, str]:
        """auth_uri, token_uri, revoke_uri, userinfo_uri, certs_uri, jwks_uri and issuer."""
        return endpoint_urls(self.base_url)

    def sign(self, claims: dict[str, Any]) -> str:
        """An RS256 JWT of ``claims`` signed with the emulator's key (published at its certs
        URL), as Google signs id tokens and Pub/Sub push tokens: for tests that forge odd ones."""
        return self._ctx.keys.sign(claims)

    # ------------------------------------------------------------------ control

    def register_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str],
        name: str | None = None,
        *,
        testing: bool = False,
    ) -> dict[str, Any]:
        """Register (or replace) an OAuth client; ``name`` is shown on the consent page;
        ``testing``: its consent screen is in Testing (7-day refresh tokens)."""
        return self.state.register_client(client_id, client_secret, redirect_uris, name, testing=testing).as_dict()

    def add_account(self, email: str, name: str | None = None) -> dict[str, str]:
        """Add a Google account (idempotent); returns ``{"sub", "email", "name"}``."""
        return self.state.add_account(email, name).as_dict()

    def seed_demo_accounts(self) -> list[dict[str, str]]:
        """Add ada@example.com, grace@example.org and linus@example.net."""
        return [a.as_dict() for a in self.state.seed_demo_accounts()]

    def seed_demo_data(self) -> None:
        """Give each demo account calendars, mail and contacts (for `make dev`; idempotent)."""
        for account in self.state.seed_demo_accounts():
            for store in self._ctx.stores.values():
                seed = getattr(store, "seed_demo", None)
                if seed is not None:
                    seed(account.email)

    def reset(self) -> None:
        """Forget all state (clients, accounts and every API's data) and rewind the clock."""
        self._ctx.reset()

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the new emulator time."""
        return self.state.advance_clock(seconds)

    def freeze_clock(self, frozen: bool = True) -> float:
        """Stop the emulator clock (it then moves only when advanced) or let it run again."""
        return self.state.clock.freeze(frozen)
