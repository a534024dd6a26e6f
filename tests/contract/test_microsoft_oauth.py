"""Contract tests of "Sign in with Microsoft" (crmsync.providers.microsoft.oauth) against the
Microsoft emulator, through MSAL for Python as in production: the emulator's CA reaches MSAL
only through ``REQUESTS_CA_BUNDLE`` (docs/MICROSOFT.md), so the adapter passes no ``verify=``.

Microsoft's rules are cited from learn.microsoft.com (identity platform, v2.0 endpoints)
unless a URL says otherwise; guesses say so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from crmsync.config import MicrosoftSettings
from crmsync.errors import TokenExchangeFailed
from crmsync.ports.accounts import TokenGrant
from crmsync.ports.errors import AuthRevoked
from crmsync.providers.microsoft.oauth import MicrosoftCredential, MicrosoftOAuth, MicrosoftTokens, graph_scope_names
from crmsync.security.secrets import new_pkce_verifier, new_secret
from devstack.microsoft.emulator import MicrosoftEmulator
from tests.support import clock
from tests.support.microsoft_consent import consent

pytestmark = pytest.mark.integration

CLIENT_ID = "5b6c7d8e-1f2a-4b3c-9d4e-0a1b2c3d4e5f"
CLIENT_SECRET = "adapter-test-secret~value"
# Nothing listens there: the tests read the redirect's Location instead of following it.
REDIRECT_URI = "http://127.0.0.1:9/oauth/microsoft/callback"
ADA = "ada@contoso.test"
GRACE = "grace@outlook.test"
LINUS = "linus@fabrikam.test"


@pytest.fixture(scope="module")
def emulator() -> Iterator[MicrosoftEmulator]:
    with MicrosoftEmulator(host="127.0.0.1", port=0) as emu:
        yield emu


@pytest.fixture
def emu(emulator: MicrosoftEmulator, monkeypatch: pytest.MonkeyPatch) -> MicrosoftEmulator:
    """Reset, the test app registered, the demo users; and the process trusting the emulator
    as the local stack's functions do (REQUESTS_CA_BUNDLE = the trust bundle, no CURL_CA_BUNDLE)."""
    emulator.reset()
    emulator.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], "crmsync (test)")
    emulator.seed_demo_users()
    bundle = str(emulator.trust_bundle)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    return emulator


@pytest.fixture
def oauth(emu: MicrosoftEmulator) -> MicrosoftOAuth:
    settings = MicrosoftSettings(client_id=CLIENT_ID, client_secret_arn="unused", authority=emu.authority("common"))
    return MicrosoftOAuth(settings, redirect_uri=REDIRECT_URI, client_secret=lambda: CLIENT_SECRET, clock=clock.now)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _sign_in(oauth: MicrosoftOAuth, email: str = ADA, **kwargs: Any) -> tuple[dict[str, str], str, list[str]]:
    """authorization_url → the consent page → the callback's query; also the verifier and scopes."""
    state, verifier = new_secret(), new_pkce_verifier()
    scopes = oauth.scopes_for(["calendar"])
    url = oauth.authorization_url(state=state, code_verifier=verifier, scopes=scopes, login_hint=None)
    query = _query(consent(url, email, **kwargs))
    assert query.get("state") == state
    return query, verifier, scopes


def _grant(oauth: MicrosoftOAuth, email: str = ADA) -> tuple[TokenGrant, list[str]]:
    query, verifier, scopes = _sign_in(oauth, email)
    return oauth.exchange_code(code=query["code"], code_verifier=verifier, scopes=scopes), scopes


def _user(emu: MicrosoftEmulator, email: str) -> dict[str, Any]:
    return next(u for u in emu.seed_demo_users() if u["email"] == email)


