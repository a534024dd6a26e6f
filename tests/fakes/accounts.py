"""In-memory fakes of the accounts port: an OAuth provider (authorization code flow with
PKCE S256) and the credentials of connections."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

from crmsync.domain import StoredConnection
from crmsync.errors import InvalidRequest, TokenExchangeFailed
from crmsync.ports.accounts import AccountIdentity, PasswordAccount, TokenGrant
from crmsync.ports.errors import AuthRevoked, ProviderNotFound

__all__ = ["FakeAccountAccess", "FakeCredential", "FakeOAuth", "FakePasswordLogin"]

#: Scopes that name the account (asked for whatever the features).
IDENTITY_SCOPES: tuple[str, ...] = ("openid", "email")
#: The least scopes of each feature, provider-neutral.
FEATURE_SCOPES: Mapping[str, tuple[str, ...]] = {
    "calendar": ("fake.calendar.list", "fake.calendar.events"),
    "email": ("fake.mail.read", "fake.mail.send"),
    "contacts": ("fake.contacts",),
}
_SUBJECTS = itertools.count(100000)


def code_challenge(code_verifier: str) -> str:
    """PKCE S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class _Code:
    challenge: str
    scopes: tuple[str, ...]
    identity: AccountIdentity


class FakeOAuth:
    """An OAuth provider whose consent page a test answers with :meth:`approve`.

    ``authorization_url`` carries ``client_id``, ``redirect_uri``, ``response_type=code``,
    ``scope``, ``state``, ``code_challenge`` (S256 of the verifier), ``code_challenge_method``,
    ``access_type=offline``, ``prompt=consent`` and ``login_hint`` when given.
    """

    def __init__(
        self,
        *,
        provider: str = "google",
        feature_scopes: Mapping[str, tuple[str, ...]] = FEATURE_SCOPES,
        auth_uri: str = "https://accounts.fake.test/o/oauth2/auth",
        client_id: str = "fake-client-id",
        redirect_uri: str = "https://crm.fake.test/v1/integrations/google/callback",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        token_cache: bool = False,
    ) -> None:
        """``token_cache``: grants carry a credential other than the refresh token (as
        Microsoft's carry MSAL's serialized token cache)."""
        self.provider = provider
        self.token_cache = token_cache
        #: Token caches issued, in order (when ``token_cache``).
        self.token_caches: list[str] = []
        self.feature_scopes = feature_scopes
        self.auth_uri = auth_uri
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self._clock = clock
        self._codes: dict[str, _Code] = {}
        self._id_tokens: dict[str, AccountIdentity] = {}
        self._subjects: dict[str, str] = {}
        self._failures: list[Exception] = []
        #: Port calls so far, by method name.
        self.calls: Counter[str] = Counter()
        #: Refresh tokens issued, in order (each one's :class:`FakeCredential` is up to the test).
        self.refresh_tokens: list[str] = []

    # ------------------------------------------------------------------ the port
    def scopes_for(self, features: Iterable[str]) -> list[str]:
        out = list(IDENTITY_SCOPES)
        for feature in features:
            try:
                extra = self.feature_scopes[feature]
            except KeyError:
                raise ValueError(f"unknown feature {feature!r}") from None
            out.extend(s for s in extra if s not in out)
        return out

    def authorization_url(
        self, *, state: str, code_verifier: str, scopes: Sequence[str], login_hint: str | None
    ) -> str:
        self.calls["authorization_url"] += 1
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": code_challenge(code_verifier),
            "code_challenge_method": "S256",
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "true",
        }
        if login_hint:
            params["login_hint"] = login_hint
        return f"{self.auth_uri}?{urlencode(params)}"

    def exchange_code(self, *, code: str, code_verifier: str, scopes: Sequence[str]) -> TokenGrant:
        """A code is good once, with the verifier its URL was made from."""
        self.calls["exchange_code"] += 1
        if self._failures:
            raise self._failures.pop(0)
        issued = self._codes.pop(code, None)
        if issued is None or issued.challenge != code_challenge(code_verifier):
            raise TokenExchangeFailed("The provider refused the authorization code (invalid_grant).", retryable=False)
        id_token = f"fake-id-token-{secrets.token_hex(8)}"
        self._id_tokens[id_token] = issued.identity
        refresh_token = f"fake-refresh-{secrets.token_hex(12)}"
        self.refresh_tokens.append(refresh_token)
        cache = None
        if self.token_cache:
            cache = json.dumps({"RefreshToken": {"fake": {"secret": refresh_token}}, "Account": {}})
            self.token_caches.append(cache)
        return TokenGrant(
            access_token=f"fake-access-{secrets.token_hex(12)}",
            refresh_token=refresh_token,
            id_token=id_token,
            scopes=issued.scopes,
            expires_at=self._clock() + timedelta(hours=1),
            credential=cache,
        )

    def identity(self, grant: TokenGrant) -> AccountIdentity:
        self.calls["identity"] += 1
        found = self._id_tokens.get(grant.id_token or "")
        if found is None:
            raise TokenExchangeFailed("The id_token did not verify.", retryable=False)
        return found

    # ------------------------------------------------------------------ test controls
    def approve(
        self,
        authorization_url: str,
        *,
        email: str = "ada@example.com",
        name: str | None = None,
        scopes: Sequence[str] | None = None,
        subject: str | None = None,
    ) -> dict[str, str]:
        """The user picks ``email`` on the consent page of ``authorization_url`` and grants
        ``scopes`` (all asked for, by default). Returns the callback's query parameters
        (``code`` and ``state``), as the provider would redirect with them. The same email
        always has the same subject, unless ``subject`` names one (an account whose email
        changed keeps its subject)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        granted = tuple(scopes) if scopes is not None else tuple(query.get("scope", "").split())
        if subject is None:
            subject = self._subjects.setdefault(email.lower(), str(next(_SUBJECTS)))
        code = f"fake-code-{secrets.token_hex(8)}"
        self._codes[code] = _Code(query["code_challenge"], granted, AccountIdentity(subject, email, name))
        return {"code": code, "state": query["state"]}

    def fail_next_exchange(self, error: Exception) -> None:
        """The next :meth:`exchange_code` raises ``error`` (the code stays unused)."""
        self._failures.append(error)


class FakeCredential:
    """The credential of one connection: works until revoked (by :meth:`revoke`, or by the
    user at the provider: :meth:`user_revokes`)."""

    def __init__(self) -> None:
        self.revoked = False
        #: What :meth:`check` returns as the credential to store instead (None: keep it).
        self.renews_to: str | None = None
        self._failures: list[Exception] = []
        #: Port calls so far, by method name.
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"FakeCredential(revoked={self.revoked})"

    def check(self) -> str | None:
        """None, or ``renews_to`` when a test set it (a provider that rotates the credential
        on every check, as Microsoft's refresh tokens replace themselves)."""
        self.calls["check"] += 1
        self._maybe_fail()
        if self.revoked:
            raise AuthRevoked()
        return self.renews_to

    def revoke(self) -> None:
        """Revoking a revoked credential is fine, as at Google."""
        self.calls["revoke"] += 1
        self._maybe_fail()
        self.revoked = True

    def user_revokes(self) -> None:
        """The user removes the app's access at the provider (not a port call)."""
        self.revoked = True

    def fail_next(self, error: Exception) -> None:
        """The next port call raises ``error`` and changes nothing."""
        self._failures.append(error)

    def _maybe_fail(self) -> None:
        if self._failures:
            raise self._failures.pop(0)


class FakeAccountAccess:
    """Every provider's :class:`FakeOAuth` by name, and one :class:`FakeCredential` per
    connection id (made on first use)."""

    def __init__(self, *oauths: FakeOAuth, logins: tuple[FakePasswordLogin, ...] | None = None) -> None:
        self._oauths = {o.provider: o for o in (oauths or (FakeOAuth(),))}
        self._logins = {login.provider: login for login in (logins if logins is not None else (FakePasswordLogin(),))}
        self._credentials: dict[str, FakeCredential] = {}

    def password_login(self, provider: str) -> FakePasswordLogin:
        try:
            return self._logins[provider]
        except KeyError:
            raise InvalidRequest(f"Connecting {provider!r} with a password is not offered here.") from None

    def oauth(self, provider: str) -> FakeOAuth:
        try:
            return self._oauths[provider]
        except KeyError:
            raise InvalidRequest(f"Unknown provider {provider!r}.") from None

    def credential(self, stored: StoredConnection) -> FakeCredential:
        return self.credential_of(stored.connection.connection_id)

    def credential_of(self, connection_id: str) -> FakeCredential:
        """The credential of a connection (made on first use): to revoke it as the user, or
        read its calls."""
        return self._credentials.setdefault(connection_id, FakeCredential())


class FakePasswordLogin:
    """A CalDAV-like sign-in with a name and a password: accounts are added with
    :meth:`add_account`; a wrong password is ``AuthRevoked``; an unknown server URL is
    ``ProviderNotFound``. ``seen`` records each (username, server_url) tried."""

    def __init__(self, provider: str = "icloud") -> None:
        self.provider = provider
        self._accounts: dict[tuple[str, str | None], str] = {}
        self.servers: set[str | None] = {None}
        self.seen: list[tuple[str, str | None]] = []
        self._failures: list[Exception] = []

    def add_account(self, username: str, password: str, server_url: str | None = None) -> None:
        self.servers.add(server_url)
        self._accounts[(username.lower(), server_url)] = password

    def fail_next(self, error: Exception) -> None:
        self._failures.append(error)

    def verify(self, username: str, password: str, server_url: str | None) -> PasswordAccount:
        self.seen.append((username, server_url))
        if self._failures:
            raise self._failures.pop(0)
        if server_url not in self.servers:
            raise ProviderNotFound("no CalDAV service there")
        if self._accounts.get((username.lower(), server_url)) != password:
            raise AuthRevoked()
        subject = f"{server_url or 'https://caldav.icloud.example'}/principals/{username.lower()}/"
        credential = json.dumps({"username": username, "password": password, "server": server_url})
        return PasswordAccount(AccountIdentity(subject, username.lower(), None), credential)
