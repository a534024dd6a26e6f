"""In-memory state of the Google emulator: accounts, clients, grants, codes and tokens.

Everything lives behind one re-entrant lock because the HTTP server is threaded;
protocol code in other modules takes :attr:`State.lock` around multi-step operations
so that, for example, a code cannot be redeemed twice by racing requests.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from devstack.google import scopes as scope_names

CODE_LIFETIME_SECONDS = 600
ACCESS_TOKEN_LIFETIME_SECONDS = 3599
ID_TOKEN_LIFETIME_SECONDS = 3600
# Google documents a limit of 100 refresh tokens per Google Account per OAuth client.
MAX_REFRESH_TOKENS_PER_GRANT = 100

DEMO_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.org", "Grace Hopper"),
    ("linus@example.net", "Linus Torvalds"),
)

TokenKind = Literal["access_token", "refresh_token"]


#: Scopes that keep a Testing client's refresh token alive beyond 7 days.
IDENTITY_SCOPES = frozenset(
    {
        "openid",
        "email",
        "profile",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
    }
)
UNUSED_REFRESH_TOKEN_SECONDS = 183 * 24 * 3600
TESTING_REFRESH_TOKEN_SECONDS = 7 * 24 * 3600


def _is_gmail(scope: str) -> bool:
    return "/auth/gmail." in scope or scope == "https://mail.google.com/"


class Clock:
    """The emulator's notion of "now": wall-clock time plus an offset tests can advance.

    Advancing moves only the emulator's clock, so expiry can be tested without sleeping.
    Frozen, it stands still until advanced (rate limits counted per second, such as Gmail's
    per-user quota, are then tested exactly); thawing goes on from there at wall-clock pace.
    """

    #: Wall time the clock stopped at (a class default, so clocks pickled before it load).
    _frozen_at: float | None = None

    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at = None
        self._lock = threading.Lock()

    def _wall(self) -> float:
        return self._frozen_at if self._frozen_at is not None else time.time()

    def now(self) -> float:
        """Current emulator time in seconds since the epoch."""
        with self._lock:
            return self._wall() + self._offset

    @property
    def offset(self) -> float:
        """Seconds the emulator clock is ahead of the wall clock."""
        with self._lock:
            return self._wall() + self._offset - time.time()

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still between advances."""
        with self._lock:
            return self._frozen_at is not None

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        with self._lock:
            self._offset += seconds
            return self._wall() + self._offset

    def freeze(self, frozen: bool = True) -> float:
        """Stop the clock (``frozen``) or let it run again from where it stands; returns now."""
        with self._lock:
            now = self._wall() + self._offset
            self._frozen_at = time.time() if frozen else None
            # Keep "now" where it is: the clock neither jumps nor goes back.
            self._offset = now - self._wall()
            return now

    def reset(self) -> None:
        """Go back to wall-clock time."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None


def subject_for(email: str) -> str:
    """Derive a stable 21-digit numeric ``sub`` from an e-mail address, shaped like Google's."""
    digest = hashlib.sha256(email.lower().encode("utf-8")).digest()
    return str(10**20 + int.from_bytes(digest[:16], "big") % (9 * 10**20))


def new_code() -> str:
    """A fresh authorization code, shaped like Google's (``4/0`` + ~70 URL-safe chars)."""
    return "4/0" + secrets.token_urlsafe(53)[:70]


def new_access_token() -> str:
    """A fresh opaque access token, shaped like Google's (``ya29.`` prefix)."""
    return "ya29." + secrets.token_urlsafe(120)


def new_refresh_token() -> str:
    """A fresh refresh token, shaped like Google's (``1//`` prefix)."""
    return "1//" + secrets.token_urlsafe(75)


@dataclass
class Account:
    """A Google account that can sign in on the consent page."""

    sub: str
    email: str
    name: str

    def as_dict(self) -> dict[str, str]:
        """JSON shape used by the Python and HTTP control interfaces."""
        return {"sub": self.sub, "email": self.email, "name": self.name}