def test_the_authorization_url_carries_our_state_and_an_s256_challenge_of_our_verifier(
    emu: MicrosoftEmulator, oauth: MicrosoftOAuth
) -> None:
    """v2-oauth2-auth-code-flow ("Request an authorization code"): ``state`` comes back
    unchanged, ``code_challenge`` is BASE64URL(SHA256(verifier)) with method S256 (RFC 7636
    §4.2); ``offline_access`` for a refresh token, ``openid profile`` (MSAL adds them) for the
    id_token. The state and verifier are ours: the integrations logic stores them single use."""
    verifier = new_pkce_verifier()
    scopes = oauth.scopes_for(["calendar"])
    url = oauth.authorization_url(state="our-state", code_verifier=verifier, scopes=scopes, login_hint=ADA)
    assert url.startswith(emu.endpoints["authorize"] + "?")
    query = _query(url)
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["state"] == "our-state"
    assert query["code_challenge"] == expected
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["client_id"] == CLIENT_ID
    assert query["login_hint"] == ADA
    assert set(query["scope"].split()) == {"openid", "profile", "offline_access", "User.Read", "Calendars.ReadWrite"}
    assert verifier not in url


def test_a_work_account_connects_with_a_token_cache_and_its_tenant_and_object_id(
    emu: MicrosoftEmulator, oauth: MicrosoftOAuth
) -> None:
    """id-token-claims-reference: ``oid`` is the user's immutable id within the tenant ``tid``
    (``sub`` is pairwise per app): the subject is ``{tid}.{oid}``; ``preferred_username`` is the
    email shown. What is stored is MSAL's serialized token cache (msal SerializableTokenCache)."""
    grant, _ = _grant(oauth, ADA)
    ada = _user(emu, ADA)
    identity = oauth.identity(grant)
    assert identity.subject == f"{ada['tid']}.{ada['oid']}"
    assert identity.email == ADA
    assert identity.name == ada["name"]
    assert "Calendars.ReadWrite" in grant.scopes
    assert grant.credential is not None
    cache = json.loads(grant.credential)
    assert cache["RefreshToken"], "the cache holds the refresh token MSAL refreshes from"
    assert grant.stored_credential == grant.credential
    assert grant.refresh_token is not None
    assert grant.refresh_token not in repr(grant)
    assert emu.identity.user_for_access_token(grant.access_token) is not None


def test_signing_in_again_names_the_same_account(emu: MicrosoftEmulator, oauth: MicrosoftOAuth) -> None:
    """Reconnecting must update the same connection: the subject does not change between
    sign-ins (``oid``/``tid`` are stable; the codes and tokens are new)."""
    first, _ = _grant(oauth, ADA)
    second, _ = _grant(oauth, ADA)
    assert first.access_token != second.access_token
    assert oauth.identity(first).subject == oauth.identity(second).subject


def test_a_personal_account_signs_in_under_the_consumers_tenant(emu: MicrosoftEmulator, oauth: MicrosoftOAuth) -> None:
    """id-token-claims-reference: personal Microsoft accounts carry the consumers tenant id
    ``9188040d-6c67-4c5b-b112-36a304b66dad`` as ``tid``; the ``common`` authority admits them."""
    grant, _ = _grant(oauth, GRACE)
    identity = oauth.identity(grant)
    assert identity.subject.startswith("9188040d-6c67-4c5b-b112-36a304b66dad.")
    assert identity.email == GRACE


def test_cancel_and_admin_consent_bring_errors_not_codes(emu: MicrosoftEmulator, oauth: MicrosoftOAuth) -> None:
    """Cancel → ``access_denied`` (AADSTS65004); an organisation that requires admin approval →
    ``consent_required`` with AADSTS65001 (the pairing is a guess, docs/MICROSOFT.md)."""
    cancelled, _, _ = _sign_in(oauth, cancel=True)
    assert cancelled["error"] == "access_denied"
    refused, _, _ = _sign_in(oauth, LINUS)
    assert refused["error"] == "consent_required"
    assert "AADSTS65001" in refused["error_description"]
    assert "code" not in refused


def test_a_wrong_verifier_is_refused_for_good(emu: MicrosoftEmulator, oauth: MicrosoftOAuth) -> None:
    """RFC 7636 §4.6: the token endpoint refuses a verifier that does not match the challenge;
    retrying cannot help."""
    query, _, scopes = _sign_in(oauth)
    with pytest.raises(TokenExchangeFailed) as caught:
        oauth.exchange_code(code=query["code"], code_verifier=new_pkce_verifier(), scopes=scopes)
    assert caught.value.retryable is False
    assert "invalid_grant" in caught.value.detail


