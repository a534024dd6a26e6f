"""Server URLs users type (a CalDAV server of their own): the backend will call them, so a URL
must not point it at its own network (SSRF: the instance metadata service at 169.254.169.254,
a VPC address, loopback)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

MAX_URL = 2048


class UnsafeServerUrl(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback


def check_server_url(url: str, *, private: bool = False) -> str:
    """``url`` normalised (scheme and host lower-cased, no fragment) when it is an ``https``
    URL whose host resolves only to public addresses; ``private``: loopback addresses are
    allowed too, over ``http`` as well (the local stack). Raises :class:`UnsafeServerUrl`
    with a reason the user can read.

    What is checked is the address now; a server that later redirects to a private address
    is refused by the client, which checks each redirect the same way."""
    if len(url) > MAX_URL or any(ord(c) < 33 for c in url):
        raise UnsafeServerUrl("The server address must be a URL without spaces.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeServerUrl("The server address must start with https:// and name a host.")
    if parts.username or parts.password:
        raise UnsafeServerUrl("Put the user name and password in their own fields, not in the address.")
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:
        raise UnsafeServerUrl("The server address has an invalid port.") from None
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        raise UnsafeServerUrl(f"The server {host} could not be found.") from None
    if private and found and all(_loopback(a) for a in found):
        return urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))
    if scheme != "https":
        raise UnsafeServerUrl("The server address must use https://.")
    if not found or not all(_public(a) for a in found):
        raise UnsafeServerUrl(f"The server {host} is not on the public Internet.")
    return urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))
