"""The Microsoft identity platform's v2.0 endpoints, as an app registered for Graph sees them.

Paths are Microsoft's own under the authority's tenant segment (``common``, ``organizations``,
``consumers`` or a tenant id), so MSAL for Python pointed at ``{base_url}/common`` with
``instance_discovery=False`` cannot tell the difference. Sources, all on learn.microsoft.com:

- entra/identity-platform/v2-oauth2-auth-code-flow (authorize, token, errors, PKCE);
- entra/identity-platform/v2-protocols-oidc (metadata, the ``{tenantid}`` issuer of ``common``);
- entra/identity-platform/id-token-claims-reference (claims; consumers tenant id);
- entra/identity-platform/reference-error-codes (AADSTS codes);
- entra/identity-platform/refresh-tokens (lifetime; old refresh tokens are not revoked on use).

Where Microsoft documents no shape, the emulator's choice is marked "guess" in docs/MICROSOFT.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.microsoft.consent import render_admin_approval, render_consent, render_error, render_form_post
from devstack.microsoft.keys import SigningKeys, b64url
from devstack.microsoft.server import NO_STORE, Route, html_response, json_response, redirect_with_params
from devstack.microsoft.state import (
    ACCESS_TOKEN_LIFETIME_SECONDS,
    CONSUMERS_TENANT_ID,
    ID_TOKEN_LIFETIME_SECONDS,
    AccessToken,
    PendingAuthorization,
    State,
    User,
)

GRAPH_RESOURCE = "https://graph.microsoft.com/"
#: OpenID Connect scopes: not Graph permissions, never in an access token's scopes.
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
#: RFC 7636 §4.2: an S256 challenge is the unpadded base64url of a SHA-256 digest (43 characters).
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
#: RFC 7636 §4.1: verifiers are 43-128 unreserved characters.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def normalise_scopes(raw: str) -> list[str]:
    """Split a scope string, drop Graph's resource prefix (``https://graph.microsoft.com/``),
    keep the first spelling of each scope (Microsoft compares them case-insensitively)."""
    seen: dict[str, str] = {}
    for scope in raw.split():
        name = scope[len(GRAPH_RESOURCE) :] if scope.lower().startswith(GRAPH_RESOURCE) else scope
        seen.setdefault(name.lower(), name)
    return list(seen.values())


def resource_scopes(scopes: list[str]) -> list[str]:
    """The Graph permissions among ``scopes``."""
    return [s for s in scopes if s.lower() not in OIDC_SCOPES]


def has_scope(scopes: list[str], wanted: str) -> bool:
    """Case-insensitive membership, as Microsoft treats scope names."""
    return wanted.lower() in (s.lower() for s in scopes)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def pairwise_sub(user: User, client_id: str) -> str:
    """``sub`` is "a pairwise identifier: unique to a particular application ID"
    (id-token-claims-reference); derived here so it is stable per user and app."""
    return b64url(hashlib.sha256(f"{user.oid}:{client_id}".encode()).digest())


class IdentityService:
    """Metadata, keys, authorize (with its consent page), token, and the token lookup for Graph."""

    def __init__(self, state: State, keys: SigningKeys) -> None:
        self._state = state
        self._keys = keys
        #: ``https://host:port``; set by the emulator once its port is bound.
        self.base_url = ""

    def routes(self) -> list[Route]:
        """Microsoft's v2.0 paths under the tenant segment."""
        return [
            Route("/<tenant>/v2.0/.well-known/openid-configuration", ("GET",), self.metadata),
            Route("/<tenant>/discovery/v2.0/keys", ("GET",), self.keys),
            Route("/<tenant>/oauth2/v2.0/authorize", ("GET",), self.authorize),
            Route("/<tenant>/login", ("POST",), self.answer),
            Route("/<tenant>/oauth2/v2.0/token", ("POST",), self.token),
        ]

    # ------------------------------------------------------------------ for Graph

    def user_for_access_token(self, token: str) -> User | None:
        """The user a live access token was issued to; ``None`` when unknown or expired."""
        info = self._state.access_token_info(token)
        return None if info is None else info.user

    def token_info(self, token: str) -> AccessToken | None:
        """The live access token (user, client, scopes, expiry), or ``None``."""
        return self._state.access_token_info(token)

    # ------------------------------------------------------------------ addresses

    def issuer_for(self, tid: str) -> str:
        """A tenant's issuer: ``{instance}/{tid}/v2.0`` (id-token-claims-reference, ``iss``)."""
        return f"{self.base_url}/{tid}/v2.0"

    def metadata(self, request: Request, tenant: str) -> Response:
        """GET /{tenant}/v2.0/.well-known/openid-configuration.

        ``common`` and ``organizations`` publish the issuer with a literal ``{tenantid}`` (the
        signed-in user's tenant replaces it, v2-protocols-oidc); consumers and a tenant id
        publish their own."""
        if not self._state.known_tenant(tenant):
            return self._tenant_not_found(tenant)
        if tenant in ("common", "organizations"):
            issuer = f"{self.base_url}/{{tenantid}}/v2.0"
        elif tenant == "consumers":
            issuer = self.issuer_for(CONSUMERS_TENANT_ID)
        else:
            issuer = self.issuer_for(tenant)
        base = f"{self.base_url}/{tenant}"
        return json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": issuer,
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nbf",
                    "name",
                    "preferred_username",
                    "oid",
                    "tid",
                    "ver",
                    "nonce",
                    "email",
                ],
                "tenant_region_scope": None,
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    def keys(self, request: Request, tenant: str) -> Response:
        """GET /{tenant}/discovery/v2.0/keys: the JWK Set that verifies id_tokens."""
        if not self._state.known_tenant(tenant):
            return self._tenant_not_found(tenant)
        return json_response(self._keys.jwks(f"{self.base_url}/{{tenantid}}/v2.0"))

    # ------------------------------------------------------------------ errors

    def _aadsts(self, code: int, message: str) -> dict[str, Any]:
        """Microsoft's error members: the AADSTS line plus trace/correlation ids and time."""
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.fromtimestamp(self._state.now(), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error_description": (
                f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{self.base_url}/error?code={code}",
        }

    def _token_error(self, status: int, error: str, code: int, message: str) -> Response:
        return json_response({"error": error, **self._aadsts(code, message)}, status, NO_STORE)

    @staticmethod
    def _answer(redirect_uri: str, response_mode: str, params: dict[str, str | None]) -> Response:
        """Send ``params`` to the app: a 302 with a query (``query``), or a page that POSTs them
        (``form_post``: "executes a POST containing the code to your redirect URI",
        v2-oauth2-auth-code-flow, ``response_mode``)."""
        if response_mode == "form_post":
            fields = {k: v for k, v in params.items() if v is not None}
            return html_response(render_form_post(redirect_uri, fields))
        return redirect_with_params(redirect_uri, params)

    def _redirect_error(
        self, back: PendingAuthorization | tuple[str, str | None, str], error: str, code: int, message: str
    ) -> Response:
        if isinstance(back, PendingAuthorization):
            uri, state, mode = back.redirect_uri, back.state, back.response_mode
        else:
            uri, state, mode = back
        details = self._aadsts(code, message)
        params = {
            "error": error,
            "error_description": details["error_description"],
            "error_uri": details["error_uri"],
            "state": state,
        }
        return self._answer(uri, mode, params)

    @staticmethod
    def _error_page(code: int | None, message: str) -> Response:
        """``code`` None: the emulator's own error, with no Microsoft code to borrow."""
        # Errors shown instead of redirected come as a page with 200, as Azure AD documents
        # (learn.microsoft.com/en-us/previous-versions/azure/dn645544: "Authorization Endpoint Errors").
        return html_response(render_error("Emulator" if code is None else f"AADSTS{code}", message), 200)

    def _tenant_not_found(self, tenant: str) -> Response:
        details = self._aadsts(90002, f"Tenant '{tenant}' not found.")
        return json_response({"error": "invalid_tenant", **details}, 400)

    # ------------------------------------------------------------------ authorize

    def authorize(self, request: Request, tenant: str) -> Response:
        """GET /{tenant}/oauth2/v2.0/authorize: validate, then show the consent page.

        Until client and redirect URI are known good, errors are a page, never a redirect."""
        args = request.args
        if not self._state.known_tenant(tenant):
            return self._error_page(90002, f"Tenant '{tenant}' not found.")
        client_id = args.get("client_id", "")
        if not client_id:
            return self._error_page(900144, "The request body must contain the following parameter: 'client_id'.")
        client = self._state.clients.get(client_id)
        if client is None:
            return self._error_page(
                700016, f"Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            )
        redirect_uri = args.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return self._error_page(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
                f"configured for the application '{client_id}'.",
            )
        response_mode = args.get("response_mode", "query")
        back = (redirect_uri, args.get("state"), response_mode if response_mode == "form_post" else "query")
        if args.get("response_type") != "code":
            return self._redirect_error(
                back,
                "unsupported_response_type",
                700054,
                "response_type must be 'code' (the only flow the emulator serves).",
            )
        if response_mode not in ("query", "form_post"):
            return self._redirect_error(
                back, "invalid_request", 900144, "The emulator answers with response_mode query or form_post only."
            )
        challenge, method = args.get("code_challenge", ""), args.get("code_challenge_method", "")
        # Microsoft accepts plain and no PKCE from confidential clients; the emulator requires S256
        # because crmsync always sends it (issue 16) and a regression must not pass silently.
        if method != "S256" or not _S256_CHALLENGE.fullmatch(challenge):
            return self._redirect_error(
                back, "invalid_request", 501491, "code_challenge with code_challenge_method=S256 is required."
            )
        scopes = normalise_scopes(args.get("scope", ""))
        if not scopes:
            return self._redirect_error(
                back, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            )
        pending = self._state.new_pending(
            tenant=tenant,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=args.get("state"),
            nonce=args.get("nonce"),
            code_challenge=challenge,
            login_hint=args.get("login_hint"),
            response_mode=response_mode,
        )
        return self._consent_page(pending)

    def _users_for(self, tenant: str) -> list[User]:
        with self._state.lock:
            return [u for u in self._state.users.values() if self._state.user_allowed(tenant, u)]

    def _consent_page(self, pending: PendingAuthorization, error: str | None = None) -> Response:
        client = self._state.clients[pending.client_id]
        users = self._users_for(pending.tenant)
        return html_response(render_consent(pending, client, users, f"/{pending.tenant}/login", error))

    def answer(self, request: Request, tenant: str) -> Response:
        """POST /{tenant}/login: the consent page's Accept / Cancel, or "return to the app"."""
        form = request.form
        with self._state.lock:
            pending = self._state.pending.get(form.get("request_id", ""))
        if pending is None or pending.expires_at <= self._state.now() or pending.tenant != tenant:
            return self._error_page(None, "The sign-in request expired or is unknown. Start again from the app.")
        client = self._state.clients.get(pending.client_id)
        if client is None:
            return self._error_page(700016, f"Application with identifier '{pending.client_id}' was not found.")
        action = form.get("action", "")
        if action == "cancel":
            self._drop(pending)
            # MicrosoftDocs/azure-docs#114009 quotes this redirect after "Cancel".
            return self._redirect_error(pending, "access_denied", 65004, "User declined to consent to access the app.")
        user = self._state.users.get(form.get("account", "").strip().lower())
        if user is None or not self._state.user_allowed(tenant, user):
            return self._consent_page(pending, "Pick one of the accounts listed.")
        if action == "return" and user.admin_consent_required:
            self._drop(pending)
            # The consent_required + AADSTS65001 redirect is what apps report receiving after
            # "Return to the application without granting consent" (a guess on the exact pairing;
            # the message is troubleshoot-consent-issues' AADSTS65001 text).
            return self._redirect_error(
                pending,
                "consent_required",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{client.client_id}' named '{client.name}'. Send an interactive authorization request "
                "for this user and resource.",
            )
        if action != "accept":
            return self._consent_page(pending, "Choose Accept or Cancel.")
        if user.admin_consent_required:
            return html_response(render_admin_approval(pending, client, user, f"/{tenant}/login"))
        code = self._state.issue_code(pending, user)
        return self._answer(pending.redirect_uri, pending.response_mode, {"code": code.code, "state": pending.state})

    def _drop(self, pending: PendingAuthorization) -> None:
        with self._state.lock:
            self._state.pending.pop(pending.request_id, None)

    # ------------------------------------------------------------------ token

    def _client_credentials(self, request: Request) -> tuple[str, str]:
        """client_secret_post, or client_secret_basic (RFC 6749 §2.3.1)."""
        form = request.form
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, secret = client_id or basic_id, basic_secret
        return client_id, secret

    def token(self, request: Request, tenant: str) -> Response:
        """POST /{tenant}/oauth2/v2.0/token: authorization_code and refresh_token grants."""
        if not self._state.known_tenant(tenant):
            return self._tenant_not_found(tenant)
        client_id, secret = self._client_credentials(request)
        client = self._state.clients.get(client_id)
        if client is None:
            return self._token_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        if not secret:
            return self._token_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if not hmac.compare_digest(secret.encode(), client.secret.encode()):
            return self._token_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                f"is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        grant_type = request.form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._redeem_code(request, client_id)
        if grant_type == "refresh_token":
            return self._redeem_refresh(request, client_id)
        return self._token_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")

    def _redeem_code(self, request: Request, client_id: str) -> Response:
        form = request.form
        with self._state.lock:
            code = self._state.codes.get(form.get("code", ""))
            if code is None or code.client_id != client_id:
                return self._token_error(
                    400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid."
                )
            if code.redeemed:
                return self._token_error(
                    400,
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new "
                    "valid code or use an existing refresh token.",
                )
            if code.expires_at <= self._state.now():
                return self._token_error(
                    400,
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to "
                    "inactivity. Send a new interactive authorization request for this user "
                    "and resource.",
                )
            if form.get("redirect_uri", "") != code.redirect_uri:
                return self._token_error(
                    400,
                    "invalid_grant",
                    50011,
                    "The redirect URI specified in the request does not match the redirect "
                    "URI of the authorization request.",
                )
            verifier = form.get("code_verifier", "")
            if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), code.code_challenge):
                return self._token_error(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                )
            code.redeemed = True
            user = self._state.users[code.user_email]
        return self._issue(request, client_id, user, code.scopes, code.nonce)

    def _redeem_refresh(self, request: Request, client_id: str) -> Response:
        form = request.form
        with self._state.lock:
            token = self._state.refresh_tokens.get(form.get("refresh_token", ""))
            if token is None or token.client_id != client_id:
                return self._token_error(
                    400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
                )
            if token.revoked:
                return self._token_error(
                    400,
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth "
                    "token is needed. The user might have changed or reset their password.",
                )
            if not self._state.refresh_token_alive(token):
                return self._token_error(
                    400, "invalid_grant", 700082, "The refresh token has expired due to inactivity."
                )
            user = self._state.users[token.user_email]
        asked = normalise_scopes(form.get("scope", "")) or token.scopes
        missing = [s for s in resource_scopes(asked) if not has_scope(token.scopes, s)]
        if missing:
            return self._token_error(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{client_id}'. Send an interactive authorization request for this user and "
                "resource.",
            )
        granted_oidc = [s for s in token.scopes if s.lower() in OIDC_SCOPES]
        scopes = resource_scopes(asked) or resource_scopes(token.scopes)
        return self._issue(request, client_id, user, scopes + granted_oidc, None)

    def _issue(self, request: Request, client_id: str, user: User, scopes: list[str], nonce: str | None) -> Response:
        """The token answer: Bearer access token, refresh token with offline_access, id_token
        with openid, client_info when the client asked for it (MSAL sends ``client_info=1``)."""
        graph_scopes = resource_scopes(scopes)
        access = self._state.issue_access_token(client_id, user, graph_scopes)
        # Microsoft's responses list the granted permissions; OIDC scopes other than
        # offline_access are echoed too (a guess on the exact list).
        shown = graph_scopes + [s for s in scopes if s.lower() in ("openid", "profile", "email")]
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(shown),
            "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS - 1,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME_SECONDS - 1,
            "access_token": access.token,
        }
        if has_scope(scopes, "offline_access"):
            body["refresh_token"] = self._state.issue_refresh_token(client_id, user, scopes).token
        if has_scope(scopes, "openid"):
            body["id_token"] = self._id_token(client_id, user, scopes, nonce)
        if request.form.get("client_info") == "1":
            body["client_info"] = b64url(json.dumps({"uid": user.oid, "utid": user.tid}).encode())
        return json_response(body, 200, NO_STORE)

    def _id_token(self, client_id: str, user: User, scopes: list[str], nonce: str | None) -> str:
        now = int(self._state.now())
        claims: dict[str, Any] = {
            "ver": "2.0",
            "iss": self.issuer_for(user.tid),
            "sub": pairwise_sub(user, client_id),
            "aud": client_id,
            "exp": now + ID_TOKEN_LIFETIME_SECONDS,
            "iat": now,
            "nbf": now,
            "name": user.name,
            "preferred_username": user.email,
            "oid": user.oid,
            "tid": user.tid,
        }
        if has_scope(scopes, "email"):
            claims["email"] = user.email
        if nonce is not None:
            claims["nonce"] = nonce
        return self._keys.sign(claims)
