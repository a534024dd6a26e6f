"""Sign in with Microsoft: the accounts port on MSAL for Python (authorization code with
PKCE S256, confidential client).

Nothing here knows whether it talks to Microsoft or to the local emulator: only the
authority in :class:`crmsync.config.MicrosoftSettings` differs (and, for an authority that
is not one of Microsoft's hosts, MSAL is told not to ask Microsoft about it).

What a connection stores is MSAL's serialized token cache (the account, its refresh token,
its last access token), KMS-encrypted like Google's refresh tokens: MSAL refreshes from it
and the Graph adapter opens it the same way (:meth:`MicrosoftOAuth.application`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from crmsync.config import MicrosoftSettings
from crmsync.errors import TokenExchangeFailed
from crmsync.ports.accounts import AccountIdentity, TokenGrant
from crmsync.ports.errors import AuthRevoked, ProviderError

__all__ = ["FEATURE_SCOPES", "MicrosoftCredential", "MicrosoftOAuth", "MicrosoftTokens", "graph_scope_names"]

log = logging.getLogger(__name__)

#: Graph permissions per feature (delegated). Only calendars are offered for Microsoft.
FEATURE_SCOPES: Mapping[str, tuple[str, ...]] = {"calendar": ("Calendars.ReadWrite",)}
#: Always asked: a refresh token (offline_access) and the signed-in user's profile.
IDENTITY_SCOPES: tuple[str, ...] = ("offline_access", "User.Read")
#: MSAL adds these itself and refuses them in a scope list (``_decorate_scope``).
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
GRAPH_PREFIX = "https://graph.microsoft.com/"
#: Clock skew allowed on the id_token's ``exp`` / ``nbf``.
SKEW = timedelta(minutes=2)


def graph_scope_names(scopes: Iterable[str], wanted: Sequence[str]) -> tuple[str, ...]:
    """The granted scopes as we name them. Microsoft may answer Graph's with the resource
    prefix (``https://graph.microsoft.com/Calendars.ReadWrite``) and in another case than asked
    (a guess from v2-oauth2-auth-code-flow's example answer as remembered, not re-checked), so
    each is matched case-insensitively to the name we asked for; the emulator answers bare names."""
    canonical = {name.lower(): name for name in wanted}
    names: list[str] = []
    for scope in scopes:
        bare = scope[len(GRAPH_PREFIX) :] if scope.lower().startswith(GRAPH_PREFIX) else scope
        name = canonical.get(bare.lower(), bare)
        if name not in names:
            names.append(name)
    return tuple(names)


class MicrosoftOAuth:
    """Microsoft's OAuth client behind the accounts port: authorization URL, code exchange,
    id_token checks; and the refresh of a stored token cache (:class:`MicrosoftCredential`)."""

    provider = "microsoft"
    feature_scopes: Mapping[str, tuple[str, ...]] = FEATURE_SCOPES

    def __init__(
        self,
        settings: MicrosoftSettings,
        *,
        redirect_uri: str,
        client_secret: Callable[[], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._redirect_uri = redirect_uri
        self._client_secret = client_secret
        self._clock = clock
        host = urlsplit(settings.authority).hostname or ""
        from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

        #: Microsoft's own cloud: MSAL validates the authority with instance discovery. Any
        #: other host (the emulator) would make MSAL ask Microsoft about it: turned off.
        self._microsoft_host = host in WELL_KNOWN_AUTHORITY_HOSTS
        # MSAL's token cache logs every token request at DEBUG with the authorization code and
        # the PKCE verifier in clear (it masks refresh tokens and secrets, not those): that
        # logger never goes below INFO, whatever LOG_LEVEL says.
        logging.getLogger("msal.token_cache").setLevel(logging.INFO)
        #: MSAL's cache of the authority's metadata (OpenID configuration, instance discovery:
        #: a day), shared by every application built here, so opening a connection's token
        #: cache costs no request while its access token is valid (no tokens in it: msal docs).
        self._http_cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ MSAL
    def application(self, cache: Any = None) -> Any:
        """A ``msal.ConfidentialClientApplication`` on ``cache`` (a SerializableTokenCache).
        Building one reads the authority's OpenID metadata (a network call):
        ``ProviderError`` (retryable) when that fails."""
        import msal
        import requests

        try:
            return msal.ConfidentialClientApplication(
                self._settings.client_id,
                client_credential=self._client_secret(),
                authority=self._settings.authority,
                instance_discovery=self._microsoft_host,
                token_cache=cache,
                timeout=self._settings.http_timeout_seconds,
                http_cache=self._http_cache,
            )
        except (requests.RequestException, ValueError) as exc:
            raise ProviderError(
                f"Microsoft's sign-in metadata could not be read ({type(exc).__name__}).", retryable=True
            ) from None

    @staticmethod
    def _msal_scopes(scopes: Sequence[str]) -> list[str]:
        return [s for s in scopes if s not in RESERVED_SCOPES]

    # ------------------------------------------------------------------ the port
    def scopes_for(self, features: Iterable[str]) -> list[str]:
        scopes = list(IDENTITY_SCOPES)
        for feature in features:
            for scope in FEATURE_SCOPES.get(feature, ()):
                if scope not in scopes:
                    scopes.append(scope)
        return scopes

    def authorization_url(
        self, *, state: str, code_verifier: str, scopes: Sequence[str], login_hint: str | None
    ) -> str:
        """The consent URL with OUR state and PKCE S256 challenge (the state is stored single
        use and bound to the user by the integrations logic); ``prompt=select_account`` so a
        user with several accounts picks the one to connect.

        MSAL's ``initiate_auth_code_flow`` would make its own state and verifier; the older
        ``get_authorization_request_url`` takes our state (it is deprecated only in favour of
        the former) but drops any PKCE argument, so the challenge is appended to its URL."""
        app = self.application()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            url = app.get_authorization_request_url(
                self._msal_scopes(scopes),
                state=state,
                redirect_uri=self._redirect_uri,
                prompt="select_account",
                login_hint=login_hint or None,
            )
        pkce = urlencode({"code_challenge": pkce_challenge(code_verifier), "code_challenge_method": "S256"})
        return f"{url}{'&' if '?' in url else '?'}{pkce}"

    def exchange_code(self, *, code: str, code_verifier: str, scopes: Sequence[str]) -> TokenGrant:
        """Redeem the code with the verifier; the grant's ``credential`` is the token cache
        MSAL filled (what the connection stores)."""
        import msal
        import requests

        cache = msal.SerializableTokenCache()
        app = self.application(cache)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                result = app.acquire_token_by_authorization_code(
                    code,
                    self._msal_scopes(scopes),
                    redirect_uri=self._redirect_uri,
                    # MSAL sends ``data`` as token request fields (RFC 7636 §4.5).
                    data={"code_verifier": code_verifier},
                )
        except requests.RequestException as exc:
            raise TokenExchangeFailed(
                f"Microsoft's token endpoint could not be reached ({type(exc).__name__}).", retryable=True
            ) from None
        if "error" in result or "access_token" not in result:
            # error and the AADSTS number only: the description may quote the request.
            raise TokenExchangeFailed(
                f"Microsoft refused the authorization code ({_error_summary(result)}).", retryable=False
            ) from None
        expires_in = result.get("expires_in")
        granted = str(result.get("scope") or "").split()
        return TokenGrant(
            access_token=result["access_token"],
            refresh_token=result.get("refresh_token"),
            id_token=result.get("id_token"),
            scopes=graph_scope_names(granted, scopes),
            expires_at=self._clock() + timedelta(seconds=int(expires_in)) if expires_in else None,
            credential=cache.serialize(),
        )

    def identity(self, grant: TokenGrant) -> AccountIdentity:
        """The account of the id_token: subject ``{tid}.{oid}`` (the user's object id is
        stable and unique within its tenant; ``sub`` is pairwise per app and the email may
        change), so reconnecting updates the same connection.

        MSAL 1.38+ no longer validates id_tokens (AzureAD/microsoft-authentication-library-
        for-python#911): audience, issuer (``{authority host}/{tid}/v2.0``) and expiry are
        checked here. The signature is not: the token came straight from the token endpoint
        over TLS, which OpenID Connect Core §3.1.3.7 (6) allows in place of it."""
        import jwt

        if not grant.id_token:
            raise TokenExchangeFailed("Microsoft returned no id_token.", retryable=False)
        try:
            claims = jwt.decode(grant.id_token, options={"verify_signature": False, "verify_exp": False})
        except jwt.PyJWTError as exc:
            raise TokenExchangeFailed(f"The id_token is malformed ({type(exc).__name__}).", retryable=False) from None
        if claims.get("aud") != self._settings.client_id:
            raise TokenExchangeFailed("The id_token is for another application.", retryable=False)
        tid, oid = claims.get("tid"), claims.get("oid")
        if not tid or not oid:
            raise TokenExchangeFailed("The id_token names no account.", retryable=False)
        if claims.get("iss") not in self._issuers(str(tid)):
            raise TokenExchangeFailed("The id_token has an unexpected issuer.", retryable=False)
        now = self._clock().timestamp()
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now - SKEW.total_seconds():
            raise TokenExchangeFailed("The id_token has expired.", retryable=False)
        email = claims.get("preferred_username") or claims.get("email")
        if not email or "@" not in str(email):
            raise TokenExchangeFailed("The id_token names no email address.", retryable=False)
        return AccountIdentity(subject=f"{tid}.{oid}", email=str(email), name=claims.get("name"))

    def _issuers(self, tid: str) -> set[str]:
        """Microsoft's issuer is ``https://login.microsoftonline.com/{tid}/v2.0`` whichever of
        its hosts the authority names (id-token-claims-reference); elsewhere (the emulator),
        the authority's own origin."""
        parts = urlsplit(self._settings.authority)
        issuers = {f"{parts.scheme}://{parts.netloc}/{tid}/v2.0"}
        if self._microsoft_host:
            issuers.add(f"https://login.microsoftonline.com/{tid}/v2.0")
        return issuers

    def refresh(self, token_cache: str, scopes: Sequence[str]) -> tuple[str, str]:
        """A fresh access token from the cache's refresh token (forced past any cached access
        token, so it proves the grant still stands), and the cache as MSAL left it (the new
        refresh token in it: Microsoft's replace themselves on every use and each lives 90
        days, refresh-tokens). No account or refresh token in the cache, or ``invalid_grant``
        → :class:`AuthRevoked`."""
        cache, app = self.open_cache(token_cache)
        return self.access_token(app, scopes, force_refresh=True), cache.serialize()

    def open_cache(self, token_cache: str) -> tuple[Any, Any]:
        """The stored cache deserialized, and a MSAL application on it (``AuthRevoked`` when
        the cache cannot be read)."""
        import msal

        cache = msal.SerializableTokenCache()
        try:
            cache.deserialize(token_cache)
        except ValueError:
            raise AuthRevoked() from None
        return cache, self.application(cache)

    def access_token(self, app: Any, scopes: Sequence[str], *, force_refresh: bool = False) -> str:
        """MSAL's ``acquire_token_silent``: the cached access token while it is valid (no
        request), else one redeemed with the cache's refresh token. No account in the cache,
        ``invalid_grant``, ``interaction_required`` or ``consent_required`` → :class:`AuthRevoked`;
        an unreachable token endpoint → a retryable ``ProviderError``."""
        import requests

        accounts = app.get_accounts()
        if not accounts:
            raise AuthRevoked()
        try:
            result = app.acquire_token_silent_with_error(
                self._msal_scopes(scopes) or ["User.Read"], accounts[0], force_refresh=force_refresh
            )
        except requests.RequestException as exc:
            raise ProviderError(
                f"Microsoft's token endpoint could not be reached ({type(exc).__name__}).", retryable=True
            ) from None
        if result is None:
            raise AuthRevoked()
        if "access_token" in result:
            return str(result["access_token"])
        if result.get("error") in {"invalid_grant", "interaction_required", "consent_required"}:
            log.info("microsoft refresh refused", extra={"error": _error_summary(result)})
            raise AuthRevoked()
        raise ProviderError(
            f"Microsoft refused the token refresh ({_error_summary(result)}).",
            retryable=result.get("error") in {"temporarily_unavailable", "server_error"},
        )


class MicrosoftTokens:
    """The access tokens of one connection's Graph calls, from its stored token cache: what
    ``GraphCalendar`` asks before every request.

    MSAL answers from the cache while its access token is valid (no request); once it has
    expired MSAL redeems the refresh token, and Microsoft answers with a new refresh token
    that replaces the old one (refresh-tokens). The cache then changed: ``renewed`` gets it
    serialized, to be stored instead of the one the connection holds, or the next sync would
    start again from an older refresh token (still valid until its own 90 days end, but the
    newest is what keeps the grant alive)."""

    def __init__(
        self,
        oauth: MicrosoftOAuth,
        token_cache: str,
        scopes: Sequence[str],
        renewed: Callable[[str], None],
    ) -> None:
        self._oauth = oauth
        self._token_cache = token_cache
        self._scopes = tuple(scopes)
        self._renewed = renewed
        self._opened: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return "MicrosoftTokens(<token cache>)"

    def __call__(self) -> str:
        # The application is built on first use (its authority metadata is a request, cached
        # by MicrosoftOAuth for a day), once per opened connection.
        if self._opened is None:
            self._opened = self._oauth.open_cache(self._token_cache)
        cache, app = self._opened
        token = self._oauth.access_token(app, self._scopes)
        if cache.has_state_changed:
            cache.has_state_changed = False
            self._renewed(cache.serialize())
        return token


class MicrosoftCredential:
    """One connection's token cache behind the accounts port's credential."""

    def __init__(self, oauth: MicrosoftOAuth, token_cache: str, scopes: Sequence[str]) -> None:
        self._oauth = oauth
        self._token_cache = token_cache
        self._scopes = tuple(scopes)

    def __repr__(self) -> str:
        return "MicrosoftCredential(<token cache>)"

    def check(self) -> str:
        """Refresh; the cache to store instead (with the refresh token that replaced ours)."""
        _, renewed = self._oauth.refresh(self._token_cache, self._scopes)
        self._token_cache = renewed
        return renewed

    def revoke(self) -> None:
        """Nothing to call: Microsoft has no per-app token revocation (a user removes an
        app's consent at myapps / account.live.com; ``revokeSignInSessions`` ends every app's).
        Disconnecting deletes the stored tokens, which is what ends our access."""


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _error_summary(result: Mapping[str, Any]) -> str:
    error = str(result.get("error", "unknown"))[:64]
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes:
        return f"{error}, AADSTS{codes[0]}"
    return error
