"""What the port contract suites share: the Google adapters built as production builds
them, pointed at the emulator, for a fresh emulator account of the test's own."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from crmsync.config import GoogleSettings
from crmsync.providers.google.oauth import GoogleOAuth
from devstack.google import GoogleEmulator
from tests.support.google_consent import consent, query
from tests.support.google_user import GoogleCalendarUser

CLIENT_ID = "1234567890-ports.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-ports-secret"
# Nothing listens there: the consent helper reads the redirect's Location.
REDIRECT_URI = "http://127.0.0.1:9/v1/integrations/google/callback"


def google_settings(emulator: GoogleEmulator) -> GoogleSettings:
    endpoints = emulator.endpoints
    return GoogleSettings(
        client_id=CLIENT_ID,
        client_secret_arn="unused-by-these-tests",
        auth_uri=endpoints["auth_uri"],
        token_uri=endpoints["token_uri"],
        revoke_uri=endpoints["revoke_uri"],
        certs_uri=endpoints["certs_uri"],
        issuers=(emulator.issuer,),
        api_root=emulator.base_url,
    )


@dataclass
class GoogleAccount:
    """A fresh emulator account, connected through the production OAuth client."""

    user: GoogleCalendarUser
    settings: GoogleSettings
    oauth: GoogleOAuth
    refresh_token: str


def connect_google_account(emulator: GoogleEmulator, features: tuple[str, ...] = ("calendar",)) -> GoogleAccount:
    """Register the test client (idempotent), make an account and go through consent and
    the code exchange as the product does; needs ``OAUTHLIB_INSECURE_TRANSPORT`` (plain
    http on loopback)."""
    emulator.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    user = GoogleCalendarUser.new(emulator.base_url, "port")
    settings = google_settings(emulator)
    oauth = GoogleOAuth(settings, redirect_uri=REDIRECT_URI, client_secret=lambda: CLIENT_SECRET)
    scopes = oauth.scopes_for(features)
    verifier = secrets.token_urlsafe(48)
    url = oauth.authorization_url(
        state=secrets.token_urlsafe(16), code_verifier=verifier, scopes=scopes, login_hint=None
    )
    params = query(consent(url, user.email))
    grant = oauth.exchange_code(code=params["code"], code_verifier=verifier, scopes=scopes)
    assert grant.refresh_token, "offline access with forced consent returns a refresh token"
    return GoogleAccount(user, settings, oauth, grant.refresh_token)
