"""A CalDAV account's credential: the Apple ID (or server account) name, its app-specific
password, and where discovery found the account, stored as one small JSON document (KMS-
encrypted like an OAuth refresh token; never logged, never in a ``repr``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from crmsync.ports.accounts import AccountIdentity, PasswordAccount
from crmsync.ports.errors import ProviderError
from crmsync.providers.caldav.client import DavClient

__all__ = ["AppPassword", "CalDavCredential", "CalDavLogin", "verify_app_password"]

#: Called with each redirect target before it is followed; raises to refuse it.
Guard = Callable[[str], None]


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

    def client(self, guard: Guard | None = None) -> DavClient:
        return DavClient(self.server_url, self.username, self.password, guard=guard)


def verify_app_password(server_url: str, username: str, password: str, guard: Guard | None = None) -> AppPassword:
    """Discovery with the given credentials (one PROPFIND per step): the credential to
    store, naming the account (``username``) and its principal. A wrong password raises
    ``AuthRevoked`` (the connect flow explains it); an unreachable or non-CalDAV server a
    ``ProviderError``. What the connect flow calls before it stores anything."""
    found = DavClient(server_url, username, password, guard=guard).discover()
    return AppPassword(username, password, server_url, found.principal_url, found.home_url)


class CalDavLogin:
    """The accounts port's password sign-in for CalDAV (iCloud unless the user names another
    server): discovery with the name and password before anything is stored."""

    provider = "icloud"

    def __init__(self, default_server: str, guard: Guard | None = None) -> None:
        self._default = default_server
        self._guard = guard

    def verify(self, username: str, password: str, server_url: str | None) -> PasswordAccount:
        """The account's subject is the server's host and the principal's path: stable when
        iCloud moves the account to another partition host (pNN-caldav) but not elsewhere."""
        server = server_url or self._default
        found = verify_app_password(server, username, password, guard=self._guard)
        subject = f"{urlsplit(server).netloc.lower()}{urlsplit(found.principal_url).path}"
        email = username.lower() if "@" in username else username
        return PasswordAccount(AccountIdentity(subject, email, None), found.to_secret())


class CalDavCredential:
    """The accounts port's credential for a CalDAV connection."""

    def __init__(self, credential: AppPassword, guard: Guard | None = None) -> None:
        self._credential = credential
        self._guard = guard

    def __repr__(self) -> str:
        return "CalDavCredential(<app password>)"

    def check(self) -> None:
        """A PROPFIND of the principal: ``AuthRevoked`` once the password is revoked."""
        self._credential.client(self._guard).discover()

    def revoke(self) -> None:
        """Nothing to call: an app-specific password is revoked by its owner at Apple (or
        the server's admin); forgetting it is all we can do."""
