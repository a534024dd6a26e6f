"""Contract tests of the Microsoft identity platform emulator (devstack.microsoft).

The emulator is driven over https, with the CA bundle it hands out, and where the product
would, through MSAL for Python, so these tests pin the behaviour crmsync's Outlook sign-in
relies on: Microsoft's documented rules (cited per test; "guess" where Microsoft documents no
shape), not the emulator's code. Docs are on learn.microsoft.com unless a URL says otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.microsoft.emulator import MicrosoftEmulator
from devstack.microsoft.state import (
    CODE_LIFETIME_SECONDS,
    CONSUMERS_TENANT_ID,
    CONTOSO_TENANT_ID,
    PENDING_LIFETIME_SECONDS,
)

# Talks to the Microsoft emulator over loopback https (see the markers in pyproject.toml).
pytestmark = pytest.mark.integration

CLIENT_ID = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"
CLIENT_SECRET = "emulator-test-secret~value"
APP_NAME = "crmsync (test)"
# Nothing listens there: the tests read the redirect's Location instead of following it.
REDIRECT_URI = "http://127.0.0.1:9/v1/integrations/microsoft/callback"
OTHER_REDIRECT_URI = "http://127.0.0.1:9/other/callback"
GRAPH_SCOPES = ["Calendars.ReadWrite", "User.Read"]
SCOPE = "openid profile offline_access Calendars.ReadWrite User.Read"
ADA = "ada@contoso.test"
GRACE = "grace@outlook.test"
LINUS = "linus@fabrikam.test"


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emulator() -> Iterator[MicrosoftEmulator]:
    """One server for the module: key and certificate generation is the slow part."""
    with MicrosoftEmulator(host="127.0.0.1", port=0) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _session_verify_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests prefers REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE over a Session's ``verify``
    (psf/requests#4726, #3829), and MSAL sets ``verify`` on its Session: with either variable
    set, the emulator's CA would be ignored. Per-request ``verify=`` is not affected."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def emu(emulator: MicrosoftEmulator) -> MicrosoftEmulator:
    """A freshly reset emulator with the test app and the demo users."""
    emulator.reset()
    emulator.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI, OTHER_REDIRECT_URI], APP_NAME)
    emulator.seed_demo_users()
    return emulator


@pytest.fixture
def http(emulator: MicrosoftEmulator) -> Iterator[requests.Session]:
    """A session that trusts the emulator's CA, and only through the bundle it hands out."""
    with requests.Session() as session:
        session.verify = str(emulator.ca_bundle)
        yield session


# ---------------------------------------------------------------------- helpers


class _Forms(HTMLParser):
    """Collects each <form>: action, method, hidden fields, radios and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({**attributes, "hidden": {}, "radios": [], "buttons": []})
        elif tag == "input" and self.forms:
            if attributes.get("type") == "hidden":
                self.forms[-1]["hidden"][attributes["name"]] = attributes.get("value", "")
            elif attributes.get("type") == "radio":
                self.forms[-1]["radios"].append(attributes.get("value", ""))
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append(attributes)


def _forms(page: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def _click(
    emu: MicrosoftEmulator, http: requests.Session, page: str, button_id: str, account: str | None = None
) -> requests.Response:
    """Submit the form holding the button ``#button_id`` as a browser would, with ``account`` picked."""
    form = next(f for f in _forms(page) if any(b.get("id") == button_id for b in f["buttons"]))
    button = next(b for b in form["buttons"] if b.get("id") == button_id)
    assert form["method"].lower() == "post"
    data = dict(form["hidden"])
    if account is not None:
        assert account in form["radios"], f"{account} is not offered: {form['radios']}"
        data["account"] = account
    data[button["name"]] = button["value"]
    return http.post(emu.base_url + form["action"], data=data, allow_redirects=False)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize(
    emu: MicrosoftEmulator, http: requests.Session, tenant: str = "common", **overrides: str | None
) -> requests.Response:
    """GET the authorize endpoint with a well-formed request, ``overrides`` changing (None: dropping) fields."""
    params: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": _pkce()[1],
        "code_challenge_method": "S256",
        **overrides,
    }
    query = {k: v for k, v in params.items() if v is not None}
    return http.get(f"{emu.base_url}/{tenant}/oauth2/v2.0/authorize", params=query, allow_redirects=False)


