"""A real CalDAV server for the local stack and the tests: Radicale (PyPI ``radicale``) on
loopback, with users added on demand (Apple-ID-like emails and app-specific passwords)."""

from devstack.caldav.server import CalDavServer

__all__ = ["CalDavServer"]
