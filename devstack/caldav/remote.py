"""The CalDAV dev server in a process of its own, for figures that must not charge the
server's CPU to the client under test: ``bench/caldav.py`` (iCloud is another machine; run in
the benchmark's process, Radicale's Python would share its interpreter lock with the sync it
serves). Driven through the server's control routes (devstack/caldav/faults.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30


class _RemoteLayer:
    """The fault layer's request count, over ``/_caldav/calls``."""

    def __init__(self, server: RemoteCalDavServer) -> None:
        self._server = server

    def count(self, email: str | None = None) -> int:
        return int(self._server.control("GET", "/calls", params={"email": email} if email else None)["count"])

    def clear_calls(self) -> None:
        self._server.control("DELETE", "/calls")


class RemoteCalDavServer:
    """``python -m devstack.caldav`` on loopback (free ports), with the parts of
    :class:`~devstack.caldav.CalDavServer` a benchmark uses: ``base_url``, ``add_user`` and
    ``layer.count``/``layer.clear_calls``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.layer = _RemoteLayer(self)

    def start(self) -> RemoteCalDavServer:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.caldav"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        ready = self._process.stdout.readline().split()
        if len(ready) != 2 or ready[0] != "ready":
            self.stop()
            raise RuntimeError("the CalDAV server process did not start")
        self.base_url = ready[1]
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the server stops when its input ends
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def control(
        self, method: str, route: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = requests.request(
            method, f"{self.base_url}/_caldav{route}", json=body, params=params, timeout=TIMEOUT
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def add_user(self, username: str, password: str | None = None) -> str:
        body = {"email": username, **({"password": password} if password else {})}
        return str(self.control("POST", "/users", body)["password"])

    def __enter__(self) -> RemoteCalDavServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
