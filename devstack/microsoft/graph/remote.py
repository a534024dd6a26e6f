"""The Graph part of the Microsoft emulator in a process of its own, for figures that must not
charge the server's CPU to the client under test (bench/graph.py: Graph is another machine; in
the benchmark's process, the emulator's Python would share the interpreter lock with the sync
it serves).

``python -m devstack.microsoft.graph.remote`` serves ``GraphApp`` over plain http on a free
loopback port until its standard input ends, and prints ``ready <base url>`` once it listens.
It has no identity part: a bearer token is the mailbox's address (benchmarks only; the local
stack mounts Graph behind the identity emulator, devstack/microsoft/graph_mount.py).
:class:`RemoteGraphServer` starts it and drives it through the control routes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 30
CONTROL = "/_microsoft/graph"


class RemoteGraphServer:
    """The server process; ``base_url`` ends in ``/v1.0``, ``root`` is the server's origin."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.root = ""
        self.base_url = ""
        self._session = requests.Session()

    def start(self) -> RemoteGraphServer:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.microsoft.graph.remote"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        ready = self._process.stdout.readline().split()
        if len(ready) != 2 or ready[0] != "ready":
            self.stop()
            raise RuntimeError("the Graph emulator process did not start")
        self.root = ready[1]
        self.base_url = f"{self.root}/v1.0"
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

    def control(self, method: str, route: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self._session.request(
            method, f"{self.root}{CONTROL}{route}", json=body, params=params, timeout=TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    def add_user(self, email: str) -> str:
        """A mailbox; returns its default calendar's id."""
        self.control("POST", "/users", {"email": email})
        [calendar] = [c["id"] for c in self.control("GET", f"/users/{email}/calendars") if c["isDefaultCalendar"]]
        return str(calendar)

    def add_event(self, email: str, event: dict[str, Any]) -> str:
        """The Outlook user creates ``event`` (a Graph event body) in the default calendar."""
        return str(self.control("POST", f"/users/{email}/events", {"event": event})["id"])

    def calls(self, email: str | None = None) -> int:
        """Graph requests counted by the server (of one mailbox, or all)."""
        return int(self.control("GET", "/calls", params={"email": email} if email else None)["count"])

    def clear_calls(self) -> None:
        self.control("DELETE", "/calls")

    def __enter__(self) -> RemoteGraphServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> None:
    import threading

    from werkzeug.serving import WSGIRequestHandler, make_server

    from devstack.microsoft.graph import GraphApp, GraphState

    class Quiet(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return None

    state = GraphState()
    app = GraphApp(state, lambda token: token if token in state.users else None)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    sys.stdout.write(f"ready http://127.0.0.1:{server.server_port}\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
