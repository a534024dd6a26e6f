"""Google's OAuth 2.0 / OpenID Connect endpoints for web-server applications.

Paths are Google's own, so product code configured with the emulator's base URL
instead of ``accounts.google.com`` / ``oauth2.googleapis.com`` / ``www.googleapis.com``
cannot tell the difference. Error bodies and statuses follow what Google returns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import unquote_plus

from werkzeug.wrappers import Request, Response

from devstack.google import scopes as scope_names
from devstack.google.consent import APPROVE_PATH, render_consent, render_error
from devstack.google.responses import (
    NO_STORE,
    html_response,
    json_response,
    oauth_error,
    redirect_with_params,
)
from devstack.google.server import EmulatorContext, Route
from devstack.google.state import (
    ACCESS_TOKEN_LIFETIME_SECONDS,
    CODE_LIFETIME_SECONDS,
    ID_TOKEN_LIFETIME_SECONDS,
    AccessToken,
    Account,
    AuthorizationCode,
    Client,
    PendingAuthorization,
    RefreshToken,
    TokenKind,
    new_code,
)

AUTH_PATH = "/o/oauth2/v2/auth"
TOKEN_PATH = "/token"
REVOKE_PATH = "/revoke"
USERINFO_PATH = "/v1/userinfo"
CERTS_PATH = "/oauth2/v1/certs"
JWKS_PATH = "/oauth2/v3/certs"
#: Google's certificate endpoints tell clients to keep the keys for hours (the header's shape
#: as Google sends it; the key is rotated only when the emulator restarts).
CERTS_CACHE_CONTROL = {"Cache-Control": "public, max-age=21600, must-revalidate, no-transform"}
DISCOVERY_PATH = "/.well-known/openid-configuration"

# RFC 7636 §4.1/§4.2: verifiers and challenges are 43-128 unreserved characters.
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_PROMPTS = frozenset({"none", "consent", "select_account"})
_REVOKED_REFRESH = "Token has been expired or revoked."


def endpoint_urls(base_url: str) -> dict[str, str]:
    """The emulator's counterparts of Google's OAuth endpoint URLs."""
    return {
        "auth_uri": base_url + AUTH_PATH,
        "token_uri": base_url + TOKEN_PATH,
        "revoke_uri": base_url + REVOKE_PATH,
        "userinfo_uri": base_url + USERINFO_PATH,
        "certs_uri": base_url + CERTS_PATH,
        "jwks_uri": base_url + JWKS_PATH,
        "issuer": base_url,
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the access token."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def pkce_matches(verifier: str, challenge: str, method: str | None) -> bool:
    """Check a code_verifier against the code_challenge of the authorization request."""
    if not _PKCE_VALUE.fullmatch(verifier):
        return False
    if method == "S256":
        expected = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        return hmac.compare_digest(expected, challenge)
    return hmac.compare_digest(verifier, challenge)


def _error_page(status: int, error: str, detail: str) -> Response:
    return html_response(render_error(status, error, detail), status)


def _grant_error(description: str = "Bad Request") -> Response:
    return oauth_error(400, "invalid_grant", description)


class OAuthService:
    """Authorization, token, revocation, userinfo, certificate and discovery endpoints."""

    def __init__(self, ctx: EmulatorContext) -> None:
        self._ctx = ctx
        self._state = ctx.state

    def routes(self) -> list[Route]:
        """Google's paths, plus the legacy ones still found in downloaded client_secrets.json."""
        return [
            Route(AUTH_PATH, ("GET",), self.authorize),
            Route("/o/oauth2/auth", ("GET",), self.authorize),
            Route(APPROVE_PATH, ("POST",), self.approve),
            Route(TOKEN_PATH, ("POST",), self.token),
            Route("/o/oauth2/token", ("POST",), self.token),
            Route(REVOKE_PATH, ("GET", "POST"), self.revoke),
            Route("/o/oauth2/revoke", ("GET", "POST"), self.revoke),
            Route(USERINFO_PATH, ("GET", "POST"), self.userinfo),
            Route("/oauth2/v3/userinfo", ("GET", "POST"), self.userinfo),
            Route(CERTS_PATH, ("GET",), self.v1_certs),
            Route(JWKS_PATH, ("GET",), self.jwks),
            Route(DISCOVERY_PATH, ("GET",), self.discovery),
        ]

    # ------------------------------------------------------------------ authorization

    def authorize(self, request: Request) -> Response:
        """GET /o/oauth2/v2/auth: validate the request, then show the account chooser."""
        args = request.args
        client_id = args.get("client_id", "")
        if not client_id:
            return _error_page(400, "invalid_request", "Missing required parameter: client_id")
        client = self._state.clients.get(client_id)
        if client is None:
            return _error_page(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = args.get("redirect_uri", "")
        if not redirect_uri:
            return _error_page(400, "invalid_request", "Missing required parameter: redirect_uri")
        # Until the redirect URI is known to be the client's, errors must not redirect to it.
        if redirect_uri not in client.redirect_uris:
            return _error_page(
                400,
                "redirect_uri_mismatch",
                "You can't sign in to this app because it doesn't comply with Google's "
                "OAuth 2.0 policy. The redirect_uri is not registered for this client.",
            )
        state = args.get("state")

        def fail(error: str, description: str) -> Response:
            return redirect_with_params(
                redirect_uri, {"error": error, "error_description": description, "state": state}
            )

        response_type = args.get("response_type", "")
        if not response_type:
            return fail("invalid_request", "Missing required parameter: response_type")
        if response_type != "code":
            return fail("unsupported_response_type", f"Invalid response_type: {response_type}")
        requested = scope_names.parse(args.get("scope"))
        if not requested:
            return fail("invalid_request", "Missing required parameter: scope")
        challenge = args.get("code_challenge") or None
        method = args.get("code_challenge_method") or None
        if challenge is not None:
            method = method or "plain"  # RFC 7636 §4.3 default
            if method not in ("S256", "plain"):
                return fail("invalid_request", "Invalid code_challenge_method")
            if not _PKCE_VALUE.fullmatch(challenge):
                return fail("invalid_request", "Invalid code_challenge")
        else:
            method = None
        access_type = args.get("access_type", "online")
        if access_type not in ("online", "offline"):
            return fail("invalid_request", f"Invalid access_type: {access_type}")
        prompt = tuple(args.get("prompt", "").split())
        if any(p not in _PROMPTS for p in prompt) or ("none" in prompt and len(prompt) > 1):
            return fail("invalid_request", "Invalid prompt")
        if "none" in prompt:
            # The emulator always needs the user to pick an account.
            return fail("interaction_required", "User interaction is required")

        pending = PendingAuthorization(
            request_id=secrets.token_urlsafe(24),
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scopes=requested,
            state=state,
            code_challenge=challenge,
            code_challenge_method=method,
            access_type=access_type,
            prompt=prompt,
            nonce=args.get("nonce") or None,
            include_granted_scopes=args.get("include_granted_scopes", "").lower() == "true",
            login_hint=args.get("login_hint") or None,
        )
        with self._state.lock:
            self._state.pending[pending.request_id] = pending
            accounts = list(self._state.accounts_by_email.values())
        return html_response(render_consent(pending, client, accounts))

    def approve(self, request: Request) -> Response:
        """POST /o/oauth2/v2/auth/approve: the user picked an account (or cancelled)."""
        form = request.form
        with self._state.lock:
            pending = self._state.pending.get(form.get("request_id", ""))
            if pending is None:
                return _error_page(
                    400,
                    "invalid_request",
                    "This sign-in request is unknown or already completed. Start again from the app.",
                )
            client = self._state.clients.get(pending.client_id)
            if client is None:
                return _error_page(401, "invalid_client", "The OAuth client was not found.")
            if form.get("action") == "cancel":
                del self._state.pending[pending.request_id]
                return redirect_with_params(pending.redirect_uri, {"error": "access_denied", "state": pending.state})
            email = form.get("account") or form.get("email") or ""
            try:
                # Typing an unknown address is "signing in to another account".
                account = self._state.add_account(email)
            except ValueError:
                accounts = list(self._state.accounts_by_email.values())
                page = render_consent(pending, client, accounts, error="Enter a valid email address.")
                return html_response(page, 400)
            code = self._issue_code(pending, account, _chosen_scopes(pending, form))
            del self._state.pending[pending.request_id]
        return redirect_with_params(
            pending.redirect_uri,
            {
                "state": pending.state,
                "code": code.value,
                "scope": scope_names.join(code.scopes),
                "authuser": "0",
                "prompt": "consent",
            },
        )

    def _issue_code(
        self, pending: PendingAuthorization, account: Account, chosen: tuple[str, ...]
    ) -> AuthorizationCode:
        grant = self._state.grant(account.sub, pending.client_id)
        live_grant = grant if grant is not None and not grant.revoked and grant.consented else None
        granted = chosen
        if pending.include_granted_scopes and live_grant is not None:
            granted = scope_names.merge(chosen, live_grant.scopes)
        # Google hands out a refresh token on the first consent, or when consent is forced.
        issue_refresh = pending.access_type == "offline" and ("consent" in pending.prompt or live_grant is None)
        self._state.record_consent(account.sub, pending.client_id, granted)
        code = AuthorizationCode(
            value=new_code(),
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            sub=account.sub,
            scopes=granted,
            code_challenge=pending.code_challenge,
            code_challenge_method=pending.code_challenge_method,
            access_type=pending.access_type,
            prompt=pending.prompt,
            nonce=pending.nonce,
            issue_refresh_token=issue_refresh,
            expires_at=self._state.now() + CODE_LIFETIME_SECONDS,
        )
        self._state.issue_code(code)
        return code

    # ------------------------------------------------------------------ token endpoint

    def token(self, request: Request) -> Response:
        """POST /token: authorization_code and refresh_token grants."""
        client = self._authenticate_client(request)
        if isinstance(client, Response):
            return client
        grant_type = request.form.get("grant_type", "")
        if self._ctx.calls is not None:  # counted like an API method (bench/cost.py)
            self._ctx.calls.record("oauth2.token", "", {"grant_type": grant_type})
        if grant_type == "authorization_code":
            return self._exchange_code(request, client)
        if grant_type == "refresh_token":
            return self._refresh(request, client)
        return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _authenticate_client(self, request: Request) -> Client | Response:
        """client_secret_basic or client_secret_post, as Google accepts both."""
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            raw_id, raw_secret = auth.username or "", auth.password or ""
            # RFC 6749 §2.3.1 form-encodes Basic credentials; `requests` does not. Accept both.
            candidates = [(raw_id, raw_secret), (unquote_plus(raw_id), unquote_plus(raw_secret))]
        else:
            candidates = [(request.form.get("client_id", ""), request.form.get("client_secret", ""))]
        if not candidates[0][0]:
            return oauth_error(400, "invalid_request", "Could not determine client ID from request.")
        for client_id, secret in candidates:
            client = self._state.clients.get(client_id)
            if client is not None and hmac.compare_digest(secret.encode("utf-8"), client.client_secret.encode("utf-8")):
                return client
        return oauth_error(401, "invalid_client", "Unauthorized")

    def _exchange_code(self, request: Request, client: Client) -> Response:
        form = request.form
        value = form.get("code", "")
        if not value:
            return oauth_error(400, "invalid_request", "Missing required parameter: code")
        with self._state.lock:
            code = self._state.codes.get(value)
            if code is None or code.client_id != client.client_id:
                return _grant_error()
            if code.used:
                # RFC 6749 §10.5: a replayed code means it leaked; kill what it produced.
                self._state.revoke_code_tokens(code)
                return _grant_error()
            if code.revoked or self._state.now() >= code.expires_at:
                return _grant_error()
            redirect_uri = form.get("redirect_uri", "")
            if not redirect_uri:
                return oauth_error(400, "invalid_request", "Missing parameter: redirect_uri")
            if redirect_uri != code.redirect_uri:
                return _grant_error()
            verifier = form.get("code_verifier") or None
            if code.code_challenge is not None:
                if verifier is None:
                    return _grant_error("Missing code verifier.")
                if not pkce_matches(verifier, code.code_challenge, code.code_challenge_method):
                    return _grant_error("Invalid code verifier.")
            elif verifier is not None:
                return oauth_error(400, "invalid_request", "code_verifier or verifier is not needed.")

            code.used = True
            access = self._state.issue_access_token(code.sub, client.client_id, code.scopes)
            code.access_tokens.append(access.value)
            refresh_token = None
            if code.issue_refresh_token:
                refresh = self._state.issue_refresh_token(code.sub, client.client_id, code.scopes)
                code.refresh_token = refresh_token = refresh.value
            return self._token_response(access, refresh_token, code.nonce)

    def _refresh(self, request: Request, client: Client) -> Response:
        form = request.form
        value = form.get("refresh_token", "")
        if not value:
            return oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        with self._state.lock:
            refresh = self._state.live_refresh_token(value)
            if refresh is None:
                return _grant_error(_REVOKED_REFRESH)
            if refresh.client_id != client.client_id:
                return oauth_error(401, "unauthorized_client", "Unauthorized")
            requested = scope_names.parse(form.get("scope"))
            extra = [s for s in requested if s not in refresh.scopes]
            if extra:
                return oauth_error(
                    400,
                    "invalid_scope",
                    f"Some requested scopes were invalid. {{invalid=[{', '.join(extra)}]}}",
                )
            access = self._state.issue_access_token(
                refresh.sub, client.client_id, requested or refresh.scopes, refresh_token=refresh.value
            )
            return self._token_response(access, None, None)

    def _token_response(self, access: AccessToken, refresh_token: str | None, nonce: str | None) -> Response:
        body: dict[str, Any] = {
            "access_token": access.value,
            "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS,
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        body["scope"] = scope_names.join(access.scopes)
        body["token_type"] = "Bearer"
        if scope_names.OPENID in access.scopes:
            account = self._state.account_by_sub(access.sub)
            body["id_token"] = self._id_token(account, access, nonce)
        return json_response(body, 200, NO_STORE)

    def _id_token(self, account: Account, access: AccessToken, nonce: str | None) -> str:
        issued_at = int(self._state.now())
        claims: dict[str, Any] = {
            "iss": self._ctx.issuer,
            "azp": access.client_id,
            "aud": access.client_id,
            "sub": account.sub,
            "email": account.email,
            "email_verified": True,
            "at_hash": at_hash(access.value),
            "iat": issued_at,
            "exp": issued_at + ID_TOKEN_LIFETIME_SECONDS,
        }
        claims.update(_profile_claims(account, access.scopes))
        if nonce is not None:
            claims["nonce"] = nonce
        token = self._ctx.keys.sign(claims)
        self._state.record_id_token(token)
        return token

    # ------------------------------------------------------------------ revocation, userinfo

    def revoke(self, request: Request) -> Response:
        """POST /revoke?token=...: revoking any token of a grant revokes the whole grant."""
        value = request.args.get("token") or request.form.get("token") or ""
        if not value:
            return oauth_error(400, "invalid_request", "Bad Request")
        with self._state.lock:
            kind: TokenKind
            token: RefreshToken | AccessToken | None = self._state.live_refresh_token(value)
            if token is not None:
                kind = "refresh_token"
            else:
                token = self._state.live_access_token(value)
                if token is None:
                    # Unknown, expired and already-revoked tokens all look alike to Google.
                    return oauth_error(400, "invalid_token", "Bad Request")
                kind = "access_token"
            self._state.revoke_grant(token.sub, token.client_id)
            self._state.record_revocation(kind, token.sub, token.client_id)
        return json_response({})

    def userinfo(self, request: Request) -> Response:
        """GET /v1/userinfo (OpenID Connect userinfo) for a live bearer access token."""
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        value = credentials.strip() if scheme.lower() == "bearer" else request.args.get("access_token", "")
        token = self._state.live_access_token(value) if value else None
        if token is None:
            return json_response(
                {"error": "invalid_request", "error_description": "Invalid Credentials"},
                401,
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
            )
        account = self._state.account_by_sub(token.sub)
        info = {"sub": account.sub, "email": account.email, "email_verified": True}
        return json_response({**info, **_profile_claims(account, token.scopes)})

    # ------------------------------------------------------------------ keys and discovery

    def v1_certs(self, request: Request) -> Response:
        """GET /oauth2/v1/certs: ``{kid: PEM x509 certificate}``, cacheable as Google's are."""
        return json_response(self._ctx.keys.v1_certs(), headers=CERTS_CACHE_CONTROL)

    def jwks(self, request: Request) -> Response:
        """GET /oauth2/v3/certs: the JWK Set, cacheable as Google's is."""
        return json_response(self._ctx.keys.jwks(), headers=CERTS_CACHE_CONTROL)

    def discovery(self, request: Request) -> Response:
        """GET /.well-known/openid-configuration."""
        urls = endpoint_urls(self._ctx.base_url)
        return json_response(
            {
                "issuer": urls["issuer"],
                "authorization_endpoint": urls["auth_uri"],
                "token_endpoint": urls["token_uri"],
                "userinfo_endpoint": urls["userinfo_uri"],
                "revocation_endpoint": urls["revoke_uri"],
                "jwks_uri": urls["jwks_uri"],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "claims_supported": [
                    "aud",
                    "email",
                    "email_verified",
                    "exp",
                    "iat",
                    "iss",
                    "name",
                    "sub",
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )


def _profile_claims(account: Account, scopes: tuple[str, ...]) -> dict[str, Any]:
    """The name is the ``profile`` scope's to give (OpenID Connect Core §5.4): asked for
    ``openid email`` only, Google's id_token and userinfo carry no ``name``."""
    return {"name": account.name} if scope_names.USERINFO_PROFILE in scopes else {}


def _chosen_scopes(pending: PendingAuthorization, form: Any) -> tuple[str, ...]:
    """The requested scopes the person left ticked (granular consent). A post from the account
    chooser carries ``granular``; one without it (typed email, scripted helpers) grants all."""
    if form.get("granular") != "1":
        return pending.scopes
    ticked = set(form.getlist("scope"))
    return tuple(s for s in pending.scopes if s in scope_names.IDENTITY or s in ticked)