def test_the_credential_refreshes_until_the_grant_is_revoked(emu: MicrosoftEmulator, oauth: MicrosoftOAuth) -> None:
    """refresh-tokens: a refresh token is revoked when the user's sessions are revoked
    (``revokeSignInSessions``); the token endpoint then answers ``invalid_grant`` (AADSTS50173),
    which the health check turns into "needs reauth"."""
    grant, scopes = _grant(oauth, ADA)
    assert grant.credential is not None
    credential = MicrosoftCredential(oauth, grant.credential, scopes)
    renewed = credential.check()
    # refresh-tokens: "Refresh tokens replace themselves with a fresh token upon every use" and
    # each lives 90 days: the check hands back the cache holding the new one, to be stored.
    old_tokens = {t["secret"] for t in json.loads(grant.credential)["RefreshToken"].values()}
    new_tokens = {t["secret"] for t in json.loads(renewed)["RefreshToken"].values()}
    assert new_tokens
    assert new_tokens.isdisjoint(old_tokens)
    MicrosoftCredential(oauth, renewed, scopes).check()
    MicrosoftCredential(oauth, grant.credential, scopes).check()  # the old one is not revoked
    emu.revoke_grants(ADA, CLIENT_ID)
    with pytest.raises(AuthRevoked):
        credential.check()
    assert "token" not in repr(credential).replace("<token cache>", "")


def _expired(token_cache: str) -> str:
    """The cache an hour later: its access tokens have expired (MSAL reads ``expires_on``,
    epoch seconds, against the clock the test runs under)."""
    cache = json.loads(token_cache)
    for entry in cache["AccessToken"].values():
        entry["expires_on"] = entry["extended_expires_on"] = str(int(time.time()) - 60)
    return json.dumps(cache)


def test_graph_calls_use_the_cached_access_token_without_asking_microsoft(
    emu: MicrosoftEmulator, oauth: MicrosoftOAuth
) -> None:
    """MSAL's acquire_token_silent answers from the cache while the access token is valid:
    with the refresh tokens revoked meanwhile, a request would be refused, yet the token is
    handed out, and the cache is unchanged (nothing to store)."""
    grant, scopes = _grant(oauth, ADA)
    assert grant.credential is not None
    renewed: list[str] = []
    tokens = MicrosoftTokens(oauth, grant.credential, scopes, renewed=renewed.append)
    emu.revoke_grants(ADA, CLIENT_ID)

    assert tokens() == grant.access_token
    assert tokens() == grant.access_token
    assert renewed == []
    assert "token" not in repr(tokens).replace("<token cache>", "")


def test_an_expired_access_token_is_redeemed_and_the_renewed_cache_handed_over_once(
    emu: MicrosoftEmulator, oauth: MicrosoftOAuth
) -> None:
    """Once the access token has expired MSAL redeems the refresh token; Microsoft's answer
    carries a new refresh token ("refresh tokens replace themselves with a fresh token upon
    every use", refresh-tokens), so the cache changed and is handed over to be stored, once.
    A revoked grant is AuthRevoked (the sync marks the connection needs re-authorization)."""
    grant, scopes = _grant(oauth, ADA)
    assert grant.credential is not None
    renewed: list[str] = []
    tokens = MicrosoftTokens(oauth, _expired(grant.credential), scopes, renewed=renewed.append)

    fresh = tokens()

    assert fresh != grant.access_token
    assert emu.identity.user_for_access_token(fresh) is not None
    assert len(renewed) == 1
    old_tokens = {t["secret"] for t in json.loads(grant.credential)["RefreshToken"].values()}
    new_tokens = {t["secret"] for t in json.loads(renewed[0])["RefreshToken"].values()}
    assert new_tokens
    assert new_tokens.isdisjoint(old_tokens)
    assert tokens() == fresh
    assert len(renewed) == 1

    emu.revoke_grants(ADA, CLIENT_ID)
    with pytest.raises(AuthRevoked):
        MicrosoftTokens(oauth, _expired(renewed[0]), scopes, renewed=renewed.append)()
    assert len(renewed) == 1