def _code(
    emu: MicrosoftEmulator,
    http: requests.Session,
    email: str = ADA,
    tenant: str = "common",
    **overrides: str | None,
) -> tuple[str, str]:
    """Sign ``email`` in and accept; returns ``(code, verifier)``."""
    verifier, challenge = _pkce()
    page = _authorize(emu, http, tenant, code_challenge=challenge, **overrides)
    assert page.status_code == 200, page.text
    answer = _click(emu, http, page.text, "accept", email)
    assert answer.status_code == 302, answer.text
    query = _query(answer.headers["Location"])
    assert "code" in query, query
    return query["code"], verifier


def _token(emu: MicrosoftEmulator, http: requests.Session, tenant: str = "common", **fields: str) -> requests.Response:
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "client_info": "1", **fields}
    return http.post(f"{emu.base_url}/{tenant}/oauth2/v2.0/token", data=data)


def _redeem(
    emu: MicrosoftEmulator, http: requests.Session, code: str, verifier: str, **fields: str
) -> requests.Response:
    return _token(
        emu,
        http,
        **{
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "scope": SCOPE,
            **fields,
        },
    )


def _tokens(emu: MicrosoftEmulator, http: requests.Session, email: str = ADA) -> dict[str, Any]:
    code, verifier = _code(emu, http, email)
    response = _redeem(emu, http, code, verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _aadsts(response: requests.Response) -> tuple[str, list[int]]:
    body = response.json()
    return body["error"], body["error_codes"]


def _verify_id_token(
    emu: MicrosoftEmulator, http: requests.Session, id_token: str, issuer: str, leeway: float = 0
) -> dict[str, Any]:
    """Verify like a relying party: keys from the metadata's jwks_uri, RS256, aud and iss."""
    metadata = http.get(emu.endpoints["metadata"]).json()
    jwks = jwt.PyJWKSet.from_dict(http.get(metadata["jwks_uri"]).json())
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        id_token, key.key, algorithms=["RS256"], audience=CLIENT_ID, issuer=issuer, leeway=leeway
    )
    return claims


# ---------------------------------------------------------------------- metadata and keys