@dataclass
class Client:
    """A registered OAuth client (a "web application" client in Google Cloud terms)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    name: str
    #: The consent screen's publishing status is "Testing": refresh tokens for more than
    #: identity scopes expire after 7 days (Google's documented behaviour).
    testing: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the control API (the secret is deliberately left out)."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "publishing_status": "testing" if self.testing else "production",
        }


@dataclass
class PendingAuthorization:
    """A validated authorization request waiting for the user's choice on the consent page."""

    request_id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    access_type: str
    prompt: tuple[str, ...]
    nonce: str | None
    include_granted_scopes: bool
    login_hint: str | None


@dataclass
class AuthorizationCode:
    """A single-use authorization code and everything it was bound to."""

    value: str
    client_id: str
    redirect_uri: str
    sub: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    code_challenge_method: str | None
    access_type: str
    prompt: tuple[str, ...]
    nonce: str | None
    issue_refresh_token: bool
    expires_at: float
    used: bool = False
    revoked: bool = False
    # Tokens minted from this code, so that a replay can revoke them (RFC 6749 §10.5).
    access_tokens: list[str] = field(default_factory=list)
    refresh_token: str | None = None


@dataclass
class RefreshToken:
    """A refresh token; ``status`` says whether it still works and, if not, why."""

    value: str
    sub: str
    client_id: str
    scopes: tuple[str, ...]
    created_at: float
    status: Literal["live", "revoked", "evicted", "expired"] = "live"
    #: Last issue or use; a refresh token unused for six months stops working.
    last_used_at: float = 0.0


@dataclass
class AccessToken:
    """A bearer access token."""

    value: str
    sub: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    revoked: bool = False
    refresh_token: str | None = None


@dataclass
class Grant:
    """What one account has granted to one client."""

    sub: str
    client_id: str
    scopes: tuple[str, ...] = ()
    revoked: bool = False
    consented: bool = False
    # Live refresh tokens, oldest first, to enforce the per-grant limit.
    refresh_tokens: deque[str] = field(default_factory=deque)


