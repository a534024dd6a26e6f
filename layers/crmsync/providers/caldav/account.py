"""A CalDAV account's credential: the Apple ID (or server account) name, its app-specific
password, and where discovery found the account, stored as one small JSON document (KMS-
encrypted like an OAuth refresh token; never logged, never in a ``repr``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from crmsync.ports.errors import ProviderError
from crmsync.providers.caldav.client import DavClient

__all__ = ["AppPassword", "CalDavCredential", "verify_app_password"]


@dataclass(frozen=True)
class AppPassword:
    """What an ``app_password`` connection of a CalDAV provider holds. ``principal_url`` and
    ``home_url`` are what discovery found (absolute, the server's), so a sync need not
    discover again; ``username`` is the account's identity (the Apple ID email)."""

    username: str
    password: str
    server_url: str
    principal_url: str
    home_url: str

    def __repr__(self) -> str:
        return f"AppPassword(username={self.username!r}, server_url={self.server_url!r}, password=<hidden>)"

    def to_secret(self) -> str:
        """The credential string to encrypt and store."""
        return json.dumps(
            {
                "username": self.username,
                "password": self.password,
                "server_url": self.server_url,
                "principal_url": self.principal_url,
                "home_url": self.home_url,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_secret(cls, secret: str) -> AppPassword:
        try:
            fields = json.loads(secret)
            return cls(
                **{k: str(fields[k]) for k in ("username", "password", "server_url", "principal_url", "home_url")}
            )
        except (ValueError, KeyError, TypeError):
            # Never chained: the exception's text could quote the secret.
            raise ProviderError("The stored CalDAV credential is unreadable.", retryable=False) from None

    def client(self) -> DavClient:
        return DavClient(self.server_url, self.username, self.password)


def verify_app_password(server_url: str, username: str, password: str) -> AppPassword:
    """Discovery with the given credentials (one PROPFIND per step): the credential to
    store, naming the account (``username``) and its principal. A wrong password raises
    ``AuthRevoked`` (the connect flow explains it); an unreachable or non-CalDAV server a
    ``ProviderError``. What the connect flow calls before it stores anything."""
    found = DavClient(server_url, username, password).discover()
    return AppPassword(username, password, server_url, found.principal_url, found.home_url)


class CalDavCredential:
    """The accounts port's credential for a CalDAV connection."""

    def __init__(self, credential: AppPassword) -> None:
        self._credential = credential

    def __repr__(self) -> str:
        return "CalDavCredential(<app password>)"

    def check(self) -> None:
        """A PROPFIND of the principal: ``AuthRevoked`` once the password is revoked."""
        self._credential.client().discover()

    def revoke(self) -> None:
        """Nothing to call: an app-specific password is revoked by its owner at Apple (or
        the server's admin); forgetting it is all we can do."""
