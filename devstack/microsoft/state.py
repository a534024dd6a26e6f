"""What the Microsoft identity emulator remembers: app registrations, users, codes and tokens.

Lifetimes follow Microsoft's documentation where it gives one (cited per constant); every
expiry is measured on the emulator's clock, which tests advance instead of sleeping.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from devstack.google.state import Clock

#: The tenant id of personal Microsoft accounts ("consumers"):
#: https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference (``tid``).
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
#: The demo organisation's tenant (a fixed GUID so `make dev` links survive restarts).
CONTOSO_TENANT_ID = "6f1c2a4e-0b7d-4c1e-9a3b-5d8e7f60c0de"
#: "Authorization codes are short lived, typically expiring after about 10 minutes"
#: (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow).
CODE_LIFETIME_SECONDS = 600
#: Access tokens live 60-90 minutes, randomly (access-tokens#token-lifetime); the emulator
#: takes the low end so expiry is reached early. expires_in says one second less, as Microsoft's.
ACCESS_TOKEN_LIFETIME_SECONDS = 3600
ID_TOKEN_LIFETIME_SECONDS = 3600
#: "The default lifetime for the refresh tokens is 24 hours for single page apps and 90 days for
#: all other scenarios" (https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens).
REFRESH_TOKEN_LIFETIME_SECONDS = 90 * 24 * 3600
#: How long the consent page of one authorization request stays usable (emulator choice).
PENDING_LIFETIME_SECONDS = 600


def _secret(prefix: str) -> str:
    # Opaque strings: Microsoft says clients must not parse codes, refresh or Graph access tokens.
    return f"{prefix}.{secrets.token_urlsafe(32)}"


@dataclass
class User:
    """An account the emulator can sign in: work (a tenant's) or personal (consumers)."""

    email: str
    name: str
    oid: str
    tid: str
    personal: bool = False
    #: The user's organisation lets only admins consent: sign-in ends on "Need admin approval".
    admin_consent_required: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the control API."""
        return {
            "email": self.email,
            "name": self.name,
            "oid": self.oid,
            "tid": self.tid,
            "personal": self.personal,
            "admin_consent_required": self.admin_consent_required,
        }


@dataclass
class Client:
    """An app registration: client id, one client secret, its redirect URIs and display name."""

    client_id: str
    secret: str
    redirect_uris: list[str]
    name: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the control API, without the secret."""
        return {"client_id": self.client_id, "redirect_uris": list(self.redirect_uris), "name": self.name}


@dataclass
class PendingAuthorization:
    """A validated authorize request waiting for the person's answer on the consent page."""

    request_id: str
    tenant: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str
    login_hint: str | None
    expires_at: float
    #: ``query`` (a 302) or ``form_post`` (a page that POSTs the answer to the redirect URI).
    response_mode: str = "query"


@dataclass
class AuthorizationCode:
    """A code issued to a redirect URI; single use, short-lived, bound to its PKCE challenge."""

    code: str
    client_id: str
    redirect_uri: str
    user_email: str
    scopes: list[str]
    nonce: str | None
    code_challenge: str
    expires_at: float
    redeemed: bool = False


@dataclass
class RefreshToken:
    """A refresh token of one user for one client, with the scopes consented."""

    token: str
    client_id: str
    user_email: str
    scopes: list[str]
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class AccessToken:
    """What a Graph request's bearer token stands for."""

    token: str
    client_id: str
    user: User
    scopes: list[str]
    expires_at: float


@dataclass
class State:
    """All the identity emulator's mutable state, behind one lock."""

    clock: Clock = field(default_factory=Clock)
    lock: threading.RLock = field(default_factory=threading.RLock)
    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    pending: dict[str, PendingAuthorization] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)

    def now(self) -> float:
        """The emulator clock's time."""
        return self.clock.now()

    def reset(self) -> None:
        """Forget everything and go back to wall-clock time."""
        with self.lock:
            for table in (
                self.clients,
                self.users,
                self.pending,
                self.codes,
                self.refresh_tokens,
                self.access_tokens,
            ):
                table.clear()
            self.clock.reset()

    # ------------------------------------------------------------------ registrations

    def register_client(self, client_id: str, secret: str, redirect_uris: list[str], name: str | None) -> Client:
        """Register (or replace) an app; redirect URIs are compared exactly, as Microsoft does."""
        if not client_id or not secret:
            raise ValueError("client_id and client_secret must not be empty")
        client = Client(client_id, secret, list(redirect_uris), name or client_id)
        with self.lock:
            self.clients[client_id] = client
        return client

    def add_user(
        self,
        email: str,
        name: str | None = None,
        *,
        personal: bool = False,
        tid: str | None = None,
        oid: str | None = None,
        admin_consent_required: bool = False,
    ) -> User:
        """Add a user (or return the existing one with that email, unchanged)."""
        key = email.strip().lower()
        if "@" not in key:
            raise ValueError("email must be an address")
        if personal and tid not in (None, CONSUMERS_TENANT_ID):
            raise ValueError("a personal account's tenant is always the consumers tenant")
        if not personal and tid == CONSUMERS_TENANT_ID:
            raise ValueError("a work account cannot live in the consumers tenant")
        with self.lock:
            existing = self.users.get(key)
            if existing is not None:
                return existing
            user = User(
                email=key,
                name=name or key.split("@")[0].title(),
                oid=oid or str(uuid.uuid4()),
                tid=CONSUMERS_TENANT_ID if personal else (tid or CONTOSO_TENANT_ID),
                personal=personal,
                admin_consent_required=admin_consent_required,
            )
            self.users[key] = user
            return user

    def seed_demo_users(self) -> list[User]:
        """ada@contoso.test (work), grace@outlook.test (personal) and, in a locked-down
        organisation, linus@fabrikam.test (admin consent required)."""
        return [
            self.add_user("ada@contoso.test", "Ada Lovelace", oid="0b2f7c3e-1a5d-4e6f-8a9b-0c1d2e3f4a5b"),
            self.add_user(
                "grace@outlook.test", "Grace Hopper", personal=True, oid="00000000-0000-0000-6a1b-2c3d4e5f6a7b"
            ),
            self.add_user(
                "linus@fabrikam.test",
                "Linus Torvalds",
                tid="3c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f",
                oid="7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918",
                admin_consent_required=True,
            ),
        ]

    def known_tenant(self, tenant: str) -> bool:
        """The path's tenant segment names an alias or a tenant one of the users lives in."""
        if tenant in ("common", "organizations", "consumers", CONSUMERS_TENANT_ID):
            return True
        with self.lock:
            return any(u.tid == tenant for u in self.users.values())

    @staticmethod
    def user_allowed(tenant: str, user: User) -> bool:
        """Whether an authority's tenant segment admits this account (common admits all)."""
        if tenant == "common":
            return True
        if tenant == "organizations":
            return not user.personal
        if tenant in ("consumers", CONSUMERS_TENANT_ID):
            return user.personal
        return user.tid == tenant

    # ------------------------------------------------------------------ issuing

    def new_pending(self, **values: Any) -> PendingAuthorization:
        """Remember a validated authorize request for the consent page's answer."""
        pending = PendingAuthorization(
            request_id=secrets.token_urlsafe(16), expires_at=self.now() + PENDING_LIFETIME_SECONDS, **values
        )
        with self.lock:
            self.pending[pending.request_id] = pending
        return pending

    def issue_code(self, pending: PendingAuthorization, user: User) -> AuthorizationCode:
        """A code for ``user`` answering ``pending`` (which is used up)."""
        code = AuthorizationCode(
            code=_secret("M"),
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            user_email=user.email,
            scopes=list(pending.scopes),
            nonce=pending.nonce,
            code_challenge=pending.code_challenge,
            expires_at=self.now() + CODE_LIFETIME_SECONDS,
        )
        with self.lock:
            self.pending.pop(pending.request_id, None)
            self.codes[code.code] = code
        return code

    def issue_access_token(self, client_id: str, user: User, scopes: list[str]) -> AccessToken:
        """A bearer token for Graph, remembered with its user, scopes and expiry."""
        token = AccessToken(_secret("EwA"), client_id, user, list(scopes), self.now() + ACCESS_TOKEN_LIFETIME_SECONDS)
        with self.lock:
            self.access_tokens[token.token] = token
        return token

    def issue_refresh_token(self, client_id: str, user: User, scopes: list[str]) -> RefreshToken:
        """A new refresh token; earlier ones stay valid (Microsoft does not revoke them on use)."""
        now = self.now()
        token = RefreshToken(
            _secret("0.A"), client_id, user.email, list(scopes), now, now + REFRESH_TOKEN_LIFETIME_SECONDS
        )
        with self.lock:
            self.refresh_tokens[token.token] = token
        return token

    def refresh_token_alive(self, token: RefreshToken) -> bool:
        """Neither revoked nor expired."""
        return not token.revoked and token.expires_at > self.now()

    def revoke_user(self, email: str, client_id: str | None = None, *, access_tokens: bool = False) -> int:
        """Kill the user's refresh tokens (of one client, or all, like revokeSignInSessions);
        with ``access_tokens`` also their live access tokens. Returns how many refresh tokens died."""
        key = email.strip().lower()
        with self.lock:
            if key not in self.users:
                raise KeyError(email)
            killed = 0
            for token in self.refresh_tokens.values():
                if token.user_email == key and (client_id is None or token.client_id == client_id):
                    killed += 0 if token.revoked else 1
                    token.revoked = True
            if access_tokens:
                for access in list(self.access_tokens.values()):
                    if access.user.email == key and (client_id is None or access.client_id == client_id):
                        del self.access_tokens[access.token]
            return killed

    def access_token_info(self, token: str) -> AccessToken | None:
        """The live access token ``token`` stands for, or ``None`` (unknown or expired)."""
        with self.lock:
            access = self.access_tokens.get(token)
        if access is None or access.expires_at <= self.now():
            return None
        return access