@dataclass
class Revocation:
    """A successful call of the revocation endpoint."""

    token_kind: TokenKind
    email: str
    client_id: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the control API; ``at`` is emulator-clock epoch seconds."""
        return {
            "token_kind": self.token_kind,
            "email": self.email,
            "client_id": self.client_id,
            "at": self.at,
        }


class State:
    """All mutable emulator state. Methods are thread-safe; see :attr:`lock` for compound steps."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self._init_collections()

    def _init_collections(self) -> None:
        self.accounts_by_email: dict[str, Account] = {}
        self.clients: dict[str, Client] = {}
        self.pending: dict[str, PendingAuthorization] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.grants_by_key: dict[tuple[str, str], Grant] = {}
        self.revocation_log: list[Revocation] = []
        self._issued: dict[str, list[str]] = {
            "codes": [],
            "access_tokens": [],
            "refresh_tokens": [],
            "id_tokens": [],
        }

    # ------------------------------------------------------------------ control

    def reset(self) -> None:
        """Forget everything (accounts and clients included) and return to wall-clock time."""
        with self.lock:
            self._init_collections()
            self.clock.reset()

    def now(self) -> float:
        """Shortcut for ``clock.now()``."""
        return self.clock.now()

    def advance_clock(self, seconds: float) -> float:
        """Shortcut for ``clock.advance(seconds)``."""
        return self.clock.advance(seconds)

    def register_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str] | tuple[str, ...],
        name: str | None = None,
        *,
        testing: bool = False,
    ) -> Client:
        """Register (or replace) an OAuth client (``testing``: consent screen in Testing)."""
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        client = Client(client_id, client_secret, tuple(redirect_uris), name or client_id, testing)
        with self.lock:
            self.clients[client_id] = client
        return client

    def add_account(self, email: str, name: str | None = None) -> Account:
        """Add an account; adding an existing e-mail returns the existing account."""
        normalized = email.strip().lower()
        if "@" not in normalized.strip("@"):
            raise ValueError("not an e-mail address")
        with self.lock:
            existing = self.accounts_by_email.get(normalized)
            if existing is not None:
                return existing
            display = name or normalized.split("@", 1)[0].replace(".", " ").title()
            account = Account(subject_for(normalized), normalized, display)
            self.accounts_by_email[normalized] = account
            return account

    def seed_demo_accounts(self) -> list[Account]:
        """Add the demo accounts (idempotent) and return them."""
        return [self.add_account(email, name) for email, name in DEMO_ACCOUNTS]

    def account_by_sub(self, sub: str) -> Account:
        """The account with subject ``sub`` (accounts are never deleted except by reset)."""
        with self.lock:
            for account in self.accounts_by_email.values():
                if account.sub == sub:
                    return account
        raise KeyError(sub)

    def accounts(self) -> list[dict[str, str]]:
        """All accounts, in creation order."""
        with self.lock:
            return [a.as_dict() for a in self.accounts_by_email.values()]

    def grants(self) -> list[dict[str, Any]]:
        """Per account and client: granted scopes, revoked flag, number of live refresh tokens."""
        with self.lock:
            return [
                {
                    "email": self.account_by_sub(g.sub).email,
                    "sub": g.sub,
                    "client_id": g.client_id,
                    "scopes": list(g.scopes),
                    "revoked": g.revoked,
                    "live_refresh_tokens": len(g.refresh_tokens),
                }
                for g in self.grants_by_key.values()
            ]

    def issued(self) -> dict[str, list[str]]:
        """Every secret the emulator ever issued (since the last reset), by kind."""
        with self.lock:
            return {kind: list(values) for kind, values in self._issued.items()}

    def revocations(self) -> list[dict[str, Any]]:
        """Successful calls of the revocation endpoint, oldest first."""
        with self.lock:
            return [r.as_dict() for r in self.revocation_log]

    # ------------------------------------------------------------------ grants

    def grant(self, sub: str, client_id: str) -> Grant | None:
        """The grant of ``sub`` to ``client_id``, if the account ever consented."""
        with self.lock:
            return self.grants_by_key.get((sub, client_id))

    def record_consent(self, sub: str, client_id: str, scopes: tuple[str, ...]) -> Grant:
        """Note that the account approved ``scopes`` for the client (reviving a revoked grant)."""
        with self.lock:
            grant = self.grants_by_key.setdefault((sub, client_id), Grant(sub, client_id))
            if grant.revoked:
                grant.revoked = False
                grant.scopes = ()
            grant.scopes = scope_names.merge(grant.scopes, scopes)
            grant.consented = True
            return grant

    def revoke_grant(self, sub: str, client_id: str) -> bool:
        """Revoke everything the account granted the client; False if there was no live grant."""
        with self.lock:
            grant = self.grants_by_key.get((sub, client_id))
            if grant is None or grant.revoked:
                return False
            grant.revoked = True
            grant.consented = False
            grant.scopes = ()
            grant.refresh_tokens.clear()
            for refresh in self.refresh_tokens.values():
                if refresh.sub == sub and refresh.client_id == client_id and refresh.status == "live":
                    refresh.status = "revoked"
            for access in self.access_tokens.values():
                if access.sub == sub and access.client_id == client_id:
                    access.revoked = True
            for code in self.codes.values():
                if code.sub == sub and code.client_id == client_id and not code.used:
                    code.revoked = True
            return True

    def record_revocation(self, kind: TokenKind, sub: str, client_id: str) -> None:
        """Append to the log of revocation-endpoint calls."""
        with self.lock:
            email = self.account_by_sub(sub).email
            self.revocation_log.append(Revocation(kind, email, client_id, self.now()))

    # ------------------------------------------------------------------ codes and tokens

    def issue_code(self, code: AuthorizationCode) -> None:
        """Store a new authorization code."""
        with self.lock:
            self.codes[code.value] = code
            self._issued["codes"].append(code.value)

    def issue_access_token(
        self,
        sub: str,
        client_id: str,
        scopes: tuple[str, ...],
        refresh_token: str | None = None,
    ) -> AccessToken:
        """Mint an access token valid for :data:`ACCESS_TOKEN_LIFETIME_SECONDS`."""
        with self.lock:
            token = AccessToken(
                value=new_access_token(),
                sub=sub,
                client_id=client_id,
                scopes=scopes,
                expires_at=self.now() + ACCESS_TOKEN_LIFETIME_SECONDS,
                refresh_token=refresh_token,
            )
            self.access_tokens[token.value] = token
            self._issued["access_tokens"].append(token.value)
            return token

    def issue_refresh_token(self, sub: str, client_id: str, scopes: tuple[str, ...]) -> RefreshToken:
        """Mint a refresh token, evicting the grant's oldest one beyond the per-grant limit."""
        with self.lock:
            grant = self.grants_by_key.setdefault((sub, client_id), Grant(sub, client_id))
            token = RefreshToken(new_refresh_token(), sub, client_id, scopes, self.now(), last_used_at=self.now())
            self.refresh_tokens[token.value] = token
            grant.refresh_tokens.append(token.value)
            while len(grant.refresh_tokens) > MAX_REFRESH_TOKENS_PER_GRANT:
                self.refresh_tokens[grant.refresh_tokens.popleft()].status = "evicted"
            self._issued["refresh_tokens"].append(token.value)
            return token

    def record_id_token(self, token: str) -> None:
        """Remember an id_token so :meth:`issued` can list it."""
        with self.lock:
            self._issued["id_tokens"].append(token)

    def live_access_token(self, value: str) -> AccessToken | None:
        """The access token ``value`` if it exists, is not revoked and has not expired."""
        with self.lock:
            token = self.access_tokens.get(value)
            if token is None or token.revoked or self.now() >= token.expires_at:
                return None
            return token

    def live_refresh_token(self, value: str) -> RefreshToken | None:
        """The refresh token ``value`` if it still works (and marks it used).

        Besides revocation and eviction, two documented expiries apply: six months without
        use, and 7 days after issue for a client whose consent screen is in Testing (unless
        only identity scopes were granted).
        """
        with self.lock:
            token = self.refresh_tokens.get(value)
            if token is None or token.status != "live":
                return None
            now = self.now()
            client = self.clients.get(token.client_id)
            identity_only = set(token.scopes) <= IDENTITY_SCOPES
            if now - token.last_used_at > UNUSED_REFRESH_TOKEN_SECONDS or (
                client is not None
                and client.testing
                and not identity_only
                and now - token.created_at > TESTING_REFRESH_TOKEN_SECONDS
            ):
                token.status = "expired"
                return None
            token.last_used_at = now
            return token

    def change_password(self, email: str) -> int:
        """The user changed their password: refresh tokens of grants with Gmail scopes stop
        working (Google's documented rule). Returns how many were revoked."""
        with self.lock:
            account = self.accounts_by_email.get(email.strip().lower())
            if account is None:
                raise KeyError(email)
            revoked = 0
            for token in self.refresh_tokens.values():
                if token.sub == account.sub and token.status == "live" and any(_is_gmail(s) for s in token.scopes):
                    token.status = "revoked"
                    revoked += 1
                    for access in self.access_tokens.values():
                        if access.refresh_token == token.value:
                            access.revoked = True
            return revoked

    def revoke_code_tokens(self, code: AuthorizationCode) -> None:
        """Revoke the tokens minted from ``code`` and from its refresh token (code replay)."""
        with self.lock:
            for value in code.access_tokens:
                self.access_tokens[value].revoked = True
            if code.refresh_token is None:
                return
            refresh = self.refresh_tokens[code.refresh_token]
            if refresh.status == "live":
                refresh.status = "revoked"
            grant = self.grants_by_key.get((refresh.sub, refresh.client_id))
            if grant is not None and refresh.value in grant.refresh_tokens:
                grant.refresh_tokens.remove(refresh.value)
            for access in self.access_tokens.values():
                if access.refresh_token == refresh.value:
                    access.revoked = True