def test_an_empty_or_unreadable_cache_needs_a_new_sign_in(emu: MicrosoftEmulator, oauth: MicrosoftOAuth) -> None:
    """A cache without an account (or not a cache at all) cannot refresh: AuthRevoked, so the
    connection asks to be reconnected rather than failing every check."""
    with pytest.raises(AuthRevoked):
        MicrosoftCredential(oauth, "{}", ["User.Read"]).check()
    with pytest.raises(AuthRevoked):
        MicrosoftCredential(oauth, "not json", ["User.Read"]).check()


def test_revoke_calls_nothing_at_microsoft(emu: MicrosoftEmulator, oauth: MicrosoftOAuth) -> None:
    """Microsoft has no per-app token revocation endpoint (the v2.0 metadata lists none;
    ``revokeSignInSessions`` ends every app's): disconnect deletes our tokens instead. The
    grant therefore still works at Microsoft after revoke()."""
    grant, scopes = _grant(oauth, ADA)
    assert grant.credential is not None
    credential = MicrosoftCredential(oauth, grant.credential, scopes)
    credential.revoke()
    credential.check()


def _forged(oauth_claims: dict[str, Any]) -> TokenGrant:
    token = jwt.encode(oauth_claims, "k" * 32, algorithm="HS256")
    return TokenGrant(access_token="a", refresh_token=None, id_token=token, scopes=(), expires_at=None)


def test_the_id_token_must_be_for_us_from_the_authority_and_current(
    emu: MicrosoftEmulator, oauth: MicrosoftOAuth
) -> None:
    """MSAL 1.38+ validates no id_token (AzureAD/microsoft-authentication-library-for-python#911):
    the adapter checks ``aud`` (our client id), ``iss`` (``{authority}/{tid}/v2.0``,
    id-token-claims-reference) and ``exp`` (on the test clock), and needs ``tid``/``oid`` and
    an email. The signature is not checked (OpenID Connect Core §3.1.3.7 (6): the token came
    from the token endpoint over TLS), so these are forged with any key."""
    grant, _ = _grant(oauth, ADA)
    assert grant.id_token is not None
    good = jwt.decode(grant.id_token, options={"verify_signature": False})
    assert oauth.identity(_forged(good)).email == ADA  # the forgery itself is well-formed
    expired = int((clock.now() - timedelta(hours=1)).timestamp())
    for bad in (
        {**good, "aud": "another-app"},
        {**good, "iss": f"https://login.example.test/{good['tid']}/v2.0"},
        {**good, "iss": f"{emu.base_url}/{'0' * 8}-0000-0000-0000-{'0' * 12}/v2.0"},
        {**good, "exp": expired},
        {k: v for k, v in good.items() if k != "oid"},
        {k: v for k, v in good.items() if k not in {"preferred_username", "email"}},
    ):
        with pytest.raises(TokenExchangeFailed):
            oauth.identity(_forged(bad))


def test_granted_scopes_are_named_as_asked() -> None:
    """Guess (v2-oauth2-auth-code-flow's example answer as remembered, not re-checked): Graph's
    scopes may come back with the resource prefix and in lower case; they are matched to ours."""
    answered = ["https://graph.microsoft.com/calendars.readwrite", "https://graph.microsoft.com/User.Read", "openid"]
    assert graph_scope_names(answered, ["Calendars.ReadWrite", "User.Read"]) == (
        "Calendars.ReadWrite",
        "User.Read",
        "openid",
    )


def test_no_code_token_or_secret_reaches_the_log(
    emu: MicrosoftEmulator, oauth: MicrosoftOAuth, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole sign-in, a refresh and a refused code, logged at DEBUG (MSAL's own loggers
    included): no code, verifier, token or client secret in any record."""
    caplog.set_level(logging.DEBUG)
    query, verifier, scopes = _sign_in(oauth)
    grant = oauth.exchange_code(code=query["code"], code_verifier=verifier, scopes=scopes)
    assert grant.credential is not None
    MicrosoftCredential(oauth, grant.credential, scopes).check()
    with pytest.raises(TokenExchangeFailed):
        oauth.exchange_code(code=query["code"], code_verifier=verifier, scopes=scopes)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records if not r.name.startswith("urllib3"))
    assert logged
    for secret in (query["code"], verifier, CLIENT_SECRET, grant.access_token, grant.refresh_token, grant.id_token):
        assert secret
        assert secret not in logged
    assert requests  # the emulator is reached over https only
