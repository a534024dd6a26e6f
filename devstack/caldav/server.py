"""The :class:`CalDavServer`: Radicale's WSGI application served from a daemon thread.

Radicale speaks the protocol (RFC 4791 calendars, RFC 6578 sync-collection, RFC 6764
well-known discovery, etags and preconditions); it does not behave like iCloud in the ways
other sync products tripped over. Those quirks are injected by a layer in front of it
(``front``), not by changing Radicale.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import radicale
import radicale.config
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from devstack.caldav.faults import FaultLayer

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are not logged (the tests make thousands)."""


class _ExpectedNoise(logging.Filter):
    """Radicale's warnings that say nothing in a test or on a dev machine: a new storage
    folder being created, and a client's expired sync token (the client recovers with a
    full sync, which is what the tests make it do). Every other warning stays."""

    EXPECTED = ("Storage location", "Client provided invalid sync token")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.EXPECTED)


_NOISE = _ExpectedNoise()
logging.getLogger("radicale").addFilter(_NOISE)


class CalDavServer:
    """Radicale on ``host:port`` (0: a free port), users in an htpasswd file, collections in
    ``folder`` (a temporary directory, removed at stop, unless given).

    Usage::

        with CalDavServer() as server:
            password = server.add_user("ada@example.com")
            ...  # CalDAV at server.base_url, Basic auth ada@example.com / password
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, folder: Path | None = None, partition_port: int = 0
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the CalDAV dev server (and its control API) listens on loopback only")
        self.host = host
        self.port = port
        self.partition_port = partition_port
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="crmsync-caldav-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._htpasswd = self.folder / "users"
        self._htpasswd.touch()
        # A kept folder (`make dev --persist`) keeps its users too.
        self._users: dict[str, str] = dict(
            line.split(":", 1) for line in self._htpasswd.read_text(encoding="utf-8").splitlines() if ":" in line
        )
        self._lock = threading.Lock()
        self.radicale: WsgiApp = radicale.Application(self._configuration())
        #: iCloud's quirks and server faults on demand, and a count of requests per user.
        self.layer = FaultLayer(self, self.radicale)
        #: What the server answers with: Radicale, or a layer in front of it (faults, quirks).
        self.front: WsgiApp = self.layer
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []

    def _configuration(self) -> radicale.config.Configuration:
        configuration = radicale.config.load()
        configuration.update(
            {
                "auth": {
                    "type": "htpasswd",
                    "htpasswd_filename": str(self._htpasswd),
                    "htpasswd_encryption": "plain",
                    # Radicale waits after a failed login (against guessing); tests never sleep.
                    "delay": "0",
                    "cache_logins": "False",
                },
                "storage": {
                    "filesystem_folder": str(self.folder / "collections"),
                    # Radicale forgets sync-token states older than this, judged by the files'
                    # real modification times: under `make test-at AT=+200d` every token would be
                    # "old". Ten years; token expiry is tested by dropping the states on purpose.
                    "max_sync_token_age": str(10 * 365 * 24 * 3600),
                },
                "rights": {"type": "owner_only"},
                "logging": {"level": "warning", "mask_passwords": "True"},
            },
            "crmsync devstack",
            privileged=True,
        )
        return configuration

    # ------------------------------------------------------------------ users
    def add_user(self, username: str, password: str | None = None) -> str:
        """Add (or reset) a user; returns the password (a new random one unless given)."""
        if any(c in username for c in ":\n\r") or not username:
            raise ValueError("a user name without ':' or line breaks is needed")
        password = password or secrets.token_urlsafe(12)
        with self._lock:
            self._users[username] = password
            self._write_users()
        return password

    def password_of(self, username: str) -> str:
        """The user's password, for the layer's own requests to Radicale (never logged)."""
        with self._lock:
            return self._users[username]

    def remove_user(self, username: str) -> None:
        """The user's password stops working (an app-specific password revoked)."""
        with self._lock:
            self._users.pop(username, None)
            self._write_users()

    def _write_users(self) -> None:
        self._htpasswd.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()), encoding="utf-8")

    # ------------------------------------------------------------------ lifecycle
    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.front(environ, start_response)

    def start(self) -> CalDavServer:
        """Listen on ``port`` and on a second port, the "partition host": iCloud answers
        discovery on caldav.icloud.com and serves calendars from pNN-caldav.icloud.com, a
        different origin; on loopback a second port is a different origin too."""
        if self._servers:
            raise RuntimeError("the CalDAV server is already running")
        for port in (self.port, self.partition_port):
            server = make_server(self.host, port, self._app, threaded=True, request_handler=_Quiet)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"caldav-{server.server_port}",
                daemon=True,
            )
            self._servers.append(server)
            self._threads.append(thread)
            thread.start()
        self.partition_port = self._servers[1].server_port
        return self

    def stop(self) -> None:
        servers, threads = self._servers, self._threads
        self._servers, self._threads = [], []
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> CalDavServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Where discovery starts (iCloud: https://caldav.icloud.com)."""
        return self._url(0)

    @property
    def partition_url(self) -> str:
        """The second origin the ``partition_host`` quirk sends users to (pNN-caldav)."""
        return self._url(1)

    def _url(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the CalDAV server is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._servers[index].server_port}"
