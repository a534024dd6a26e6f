"""Google OAuth 2.0 for web-server apps, through google-auth and google-auth-oauthlib.

Nothing here knows whether it talks to Google or to the local emulator: only the
endpoints in :class:`crmsync.config.GoogleSettings` differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crmsync.config import GoogleSettings
from crmsync.errors import TokenExchangeFailed
from crmsync.ports.accounts import AccountIdentity, TokenGrant
from crmsync.ports.errors import AuthRevoked, ProviderError
from crmsync.providers.google.scopes import FEATURE_SCOPES, scopes_for

__all__ = ["GoogleCredential", "GoogleIdentity", "GoogleOAuth", "TokenGrant"]

#: The account a Google grant belongs to.
GoogleIdentity = AccountIdentity

log = logging.getLogger(__name__)


class GoogleOAuth:
    """Google's OAuth client behind the accounts port: authorization URL, code exchange,
    id_token verification; and refresh and revoke of a grant (:class:`GoogleCredential`)."""

    provider = "google"
    feature_scopes: Mapping[str, tuple[str, ...]] = FEATURE_SCOPES

    def __init__(
        self,
        settings: GoogleSettings,
        *,
        redirect_uri: str,
        client_secret: Callable[[], str],
    ) -> None:
        self._settings = settings
        self._redirect_uri = redirect_uri
        self._client_secret = client_secret

    def _flow(self, scopes: Sequence[str], code_verifier: str, with_secret: bool) -> Any:
        from google_auth_oauthlib.flow import Flow

        web: dict[str, Any] = {
            "client_id": self._settings.client_id,
            "auth_uri": self._settings.auth_uri,
            "token_uri": self._settings.token_uri,
            "redirect_uris": [self._redirect_uri],
        }
        if with_secret:
            web["client_secret"] = self._client_secret()
        return Flow.from_client_config(
            {"web": web},
            scopes=list(scopes),
            redirect_uri=self._redirect_uri,
            code_verifier=code_verifier,
            autogenerate_code_verifier=False,
        )

    def authorization_url(
        self, *, state: str, code_verifier: str, scopes: Sequence[str], login_hint: str | None
    ) -> str:
        """The consent URL: offline access, forced consent (so a refresh token always comes
        back), incremental scopes, PKCE S256."""
        extra: dict[str, str] = {}
        if login_hint:
            extra["login_hint"] = login_hint
        url, _ = self._flow(scopes, code_verifier, with_secret=False).authorization_url(
            state=state,
            access_type="offline",
            prompt="consent",
            include_granted_scopes="true",
            **extra,
        )
        return str(url)

    def exchange_code(self, *, code: str, code_verifier: str, scopes: Sequence[str]) -> TokenGrant:
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error
        from requests import RequestException

        flow = self._flow(scopes, code_verifier, with_secret=True)
        try:
            token = flow.fetch_token(code=code, timeout=self._settings.http_timeout_seconds)
        except OAuth2Error as exc:
            # exc.error is Google's error code (invalid_grant, invalid_client...); no secret.
            raise TokenExchangeFailed(
                f"Google refused the authorization code ({exc.error}).", retryable=False
            ) from None
        except RequestException as exc:
            raise TokenExchangeFailed(
                f"Google's token endpoint could not be reached ({type(exc).__name__}).",
                retryable=True,
            ) from None
        expires_at = token.get("expires_at")
        scope = token.get("scope") or []
        if isinstance(scope, str):
            scope = scope.split()
        return TokenGrant(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            id_token=token.get("id_token"),
            scopes=tuple(scope),
            expires_at=datetime.fromtimestamp(expires_at, UTC) if expires_at else None,
        )

    def scopes_for(self, features: Iterable[str]) -> list[str]:
        return scopes_for(features)

    def identity(self, grant: TokenGrant) -> AccountIdentity:
        if not grant.id_token:
            raise TokenExchangeFailed("Google returned no id_token.", retryable=False)
        return self.verify_id_token(grant.id_token)

    def verify_id_token(self, id_token: str) -> GoogleIdentity:
        """Signature (Google's published certificates), audience, expiry, issuer, verified email."""
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.oauth2 import id_token as google_id_token

        try:
            claims = google_id_token.verify_token(
                id_token,
                google.auth.transport.requests.Request(),
                audience=self._settings.client_id,
                certs_url=self._settings.certs_uri,
                clock_skew_in_seconds=10,
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise TokenExchangeFailed(f"The id_token did not verify ({type(exc).__name__}).", retryable=False) from None
        if claims.get("iss") not in self._settings.issuers:
            raise TokenExchangeFailed("The id_token has an unexpected issuer.", retryable=False)
        if not claims.get("sub") or not claims.get("email"):
            raise TokenExchangeFailed("The id_token names no account.", retryable=False)
        if claims.get("email_verified") is not True:
            raise TokenExchangeFailed("The account's email is not verified.", retryable=False)
        return GoogleIdentity(subject=str(claims["sub"]), email=claims["email"], name=claims.get("name"))

    def refresh(self, refresh_token: str) -> str:
        """A fresh access token. ``invalid_grant`` → :class:`AuthRevoked`."""
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.oauth2.credentials import Credentials

        credentials = Credentials(
            token=None,
            refresh_token=refresh_token,
            token_uri=self._settings.token_uri,
            client_id=self._settings.client_id,
            client_secret=self._client_secret(),
        )
        try:
            credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.RefreshError as exc:
            data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
            if data.get("error") == "invalid_grant":
                raise AuthRevoked() from None
            raise ProviderError(
                f"Google refused the token refresh ({data.get('error', 'unknown')}).",
                retryable=bool(getattr(exc, "retryable", False)),
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise ProviderError(
                f"Google's token endpoint could not be reached ({type(exc).__name__}).",
                retryable=True,
            ) from None
        return str(credentials.token)

    def revoke(self, token: str) -> None:
        """Revoke the grant. An already-revoked or unknown token counts as revoked."""
        import requests

        try:
            response = requests.post(
                self._settings.revoke_uri,
                data={"token": token},
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=self._settings.http_timeout_seconds,
            )
        except requests.RequestException as exc:
            raise ProviderError(
                f"Google's revoke endpoint could not be reached ({type(exc).__name__}).",
                retryable=True,
            ) from None
        if response.status_code == 200:
            return
        error = _oauth_error(response)
        if response.status_code == 400 and error in {"invalid_token", "invalid_grant"}:
            log.info("revoke: token already invalid at Google")
            return
        raise ProviderError(
            f"Google refused the revocation ({response.status_code} {error}).",
            retryable=response.status_code >= 500 or response.status_code == 429,
            status=response.status_code,
        )


class GoogleCredential:
    """One connection's refresh token behind the accounts port's credential."""

    def __init__(self, oauth: GoogleOAuth, refresh_token: str) -> None:
        self._oauth = oauth
        self._refresh_token = refresh_token

    def __repr__(self) -> str:
        return "GoogleCredential(<refresh token>)"

    def check(self) -> None:
        self._oauth.refresh(self._refresh_token)

    def revoke(self) -> None:
        self._oauth.revoke(self._refresh_token)


def _oauth_error(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return "unknown"
    return str(body.get("error", "unknown")) if isinstance(body, dict) else "unknown"
