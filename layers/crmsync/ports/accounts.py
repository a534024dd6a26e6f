"""The accounts port: connecting a provider account (OAuth 2.0 with PKCE) and checking or
revoking the credential a connection holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from crmsync.domain import StoredConnection

__all__ = [
    "AccountAccess",
    "AccountIdentity",
    "CredentialPort",
    "OAuthPort",
    "PasswordAccount",
    "PasswordLoginPort",
    "TokenGrant",
]


@dataclass(frozen=True)
class TokenGrant:
    """What a successful code exchange returns. Holds secrets: never log it."""

    access_token: str
    refresh_token: str | None
    id_token: str | None
    scopes: tuple[str, ...]
    expires_at: datetime | None
    #: What the connection stores (KMS-encrypted) when it is not the refresh token alone:
    #: Microsoft's is MSAL's serialized token cache, which MSAL refreshes from.
    credential: str | None = None

    def __repr__(self) -> str:  # keep secrets out of tracebacks and debug output
        return f"TokenGrant(scopes={self.scopes!r}, expires_at={self.expires_at!r})"

    @property
    def stored_credential(self) -> str | None:
        """The secret the connection keeps: ``credential`` if the adapter set one, else the
        refresh token (Google's)."""
        return self.credential or self.refresh_token


@dataclass(frozen=True)
class AccountIdentity:
    """The account a grant belongs to: ``subject`` is the provider's stable account id."""

    subject: str
    email: str
    name: str | None


class OAuthPort(Protocol):
    """One provider's OAuth client (authorization code flow with PKCE S256)."""

    #: The provider's name as connections record it (``google``).
    provider: str
    #: The least scopes of each product feature (``calendar``, ``email``, ``contacts``).
    feature_scopes: Mapping[str, tuple[str, ...]]

    def scopes_for(self, features: Iterable[str]) -> list[str]:
        """Identity scopes plus each feature's, in a stable order without repeats."""
        ...

    def authorization_url(
        self, *, state: str, code_verifier: str, scopes: Sequence[str], login_hint: str | None
    ) -> str: ...

    def exchange_code(self, *, code: str, code_verifier: str, scopes: Sequence[str]) -> TokenGrant:
        """``TokenExchangeFailed`` when the provider refuses the code."""
        ...

    def identity(self, grant: TokenGrant) -> AccountIdentity:
        """The verified account of the grant (its id_token checked: signature, audience,
        issuer, expiry, verified email); ``TokenExchangeFailed`` otherwise."""
        ...


class CredentialPort(Protocol):
    """The credential of one connection."""

    def check(self) -> str | None:
        """Prove it still works (a token refresh, a PROPFIND): ``AuthRevoked`` when it no
        longer does. Returns the credential to store instead when proving it renewed it
        (Microsoft: the token cache with the refresh token that replaced the old one), else
        None."""
        ...

    def revoke(self) -> None:
        """Revoke it at the provider where the provider can (already invalid counts as
        revoked)."""
        ...


@dataclass(frozen=True)
class PasswordAccount:
    """An account whose password the provider accepted: who it is (``identity.subject`` is
    stable, e.g. the CalDAV principal URL) and the credential to store, KMS-encrypted (it
    holds the password: never log it)."""

    identity: AccountIdentity
    credential: str

    def __repr__(self) -> str:  # keep the password out of tracebacks and debug output
        return f"PasswordAccount(identity={self.identity!r})"


class PasswordLoginPort(Protocol):
    """One provider's sign-in with an account name and a password (iCloud: the Apple ID and
    an app-specific password; any CalDAV server: its user name and password)."""

    provider: str

    def verify(self, username: str, password: str, server_url: str | None) -> PasswordAccount:
        """Sign in and find the account (CalDAV: discovery from ``server_url``, or the
        provider's own server when None). ``AuthRevoked`` when the server refuses the name
        and password; ``ProviderNotFound`` when there is no such service there; a retryable
        ``ProviderError`` when the server cannot be reached."""
        ...


class AccountAccess(Protocol):
    """The composition root's view of every provider: their OAuth clients, and the
    credential of a stored connection."""

    def oauth(self, provider: str) -> OAuthPort:
        """``InvalidRequest`` for a provider that is not offered here."""
        ...

    def password_login(self, provider: str) -> PasswordLoginPort:
        """``InvalidRequest`` for a provider that is not offered here with a password."""
        ...

    def credential(self, stored: StoredConnection) -> CredentialPort: ...