def test_common_metadata_publishes_the_endpoints_and_a_tenantid_placeholder_issuer(
    emu: MicrosoftEmulator, http: requests.Session
) -> None:
    """v2-protocols-oidc ("Find your app's OpenID configuration document URI"): the common
    document's issuer is ``https://login.microsoftonline.com/{tenantid}/v2.0``, a template the
    signed-in user's tenant fills; endpoints sit under the same tenant segment."""
    response = http.get(f"{emu.base_url}/common/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == f"{emu.base_url}/{{tenantid}}/v2.0"
    assert doc["authorization_endpoint"] == f"{emu.base_url}/common/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{emu.base_url}/common/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{emu.base_url}/common/discovery/v2.0/keys"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


def test_a_tenant_or_consumers_metadata_names_its_own_issuer(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """id-token-claims-reference (``iss``): the issuer carries the tenant GUID; personal
    accounts' tenant is 9188040d-6c67-4c5b-b112-36a304b66dad."""
    tenant_doc = http.get(f"{emu.base_url}/{CONTOSO_TENANT_ID}/v2.0/.well-known/openid-configuration").json()
    consumers_doc = http.get(f"{emu.base_url}/consumers/v2.0/.well-known/openid-configuration").json()
    assert tenant_doc["issuer"] == f"{emu.base_url}/{CONTOSO_TENANT_ID}/v2.0"
    assert consumers_doc["issuer"] == f"{emu.base_url}/{CONSUMERS_TENANT_ID}/v2.0"


def test_an_unknown_tenant_has_no_metadata(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """reference-error-codes: AADSTS90002 "Tenant ... not found" (MSAL's tenant discovery
    turns a 4xx into "Unable to get authority configuration")."""
    response = http.get(f"{emu.base_url}/00000000-1111-2222-3333-444444444444/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_the_id_token_verifies_with_the_published_keys_and_names_the_user(
    emu: MicrosoftEmulator, http: requests.Session
) -> None:
    """id-token-claims-reference: RS256-signed, ``aud`` the app's client id, ``iss`` the user's
    tenant, ``oid``/``tid``/``sub``/``preferred_username``/``name``, and the ``nonce`` of the
    authorize request; times from the emulator's clock (advanced here, so wall time would fail)."""
    emu.freeze_clock()
    now = emu.advance_clock(10_000)
    try:
        verifier, challenge = _pkce()
        page = _authorize(emu, http, code_challenge=challenge, nonce="nonce-789")
        code = _query(_click(emu, http, page.text, "accept", ADA).headers["Location"])["code"]
        body = _redeem(emu, http, code, verifier).json()
    finally:
        emu.freeze_clock(False)
    ada = next(u for u in emu.seed_demo_users() if u["email"] == ADA)
    # Issued 10,000 s ahead of the wall clock: accept that, and check it is exactly so.
    claims = _verify_id_token(emu, http, body["id_token"], f"{emu.base_url}/{ada['tid']}/v2.0", leeway=10_060)
    assert claims["iat"] == claims["nbf"] == int(now)
    assert claims["oid"] == ada["oid"]
    assert claims["tid"] == ada["tid"] == CONTOSO_TENANT_ID
    assert claims["preferred_username"] == ADA
    assert claims["name"] == "Ada Lovelace"
    assert claims["nonce"] == "nonce-789"
    assert claims["ver"] == "2.0"
    assert claims["sub"]


def test_a_token_signed_by_another_key_does_not_verify(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """The JWKS must be the key that signs: the same claims and kid signed by another key fail."""
    body = _tokens(emu, http)
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    headers = jwt.get_unverified_header(body["id_token"])
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": headers["kid"]})
    with pytest.raises(jwt.InvalidSignatureError):
        _verify_id_token(emu, http, forged, f"{emu.base_url}/{CONTOSO_TENANT_ID}/v2.0")


def test_a_personal_account_signs_in_under_the_consumers_tenant(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """id-token-claims-reference (``tid``): "the tenant ID ... for personal accounts is
    9188040d-6c67-4c5b-b112-36a304b66dad"; the issuer names that tenant."""
    body = _tokens(emu, http, GRACE)
    claims = _verify_id_token(emu, http, body["id_token"], f"{emu.base_url}/{CONSUMERS_TENANT_ID}/v2.0")
    assert claims["tid"] == CONSUMERS_TENANT_ID
    assert claims["preferred_username"] == GRACE


@pytest.mark.parametrize(
    ("tenant", "offered", "not_offered"),
    [("organizations", ADA, GRACE), ("consumers", GRACE, ADA), (CONTOSO_TENANT_ID, ADA, LINUS)],
)
def test_the_authority_decides_which_accounts_may_sign_in(
    emu: MicrosoftEmulator, http: requests.Session, tenant: str, offered: str, not_offered: str
) -> None:
    """v2-protocols-oidc (``tenant`` values): organizations admits work and school accounts,
    consumers personal accounts only, a tenant id that tenant's users only."""
    page = _authorize(emu, http, tenant)
    radios = next(f for f in _forms(page.text) if f["radios"])["radios"]
    assert offered in radios
    assert not_offered not in radios
    refused = http.post(
        f"{emu.base_url}/{tenant}/login",
        data={**_forms(page.text)[0]["hidden"], "account": not_offered, "action": "accept"},
        allow_redirects=False,
    )
    assert refused.status_code == 200
    assert "Pick one of the accounts listed" in refused.text


def test_client_info_names_the_user_and_tenant(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """MSAL sends ``client_info=1`` and builds its account id from the answer's base64url JSON
    ``{uid, utid}`` (msal/application.py); the emulator gives the user's oid and tid."""
    body = _tokens(emu, http)
    padded = body["client_info"] + "=" * (-len(body["client_info"]) % 4)
    info = json.loads(base64.urlsafe_b64decode(padded))
    ada = next(u for u in emu.seed_demo_users() if u["email"] == ADA)
    assert info == {"uid": ada["oid"], "utid": ada["tid"]}


def test_the_token_answer_has_microsofts_members(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """v2-oauth2-auth-code-flow ("Successful response"): token_type Bearer, scope, expires_in,
    ext_expires_in, access_token, refresh_token (with offline_access), id_token (with openid)."""
    body = _tokens(emu, http)
    assert body["token_type"] == "Bearer"
    assert set(GRAPH_SCOPES) <= set(body["scope"].split())
    assert 0 < body["expires_in"] <= 3600
    assert body["ext_expires_in"] >= body["expires_in"]
    assert body["access_token"]
    assert body["refresh_token"]
    assert body["id_token"]


def test_without_offline_access_there_is_no_refresh_token(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """v2-oauth2-auth-code-flow (``refresh_token``): "Only provided if offline_access scope was requested"."""
    code, verifier = _code(emu, http, scope="openid profile Calendars.ReadWrite")
    body = _redeem(emu, http, code, verifier, scope="openid profile Calendars.ReadWrite").json()
    assert "access_token" in body
    assert "refresh_token" not in body


# ---------------------------------------------------------------------- authorize


def test_the_consent_page_shows_the_app_the_scopes_and_the_accounts(
    emu: MicrosoftEmulator, http: requests.Session
) -> None:
    """The emulator's page stands for Microsoft's "Permissions requested": the app's name,
    what it asks for, and an account picker of the emulator's users (``common``: all of them)."""
    page = _authorize(emu, http)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert APP_NAME in page.text
    for scope in GRAPH_SCOPES:
        assert f'data-scope="{scope}"' in page.text
    radios = next(f for f in _forms(page.text) if f["radios"])["radios"]
    assert {ADA, GRACE, LINUS} <= set(radios)


def test_accept_redirects_with_a_code_and_the_state(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """v2-oauth2-auth-code-flow ("Successful response"): 302 to the redirect URI with ``code``
    and the request's ``state`` unchanged."""
    page = _authorize(emu, http, state="opaque/state+with=odd&chars")
    answer = _click(emu, http, page.text, "accept", ADA)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = _query(location)
    assert query["state"] == "opaque/state+with=odd&chars"
    assert query["code"]


def test_cancel_redirects_with_access_denied(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """A user who cancels: ``error=access_denied`` with AADSTS65004 "User declined to consent to
    access the app." and the state (the redirect quoted in MicrosoftDocs/azure-docs#114009)."""
    page = _authorize(emu, http)
    answer = _click(emu, http, page.text, "cancel")
    assert answer.status_code == 302
    query = _query(answer.headers["Location"])
    assert query["error"] == "access_denied"
    assert "code" not in query
    assert query["error_description"].startswith("AADSTS65004: User declined to consent")
    assert query["state"] == "st-123"


def test_an_organisation_requiring_admin_consent_stops_the_sign_in(
    emu: MicrosoftEmulator, http: requests.Session
) -> None:
    """troubleshoot-consent-issues: a user who may not consent sees "Need admin approval"
    (AADSTS90094 "The grant requires admin permission", pnp/cli-microsoft365#534); going back to
    the app brings ``error=consent_required`` with AADSTS65001 (the pairing is a guess from
    apps' reports) and the state; no code."""
    page = _authorize(emu, http)
    approval = _click(emu, http, page.text, "accept", LINUS)
    assert approval.status_code == 200
    assert "Need admin approval" in approval.text
    assert "AADSTS90094" in approval.text
    back = _click(emu, http, approval.text, "return-to-app")
    assert back.status_code == 302
    query = _query(back.headers["Location"])
    assert query["error"] == "consent_required"
    assert "code" not in query
    assert query["error_description"].startswith("AADSTS65001: The user or administrator has not consented")
    assert query["state"] == "st-123"


def test_an_unregistered_redirect_uri_is_never_redirected_to(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """v2-oauth2-auth-code-flow (``redirect_uri`` "must exactly match one of the redirect URIs
    you registered"): AADSTS50011 on Microsoft's page; nothing goes to the unknown URI."""
    page = _authorize(emu, http, redirect_uri="http://127.0.0.1:9/v1/integrations/microsoft/callback/")
    assert page.status_code == 200
    assert "Location" not in page.headers
    assert "AADSTS50011" in page.text
    assert not any(f["radios"] for f in _forms(page.text))


def test_an_unknown_client_gets_an_error_page(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """reference-error-codes: AADSTS700016 "Application with identifier ... was not found"."""
    page = _authorize(emu, http, client_id="11111111-2222-3333-4444-555555555555")
    assert page.status_code == 200
    assert "Location" not in page.headers
    assert "AADSTS700016" in page.text


@pytest.mark.parametrize(
    ("challenge", "method"),
    [(None, None), ("plain-verifier-" + "x" * 40, "plain"), ("plain-verifier-" + "x" * 40, None)],
    ids=["no-pkce", "plain", "no-method"],
)
def test_pkce_with_s256_is_required(
    emu: MicrosoftEmulator, http: requests.Session, challenge: str | None, method: str | None
) -> None:
    """v2-oauth2-auth-code-flow (``code_challenge_method``: "should be S256"); the emulator
    requires it, stricter than Microsoft, because crmsync always sends it (issue 16)."""
    response = _authorize(emu, http, code_challenge=challenge, code_challenge_method=method)
    assert response.status_code == 302
    query = _query(response.headers["Location"])
    assert query["error"] == "invalid_request"
    assert query["state"] == "st-123"
    assert "code" not in query


def test_a_consent_page_left_open_too_long_gives_no_code(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """Emulator rule: an answer more than 10 minutes after the authorize request (or a second
    answer to it) gets an error page, not a code; the app starts again."""
    page = _authorize(emu, http)
    emu.advance_clock(PENDING_LIFETIME_SECONDS + 1)
    late = _click(emu, http, page.text, "accept", ADA)
    assert late.status_code == 200
    assert "Location" not in late.headers
    assert "expired" in late.text
    page = _authorize(emu, http)
    assert _click(emu, http, page.text, "accept", ADA).status_code == 302
    assert "Location" not in _click(emu, http, page.text, "accept", ADA).headers


# ---------------------------------------------------------------------- token: authorization_code


def test_a_wrong_code_verifier_is_refused(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """RFC 7636 §4.6 and reference-error-codes AADSTS501481 "The Code_Verifier does not match the
    code_challenge supplied in the authorization request"; the right verifier then works."""
    code, verifier = _code(emu, http)
    wrong = _redeem(emu, http, code, _pkce()[0])
    missing = _token(emu, http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI, scope=SCOPE)
    assert wrong.status_code == missing.status_code == 400
    assert _aadsts(wrong) == _aadsts(missing) == ("invalid_grant", [501481])
    assert _redeem(emu, http, code, verifier).status_code == 200


def test_a_code_is_single_use(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """v2-oauth2-auth-code-flow and reference-error-codes AADSTS54005 "OAuth2 Authorization code
    was already redeemed"."""
    code, verifier = _code(emu, http)
    assert _redeem(emu, http, code, verifier).status_code == 200
    again = _redeem(emu, http, code, verifier)
    assert again.status_code == 400
    assert _aadsts(again) == ("invalid_grant", [54005])


def test_a_code_expires_after_ten_minutes(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """v2-oauth2-auth-code-flow: codes are "short lived, typically expiring after about 10
    minutes"; AADSTS70008 when expired (reference-error-codes)."""
    code, verifier = _code(emu, http)
    emu.advance_clock(CODE_LIFETIME_SECONDS + 1)
    late = _redeem(emu, http, code, verifier)
    assert late.status_code == 400
    assert _aadsts(late) == ("invalid_grant", [70008])


def test_the_redirect_uri_must_match_the_authorize_request(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """RFC 6749 §4.1.3: the token request's redirect_uri must be identical to the authorize
    request's, even when both are registered (the AADSTS code here is a guess)."""
    code, verifier = _code(emu, http)
    other = _redeem(emu, http, code, verifier, redirect_uri=OTHER_REDIRECT_URI)
    assert other.status_code == 400
    assert other.json()["error"] == "invalid_grant"
    assert _redeem(emu, http, code, verifier).status_code == 200


def test_a_wrong_client_secret_is_refused(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """reference-error-codes AADSTS7000215 "Invalid client secret provided", 401 invalid_client;
    the code is not used up by the failed attempt."""
    code, verifier = _code(emu, http)
    wrong = _redeem(emu, http, code, verifier, client_secret="not-the-secret")
    assert wrong.status_code == 401
    assert _aadsts(wrong) == ("invalid_client", [7000215])
    assert _redeem(emu, http, code, verifier).status_code == 200


def test_the_client_secret_may_come_as_http_basic(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """RFC 6749 §2.3.1 (client_secret_basic, listed in the metadata) is accepted as well."""
    code, verifier = _code(emu, http)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "scope": SCOPE,
    }
    response = http.post(emu.endpoints["token"], data=data, auth=(CLIENT_ID, CLIENT_SECRET))
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------------- token: refresh_token


def test_refresh_gives_a_new_refresh_token_that_works(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """refresh-tokens: "Refresh tokens replace themselves with a fresh token upon every use";
    the new one refreshes again, with a new access token each time."""
    first = _tokens(emu, http)
    second = _token(emu, http, grant_type="refresh_token", refresh_token=first["refresh_token"], scope=SCOPE).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    third = _token(emu, http, grant_type="refresh_token", refresh_token=second["refresh_token"], scope=SCOPE)
    assert third.status_code == 200
    assert third.json()["refresh_token"] not in (
        first["refresh_token"],
        second["refresh_token"],
    )


def test_a_revoked_grant_answers_invalid_grant(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """refresh-tokens ("Token revocation": revokeSignInSessions, password reset): the refresh
    token then answers invalid_grant with AADSTS50173 "The provided grant has expired due to it
    being revoked" (reference-error-codes). Revoked over the control API, as dev and tests do."""
    tokens = _tokens(emu, http)
    revoked = http.post(f"{emu.base_url}/_microsoft/grants/revoke", json={"email": ADA})
    assert revoked.status_code == 200
    assert revoked.json()["revoked_refresh_tokens"] == 1
    refused = _token(emu, http, grant_type="refresh_token", refresh_token=tokens["refresh_token"], scope=SCOPE)
    assert refused.status_code == 400
    assert _aadsts(refused) == ("invalid_grant", [50173])


def test_revoking_one_app_leaves_the_others_and_access_tokens_can_end_too(
    emu: MicrosoftEmulator, http: requests.Session
) -> None:
    """The control API's revoke names an app or all of them (``revokeSignInSessions`` ends
    every app's refresh tokens, refresh-tokens "Token revocation"); ``access_tokens`` also ends
    access tokens, which Microsoft leaves valid until they expire (access-tokens)."""
    tokens = _tokens(emu, http)
    other_app = http.post(f"{emu.base_url}/_microsoft/grants/revoke", json={"email": ADA, "client_id": "other-app"})
    assert other_app.json()["revoked_refresh_tokens"] == 0
    assert emu.identity.user_for_access_token(tokens["access_token"]) is not None
    this_app = {"email": ADA, "client_id": CLIENT_ID, "access_tokens": True}
    assert http.post(f"{emu.base_url}/_microsoft/grants/revoke", json=this_app).json()["revoked_refresh_tokens"] == 1
    assert emu.identity.user_for_access_token(tokens["access_token"]) is None


def test_a_refresh_cannot_widen_the_consented_scopes(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """permissions-consent-overview: a permission the user did not consent to needs an
    interactive request (AADSTS65001); a refresh cannot obtain it silently."""
    tokens = _tokens(emu, http)
    wider = _token(emu, http, grant_type="refresh_token", refresh_token=tokens["refresh_token"], scope="Mail.ReadWrite")
    assert wider.status_code == 400
    assert _aadsts(wider) == ("invalid_grant", [65001])


# ---------------------------------------------------------------------- access tokens for Graph


def test_graph_can_tell_whose_access_token_it_is_until_it_expires(
    emu: MicrosoftEmulator, http: requests.Session
) -> None:
    """access-tokens ("Token lifetime": 60-90 minutes): the Graph emulator asks
    ``identity.user_for_access_token``, which knows the user until expiry, then forgets."""
    token = _tokens(emu, http, GRACE)["access_token"]
    user = emu.identity.user_for_access_token(token)
    assert user is not None
    assert user.email == GRACE
    info = emu.identity.token_info(token)
    assert info is not None
    assert set(GRAPH_SCOPES) <= set(info.scopes)
    assert info.client_id == CLIENT_ID
    assert emu.identity.user_for_access_token(token + "x") is None
    emu.advance_clock(3600)
    assert emu.identity.user_for_access_token(token) is None


# ---------------------------------------------------------------------- transport


def test_plain_http_is_refused(emu: MicrosoftEmulator) -> None:
    """MSAL refuses non-https authorities, so the emulator speaks TLS only: plain http fails."""
    plain = emu.base_url.replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(plain + "/common/v2.0/.well-known/openid-configuration", timeout=5)


def test_only_the_handed_out_ca_bundle_makes_the_certificate_trusted(emu: MicrosoftEmulator) -> None:
    """The server certificate chains to the emulator's CA and covers 127.0.0.1: the system
    trust store refuses it, the bundle accepts it."""
    url = emu.endpoints["metadata"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, timeout=5)
    assert requests.get(url, timeout=5, verify=str(emu.ca_bundle)).status_code == 200


def test_a_silent_connection_does_not_stall_the_emulator(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """A client that connects and never starts TLS (a port probe, a browser's idle preconnect)
    must not block everyone else: the handshake happens per connection, not in the accept loop."""
    with socket.create_connection((emu.host, int(urlsplit(emu.base_url).port or 0)), timeout=5):
        response = http.get(emu.endpoints["metadata"], timeout=5)
    assert response.status_code == 200


def test_the_trust_bundle_lets_msal_verify_through_the_environment(
    emu: MicrosoftEmulator, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``REQUESTS_CA_BUNDLE`` set, requests ignores a Session's ``verify`` (psf/requests#4726):
    the trust bundle (the CAs requests would use, plus the emulator's) set there lets MSAL
    sign in with its default ``verify``, as production code would run."""
    with_public_cas = emu.trust_bundle
    assert with_public_cas.read_bytes().count(b"BEGIN CERTIFICATE") > 1
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(with_public_cas))
    app = msal.ConfidentialClientApplication(
        CLIENT_ID, client_credential=CLIENT_SECRET, authority=emu.authority(), instance_discovery=False
    )
    flow = app.initiate_auth_code_flow(GRAPH_SCOPES, redirect_uri=REDIRECT_URI, response_mode="form_post")
    answer = _click(emu, http, http.get(flow["auth_uri"]).text, "accept", ADA)
    result = app.acquire_token_by_auth_code_flow(flow, _answer_of(emu, answer, "form_post"))
    assert "access_token" in result, result


def test_the_emulator_serves_loopback_only() -> None:
    """It hands out tokens to anyone who asks: it must never listen beyond this machine."""
    with pytest.raises(ValueError, match="loopback"):
        MicrosoftEmulator(host="0.0.0.0")  # noqa: S104 - the address under test


# ---------------------------------------------------------------------- control API


def test_the_control_api_adds_users_and_registers_apps(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """Dev and tests set the emulator up over ``/_microsoft/``: a new app and a new work user
    can then sign in; the listed app carries no secret."""
    base = f"{emu.base_url}/_microsoft"
    app = {"client_id": "app-2", "client_secret": "s2", "redirect_uris": [REDIRECT_URI], "name": "Second"}
    assert http.post(f"{base}/clients", json=app).status_code == 201
    user = http.post(f"{base}/users", json={"email": "eve@contoso.test", "name": "Eve"})
    assert user.status_code == 201
    assert user.json()["tid"] == CONTOSO_TENANT_ID
    assert not user.json()["personal"]
    listed = http.get(f"{base}/clients").json()
    assert {"client_id": "app-2", "redirect_uris": [REDIRECT_URI], "name": "Second"} in listed
    assert "s2" not in json.dumps(listed)
    page = _authorize(emu, http, client_id="app-2")
    answer = _click(emu, http, page.text, "accept", "eve@contoso.test")
    assert answer.status_code == 302
    assert "code" in _query(answer.headers["Location"])


def test_the_control_api_moves_the_clock(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """``/_microsoft/clock/advance`` moves the time tokens are checked against (so a code
    expires without sleeping)."""
    code, verifier = _code(emu, http)
    moved = http.post(f"{emu.base_url}/_microsoft/clock/advance", json={"seconds": CODE_LIFETIME_SECONDS + 1})
    assert moved.status_code == 200
    assert moved.json()["offset"] >= CODE_LIFETIME_SECONDS
    assert _aadsts(_redeem(emu, http, code, verifier)) == ("invalid_grant", [70008])


# ---------------------------------------------------------------------- logs


def test_no_code_or_token_reaches_the_log(
    emu: MicrosoftEmulator, http: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    """werkzeug's default access log prints the whole request target, query string included:
    the emulator logs method, path and status only, and never a form body."""
    caplog.set_level(logging.DEBUG)
    code, verifier = _code(emu, http)
    tokens = _redeem(emu, http, code, verifier).json()
    _token(emu, http, grant_type="refresh_token", refresh_token=tokens["refresh_token"], scope=SCOPE)
    # A careless client may put a token in the URL: the emulator must not write it down either.
    http.post(emu.endpoints["token"], params={"refresh_token": tokens["refresh_token"]})
    # The server side only: urllib3 (the client here) logs its own URLs.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("devstack", "werkzeug")))
    assert "/oauth2/v2.0/token" in logged  # the requests were logged...
    for secret in (code, verifier, CLIENT_SECRET, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in logged  # ...without what they carried


# ---------------------------------------------------------------------- MSAL end to end


def _answer_of(emu: MicrosoftEmulator, response: requests.Response, response_mode: str) -> dict[str, str]:
    """What the app's redirect URI receives: the 302's query, or the fields the form_post page posts."""
    if response_mode == "query":
        assert response.status_code == 302, response.text
        return _query(response.headers["Location"])
    assert response.status_code == 200
    form = next(f for f in _forms(response.text) if f.get("id") == "form-post")
    assert form["action"] == REDIRECT_URI
    assert form["method"].lower() == "post"
    fields: dict[str, str] = form["hidden"]
    return fields


def test_form_post_posts_the_answer_to_the_redirect_uri(emu: MicrosoftEmulator, http: requests.Session) -> None:
    """v2-oauth2-auth-code-flow (``response_mode``): "form_post executes a POST containing the
    code to your redirect URI"; an error (here Cancel) travels the same way, with the state."""
    page = _authorize(emu, http, response_mode="form_post")
    accepted = _answer_of(emu, _click(emu, http, page.text, "accept", ADA), "form_post")
    assert accepted["code"]
    assert accepted["state"] == "st-123"
    page = _authorize(emu, http, response_mode="form_post")
    cancelled = _answer_of(emu, _click(emu, http, page.text, "cancel"), "form_post")
    assert cancelled["error"] == "access_denied"
    assert cancelled["state"] == "st-123"
    assert "code" not in cancelled


@pytest.mark.parametrize(
    ("tenant", "email", "response_mode"),
    [
        ("common", ADA, "query"),
        ("common", GRACE, "form_post"),
        ("organizations", ADA, "form_post"),
        ("consumers", GRACE, "query"),
        (CONTOSO_TENANT_ID, ADA, "query"),
    ],
)
def test_msal_signs_in_and_refreshes_against_the_emulator(
    emu: MicrosoftEmulator, http: requests.Session, tenant: str, email: str, response_mode: str
) -> None:
    """The product's path (issue 16): MSAL's ConfidentialClientApplication on the ``common``
    authority (and the others) with instance discovery off and the emulator's CA, auth code
    flow with PKCE, the consent page driven as a browser would (query or form_post, which MSAL
    1.39 recommends), then a refresh; work and personal accounts."""
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=CLIENT_SECRET,
        authority=emu.authority(tenant),
        instance_discovery=False,
        verify=str(emu.ca_bundle),
        token_cache=msal.SerializableTokenCache(),
    )
    flow = app.initiate_auth_code_flow(GRAPH_SCOPES, redirect_uri=REDIRECT_URI, response_mode=response_mode)
    assert flow["auth_uri"].startswith(f"{emu.base_url}/{tenant}/oauth2/v2.0/authorize?")
    page = http.get(flow["auth_uri"], allow_redirects=False)
    assert page.status_code == 200, page.text
    answer = _click(emu, http, page.text, "accept", email)
    result = app.acquire_token_by_auth_code_flow(flow, _answer_of(emu, answer, response_mode))
    assert "error" not in result, result
    user = next(u for u in emu.seed_demo_users() if u["email"] == email)
    claims = result["id_token_claims"]
    assert claims["oid"] == user["oid"]
    assert claims["tid"] == user["tid"]
    assert result["access_token"]
    assert result["refresh_token"]
    assert emu.identity.user_for_access_token(result["access_token"]) is not None
    accounts = app.get_accounts()
    assert [a["home_account_id"] for a in accounts] == [f"{user['oid']}.{user['tid']}"]

    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], GRAPH_SCOPES)
    assert "error" not in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]
    assert emu.identity.user_for_access_token(refreshed["access_token"]).email == email  # type: ignore[union-attr]
