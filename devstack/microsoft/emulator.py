"""The :class:`MicrosoftEmulator`: one local https server standing in for Microsoft."""

from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import certifi
from werkzeug.serving import BaseWSGIServer, make_server

from devstack.microsoft.control import ControlService
from devstack.microsoft.identity import IdentityService
from devstack.microsoft.keys import SigningKeys
from devstack.microsoft.server import MicrosoftApp, Service, TLSRequestHandler
from devstack.microsoft.state import State
from devstack.microsoft.tls import LocalCA


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MicrosoftEmulator:
    """Microsoft's identity platform (and, mounted by its own module, Graph) on one https port.

    Usage::

        with MicrosoftEmulator() as emu:
            emu.register_client("id", "secret", ["http://127.0.0.1:8000/callback"])
            emu.seed_demo_users()
            app = msal.ConfidentialClientApplication(
                "id", client_credential="secret", authority=emu.authority(),
                instance_discovery=False, verify=str(emu.ca_bundle))

    The server certificate is signed by a CA made at construction; clients trust it through
    :attr:`ca_bundle`. Everything the Python interface does is also under ``/_microsoft/``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """``host`` must be a loopback address: the emulator hands out tokens to anyone."""
        if not _is_loopback(host):
            raise ValueError(f"the Microsoft emulator serves loopback addresses only, not {host!r}")
        self.host = host
        self.port = port
        self.state = State()
        self.tls = LocalCA()
        self._keys = SigningKeys()
        self.identity = IdentityService(self.state, self._keys)
        self._app = MicrosoftApp([self.identity, ControlService(self.state, lambda: self.endpoints, self.reset)])
        self._resets: list[Any] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url = ""

    def mount(self, service: Service) -> None:
        """Serve another service's routes on this port (Graph); call before :meth:`start`.
        A service with a ``reset()`` method is reset with the emulator."""
        if self._server is not None:
            raise RuntimeError("mount services before start()")
        self._app.mount(service)
        if callable(getattr(service, "reset", None)):
            self._resets.append(service)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> MicrosoftEmulator:
        """Bind the port and serve https from a daemon thread; returns ``self`` at once."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = make_server(self.host, self.port, self._app, threaded=True, request_handler=TLSRequestHandler)
        # Not given to make_server: werkzeug would handshake in the accept loop (see the handler).
        server.ssl_context = self.tls.server_context()
        self._server = server
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"https://{url_host}:{server.server_port}"
        self.identity.base_url = self._base_url
        # A short poll interval keeps stop() quick; the loop is idle otherwise.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"microsoft-emulator-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release the port and delete the TLS files; state is kept."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self.tls.cleanup()

    def __enter__(self) -> MicrosoftEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        """``https://HOST:PORT`` without a trailing slash (known once started)."""
        if not self._base_url:
            raise RuntimeError("the port is chosen at start(); start the emulator first")
        return self._base_url

    @property
    def ca_bundle(self) -> Path:
        """The PEM file of the CA that signed the server certificate: pass it as ``verify=``."""
        return self.tls.files()[0]

    @property
    def trust_bundle(self) -> Path:
        """The CAs requests would trust anyway (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or
        certifi's) plus the emulator's: set it as ``REQUESTS_CA_BUNDLE`` of a process that talks
        to the emulator and to real hosts, and its MSAL needs no ``verify=``. (requests lets that
        variable override a Session's ``verify``, psf/requests#4726, so ``verify=ca_bundle``
        alone fails where it is set.)"""
        base = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
        return self.tls.trust_bundle(Path(base))

    def authority(self, tenant: str = "common") -> str:
        """The MSAL authority URL for ``tenant`` (common, organizations, consumers or an id)."""
        return f"{self.base_url}/{tenant}"

    @property
    def endpoints(self) -> dict[str, str]:
        """The ``common`` authority's metadata, authorize, token and keys URLs."""
        base = self.authority("common")
        return {
            "authority": base,
            "metadata": f"{base}/v2.0/.well-known/openid-configuration",
            "authorize": f"{base}/oauth2/v2.0/authorize",
            "token": f"{base}/oauth2/v2.0/token",
            "jwks": f"{base}/discovery/v2.0/keys",
        }

    # ------------------------------------------------------------------ control

    def register_client(
        self, client_id: str, client_secret: str, redirect_uris: list[str], name: str | None = None
    ) -> dict[str, Any]:
        """Register (or replace) an app registration; ``name`` is shown on the consent page."""
        return self.state.register_client(client_id, client_secret, redirect_uris, name).as_dict()

    def add_user(
        self,
        email: str,
        name: str | None = None,
        *,
        personal: bool = False,
        tid: str | None = None,
        admin_consent_required: bool = False,
    ) -> dict[str, Any]:
        """Add a work account (in ``tid``, default the demo tenant) or a personal one."""
        user = self.state.add_user(
            email, name, personal=personal, tid=tid, admin_consent_required=admin_consent_required
        )
        return user.as_dict()

    def seed_demo_users(self) -> list[dict[str, Any]]:
        """ada@contoso.test (work), grace@outlook.test (personal), linus@fabrikam.test (admin
        consent required)."""
        return [u.as_dict() for u in self.state.seed_demo_users()]

    def revoke_grants(self, email: str, client_id: str | None = None, *, access_tokens: bool = False) -> int:
        """Kill the user's refresh tokens (they answer invalid_grant); see the control API."""
        return self.state.revoke_user(email, client_id, access_tokens=access_tokens)

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the new emulator time."""
        return self.state.clock.advance(seconds)

    def freeze_clock(self, frozen: bool = True) -> float:
        """Stop the emulator clock (it then moves only when advanced) or let it run again."""
        return self.state.clock.freeze(frozen)

    def reset(self) -> None:
        """Forget all state (mounted services' too) and rewind the clock; keys and TLS stay."""
        self.state.reset()
        for service in self._resets:
            service.reset()
