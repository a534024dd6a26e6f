"""Contract tests of the Google OAuth 2.0 / OpenID emulator (devstack.google).

The emulator is driven over HTTP, and where the product would, through the same
libraries the product uses (google-auth-oauthlib's Flow, google-auth), so that these
tests pin the behaviour the product relies on: Google's rules, not the emulator's code.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import google.auth.transport.requests
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.oauth2 import id_token as google_id_token
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow

from crmsync.providers.google.scopes import CALENDAR_LIST_SCOPES, FEATURE_SCOPES, scopes_for
from devstack.google import GoogleEmulator

# Talks to the Google emulator over HTTP (see the markers in pyproject.toml).
pytestmark = pytest.mark.integration

CLIENT_ID = "1234567890-crmsync.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-test-secret"
# Nothing listens there: the tests read the redirect's Location instead of following it.
REDIRECT_URI = "http://127.0.0.1:9/v1/integrations/google/callback"
OTHER_REDIRECT_URI = "http://127.0.0.1:9/other/callback"
OPENID = "openid"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
CALENDAR = "https://www.googleapis.com/auth/calendar"
ADA = "ada@example.com"


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emulator() -> Iterator[GoogleEmulator]:
    """One server for the module: key generation is the slow part of starting it."""
    emu = GoogleEmulator(host="127.0.0.1", port=0).start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(emulator: GoogleEmulator, monkeypatch: pytest.MonkeyPatch) -> GoogleEmulator:
    """A freshly reset emulator with the test client and the demo accounts."""
    # The emulator is plain http on loopback; oauthlib refuses that unless told otherwise.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.delenv("OAUTHLIB_RELAX_TOKEN_SCOPE", raising=False)
    emulator.reset()
    emulator.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI, OTHER_REDIRECT_URI])
    emulator.seed_demo_accounts()
    return emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A keep-alive session: the refresh-token-limit test makes hundreds of requests."""
    with requests.Session() as session:
        yield session


# ---------------------------------------------------------------------- helpers


class _Forms(HTMLParser):
    """Collects each <form>: action, hidden fields, submit buttons and text inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({**attributes, "hidden": {}, "buttons": [], "inputs": []})
        elif tag == "input" and self.forms:
            if attributes.get("type") == "hidden":
                self.forms[-1]["hidden"][attributes["name"]] = attributes.get("value", "")
            else:
                self.forms[-1]["inputs"].append(attributes)
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append(attributes)


def _forms(page: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def _submit(
    emu: GoogleEmulator,
    http: requests.Session,
    page: str,
    button: dict[str, str],
    untick: tuple[str, ...] = (),
    **fields: str,
) -> requests.Response:
    """Submit the form holding ``button`` the way a browser would when it is clicked."""
    form = next(f for f in _forms(page) if button in f["buttons"])
    assert form["method"].lower() == "post"
    data: dict[str, Any] = {**form["hidden"], **fields}
    # Ticked checkboxes go with the form, as a browser sends them; ``untick`` leaves some out.
    for box in form["inputs"]:
        if box.get("type") == "checkbox" and "checked" in box and box.get("value") not in untick:
            data.setdefault(box["name"], []).append(box.get("value", "on"))
    if button.get("name"):
        data[button["name"]] = button.get("value", "")
    return http.post(emu.base_url + form["action"], data=data, allow_redirects=False)


def _choose_account(
    emu: GoogleEmulator, http: requests.Session, page: str, email: str, untick: tuple[str, ...] = ()
) -> str:
    """Click the account button for ``email`` on the consent page (after unticking the scopes
    in ``untick``); return the redirect target."""
    button = next(b for f in _forms(page) for b in f["buttons"] if b.get("data-email") == email)
    response = _submit(emu, http, page, button, untick)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _flow(emu: GoogleEmulator, scopes: list[str]) -> Flow:
    config = {
        "web": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "auth_uri": emu.endpoints["auth_uri"],
            "token_uri": emu.endpoints["token_uri"],
            "redirect_uris": [REDIRECT_URI],
        }
    }
    return Flow.from_client_config(config, scopes=scopes, redirect_uri=REDIRECT_URI)


def _sign_in_with_flow(
    emu: GoogleEmulator,
    http: requests.Session,
    scopes: list[str],
    email: str = ADA,
    **auth_params: str,
) -> tuple[Flow, str]:
    """Product-style start of the flow, user picks ``email``; returns the flow and redirect."""
    flow = _flow(emu, scopes)
    params = {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}
    url, _state = flow.authorization_url(**{**params, **auth_params})
    page = http.get(url)
    assert page.status_code == 200
    return flow, _choose_account(emu, http, page.text, email)


def _raw_code(
    emu: GoogleEmulator,
    http: requests.Session,
    scope: str = f"{OPENID} {EMAIL}",
    email: str = ADA,
    **params: str,
) -> dict[str, str]:
    """Authorize without any library (no PKCE unless given); returns the redirect's query."""
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": scope,
        **params,
    }
    page = http.get(emu.endpoints["auth_uri"], params=query)
    assert page.status_code == 200, page.text
    return _query(_choose_account(emu, http, page.text, email))


def _exchange(emu: GoogleEmulator, http: requests.Session, code: str, **extra: str) -> requests.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return http.post(emu.endpoints["token_uri"], data=data)


def _refresh(emu: GoogleEmulator, http: requests.Session, refresh_token: str, **extra: str) -> requests.Response:
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return http.post(emu.endpoints["token_uri"], data=data)


def _userinfo(emu: GoogleEmulator, http: requests.Session, access_token: str) -> requests.Response:
    return http.get(emu.endpoints["userinfo_uri"], headers={"Authorization": f"Bearer {access_token}"})


def _credentials(emu: GoogleEmulator, refresh_token: str) -> Credentials:
    """What the product builds from a stored refresh token before calling a Google API."""
    return Credentials(
        token=None,
        refresh_token=refresh_token,
        token_uri=emu.endpoints["token_uri"],
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


INVALID_GRANT = {"error": "invalid_grant", "error_description": "Bad Request"}
REVOKED_REFRESH = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
VERIFIER = "v" * 43 + "-._~0123456789"


# ---------------------------------------------------------------------- the happy path


def test_web_server_flow_with_google_libraries(emu: GoogleEmulator, http: requests.Session) -> None:
    flow = _flow(emu, [OPENID, EMAIL, PROFILE])
    url, state = flow.authorization_url(
        access_type="offline", prompt="consent", include_granted_scopes="true", state="st-123"
    )
    params = _query(url)
    # Flow generates a PKCE S256 verifier by default; the product depends on that.
    assert params["code_challenge_method"] == "S256"
    assert flow.code_verifier is not None
    assert params["code_challenge"] == _s256(flow.code_verifier)

    page = http.get(url)
    assert page.status_code == 200
    for element_id in ("email", "use-email", "cancel"):
        assert f'id="{element_id}"' in page.text
    assert "See your primary Google Account email address" in page.text
    for demo in ("ada@example.com", "grace@example.org", "linus@example.net"):
        assert f'data-email="{demo}"' in page.text

    location = _choose_account(emu, http, page.text, ADA)
    assert location.startswith(REDIRECT_URI + "?")
    redirect = _query(location)
    assert redirect["state"] == state == "st-123"
    assert redirect["code"].startswith("4/0")
    assert set(redirect["scope"].split()) == {OPENID, EMAIL, PROFILE}

    # authorization_response makes oauthlib check the echoed state too.
    flow.fetch_token(authorization_response=location)
    credentials = flow.credentials
    assert credentials.token.startswith("ya29.")
    assert credentials.refresh_token.startswith("1//")
    assert _userinfo(emu, http, credentials.token).json() == {
        "sub": emu.add_account(ADA)["sub"],
        "email": ADA,
        "email_verified": True,
        "name": "Ada Lovelace",
    }

    old_token = credentials.token
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token != old_token
    assert _userinfo(emu, http, credentials.token).status_code == 200


def test_typed_email_signs_in_to_a_new_account(emu: GoogleEmulator, http: requests.Session) -> None:
    page = http.get(
        emu.endpoints["auth_uri"],
        params={"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": OPENID},
    )
    button = next(b for f in _forms(page.text) for b in f["buttons"] if b.get("id") == "use-email")
    response = _submit(emu, http, page.text, button, email="New.Person@Example.com")
    assert response.status_code == 302
    token = _exchange(emu, http, _query(response.headers["Location"])["code"]).json()
    assert _userinfo(emu, http, token["access_token"]).json()["email"] == "new.person@example.com"
    assert "new.person@example.com" in [a["email"] for a in http.get(emu.base_url + "/_emulator/accounts").json()]


# ---------------------------------------------------------------------- authorization codes


def test_code_is_single_use_and_reuse_revokes_its_tokens(emu: GoogleEmulator, http: requests.Session) -> None:
    code = _raw_code(emu, http, access_type="offline")["code"]
    first = _exchange(emu, http, code)
    assert first.status_code == 200
    tokens = first.json()
    assert _userinfo(emu, http, tokens["access_token"]).status_code == 200

    replay = _exchange(emu, http, code)
    assert replay.status_code == 400
    assert replay.json() == INVALID_GRANT
    # RFC 6749 §10.5: the replay means the code leaked, so what it produced is revoked.
    assert _userinfo(emu, http, tokens["access_token"]).status_code == 401
    with pytest.raises(RefreshError, match="invalid_grant"):
        _credentials(emu, tokens["refresh_token"]).refresh(google.auth.transport.requests.Request())


def test_code_expires_after_ten_minutes(emu: GoogleEmulator, http: requests.Session) -> None:
    code = _raw_code(emu, http)["code"]
    http.post(emu.base_url + "/_emulator/clock/advance", json={"seconds": 600}).raise_for_status()
    response = _exchange(emu, http, code)
    assert (response.status_code, response.json()) == (400, INVALID_GRANT)


def test_code_is_bound_to_its_redirect_uri(emu: GoogleEmulator, http: requests.Session) -> None:
    code = _raw_code(emu, http)["code"]
    response = _exchange(emu, http, code, redirect_uri=OTHER_REDIRECT_URI)
    assert (response.status_code, response.json()) == (400, INVALID_GRANT)
    assert _exchange(emu, http, code).status_code == 200


def test_code_is_bound_to_its_client(emu: GoogleEmulator, http: requests.Session) -> None:
    emu.register_client("other-client", "other-secret", [REDIRECT_URI])
    code = _raw_code(emu, http)["code"]
    response = _exchange(emu, http, code, client_id="other-client", client_secret="other-secret")
    assert (response.status_code, response.json()) == (400, INVALID_GRANT)


# ---------------------------------------------------------------------- PKCE


@pytest.mark.parametrize("method", ["S256", "plain"])
def test_wrong_pkce_verifier_is_refused(emu: GoogleEmulator, http: requests.Session, method: str) -> None:
    challenge = _s256(VERIFIER) if method == "S256" else VERIFIER
    code = _raw_code(emu, http, code_challenge=challenge, code_challenge_method=method)["code"]
    wrong = _exchange(emu, http, code, code_verifier="w" * 64)
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}
    # The refusal was about the verifier alone: the right one still works.
    assert _exchange(emu, http, code, code_verifier=VERIFIER).status_code == 200


def test_missing_pkce_verifier_is_refused(emu: GoogleEmulator, http: requests.Session) -> None:
    flow, location = _sign_in_with_flow(emu, http, [OPENID, EMAIL])
    code = _query(location)["code"]
    missing = _exchange(emu, http, code)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_grant"
    assert flow.code_verifier is not None
    assert _exchange(emu, http, code, code_verifier=flow.code_verifier).status_code == 200


def test_verifier_for_code_without_challenge_is_refused(emu: GoogleEmulator, http: requests.Session) -> None:
    code = _raw_code(emu, http)["code"]
    response = _exchange(emu, http, code, code_verifier=VERIFIER)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# ---------------------------------------------------------------------- authorization endpoint checks


def test_redirect_uri_mismatch_is_refused_without_redirect(emu: GoogleEmulator, http: requests.Session) -> None:
    response = http.get(
        emu.endpoints["auth_uri"],
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": "http://127.0.0.1:9/attacker",
            "response_type": "code",
            "scope": OPENID,
            "state": "s",
        },
        allow_redirects=False,
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri_mismatch" in response.text


def test_unknown_client_is_refused(emu: GoogleEmulator, http: requests.Session) -> None:
    page = http.get(
        emu.endpoints["auth_uri"],
        params={"client_id": "nobody", "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": OPENID},
        allow_redirects=False,
    )
    assert page.status_code == 401
    assert "Location" not in page.headers
    assert "invalid_client" in page.text

    code = _raw_code(emu, http)["code"]
    unauthorized = {"error": "invalid_client", "error_description": "Unauthorized"}
    for client_id, secret in (("nobody", CLIENT_SECRET), (CLIENT_ID, "wrong-secret")):
        response = _exchange(emu, http, code, client_id=client_id, client_secret=secret)
        assert (response.status_code, response.json()) == (401, unauthorized)
    # HTTP Basic client authentication (what Flow uses) is checked the same way.
    basic = http.post(
        emu.endpoints["token_uri"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, "wrong-secret"),
    )
    assert (basic.status_code, basic.json()) == (401, unauthorized)


def test_cancel_redirects_access_denied_with_state_echoed(emu: GoogleEmulator, http: requests.Session) -> None:
    state = "csrf/ä b+c&d=e"
    page = http.get(
        emu.endpoints["auth_uri"],
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": OPENID,
            "state": state,
        },
    )
    cancel = next(b for f in _forms(page.text) for b in f["buttons"] if b.get("id") == "cancel")
    response = _submit(emu, http, page.text, cancel)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    assert _query(location) == {"error": "access_denied", "state": state}


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": None}, "invalid_request"),
        ({"code_challenge": _s256(VERIFIER), "code_challenge_method": "S512"}, "invalid_request"),
    ],
)
def test_malformed_authorization_request_redirects_with_error(
    emu: GoogleEmulator, http: requests.Session, overrides: dict[str, str | None], error: str
) -> None:
    params: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": OPENID,
        "state": "keep-me",
        **overrides,
    }
    response = http.get(emu.endpoints["auth_uri"], params=params, allow_redirects=False)
    assert response.status_code == 302
    redirect = _query(response.headers["Location"])
    assert (redirect["error"], redirect["state"]) == (error, "keep-me")
    assert "code" not in redirect


# ---------------------------------------------------------------------- refresh tokens and scopes


def test_refresh_token_only_with_offline_access_and_consent(emu: GoogleEmulator, http: requests.Session) -> None:
    def tokens(email: str, **params: str) -> dict[str, Any]:
        response = _exchange(emu, http, _raw_code(emu, http, email=email, **params)["code"])
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    assert "refresh_token" not in tokens("linus@example.net", access_type="online")
    # The first consent of an account to this client yields a refresh token...
    assert "refresh_token" in tokens("grace@example.org", access_type="offline")
    # ...later ones only when consent is forced again.
    assert "refresh_token" not in tokens("grace@example.org", access_type="offline")
    assert "refresh_token" in tokens("grace@example.org", access_type="offline", prompt="consent")
    assert "refresh_token" not in tokens("grace@example.org", access_type="online", prompt="consent")


def test_include_granted_scopes_unions_scopes(
    emu: GoogleEmulator, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _raw_code(emu, http, scope=f"{OPENID} email", access_type="offline")
    # Google reports the short OpenID scopes in their URL form.
    assert first["scope"].split() == [OPENID, EMAIL]
    assert _exchange(emu, http, first["code"]).status_code == 200

    without = _raw_code(emu, http, scope=CALENDAR)
    assert without["scope"].split() == [CALENDAR]

    # The product's incremental authorization: ask only for the new scope, get the union.
    # oauthlib calls a grown scope set a change; the product must relax that check too.
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    flow, location = _sign_in_with_flow(emu, http, [CALENDAR])
    assert set(_query(location)["scope"].split()) == {OPENID, EMAIL, CALENDAR}
    token = flow.fetch_token(authorization_response=location)
    assert set(token["scope"]) == {OPENID, EMAIL, CALENDAR}
    grants = http.get(emu.base_url + "/_emulator/grants").json()
    assert [(g["email"], set(g["scopes"])) for g in grants] == [(ADA, {OPENID, EMAIL, CALENDAR})]


def test_granular_consent_grants_only_the_scopes_left_ticked(
    emu: GoogleEmulator, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacts = "https://www.googleapis.com/auth/contacts"
    first = _raw_code(emu, http, scope=f"{OPENID} email {CALENDAR}", access_type="offline")
    assert _exchange(emu, http, first["code"]).status_code == 200
    # Incremental authorization for contacts; the person unticks it at the consent page.
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    flow = _flow(emu, [OPENID, EMAIL, CALENDAR, contacts])
    url, _ = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="true")
    page = http.get(url).text
    assert f'type="checkbox" id="scope-3" name="scope" value="{contacts}" checked' in page
    assert f'name="scope" value="{OPENID}"' not in page  # identity is never a choice
    location = _choose_account(emu, http, page, ADA, untick=(contacts,))
    token = flow.fetch_token(authorization_response=location)
    # What was granted before stays (include_granted_scopes); the unticked scope is not granted.
    assert set(token["scope"]) == {OPENID, EMAIL, CALENDAR}
    # Left ticked, it is granted.
    flow = _flow(emu, [OPENID, EMAIL, CALENDAR, contacts])
    url, _ = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="true")
    token = flow.fetch_token(authorization_response=_choose_account(emu, http, http.get(url).text, ADA))
    assert set(token["scope"]) == {OPENID, EMAIL, CALENDAR, contacts}


def test_refresh_can_narrow_but_not_widen_scopes(emu: GoogleEmulator, http: requests.Session) -> None:
    code = _raw_code(emu, http, scope=f"{OPENID} {EMAIL} {CALENDAR}", access_type="offline")["code"]
    refresh_token = _exchange(emu, http, code).json()["refresh_token"]
    same = _refresh(emu, http, refresh_token).json()
    assert set(same["scope"].split()) == {OPENID, EMAIL, CALENDAR}
    assert "refresh_token" not in same
    assert "id_token" in same
    narrowed = _refresh(emu, http, refresh_token, scope=CALENDAR).json()
    assert narrowed["scope"] == CALENDAR
    assert "id_token" not in narrowed
    widened = _refresh(emu, http, refresh_token, scope=f"{CALENDAR} {PROFILE}")
    assert (widened.status_code, widened.json()["error"]) == (400, "invalid_scope")


def test_101st_refresh_token_invalidates_the_oldest(emu: GoogleEmulator, http: requests.Session) -> None:
    refresh_tokens = []
    for _ in range(101):
        code = _raw_code(emu, http, scope=EMAIL, access_type="offline", prompt="consent")["code"]
        refresh_tokens.append(_exchange(emu, http, code).json()["refresh_token"])

    oldest = _refresh(emu, http, refresh_tokens[0])
    assert (oldest.status_code, oldest.json()) == (400, REVOKED_REFRESH)
    for survivor in (refresh_tokens[1], refresh_tokens[-1]):
        assert _refresh(emu, http, survivor).status_code == 200
    (grant,) = emu.state.grants()
    assert (grant["live_refresh_tokens"], grant["revoked"]) == (100, False)


def test_unsupported_grant_type_is_refused(emu: GoogleEmulator, http: requests.Session) -> None:
    response = http.post(
        emu.endpoints["token_uri"],
        data={"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


# ---------------------------------------------------------------------- expiry and revocation


def test_access_token_expires_on_emulator_clock(emu: GoogleEmulator, http: requests.Session) -> None:
    tokens = _exchange(emu, http, _raw_code(emu, http, access_type="offline")["code"]).json()
    assert tokens["expires_in"] == 3599
    advance = emu.base_url + "/_emulator/clock/advance"
    http.post(advance, json={"seconds": 3590}).raise_for_status()
    assert _userinfo(emu, http, tokens["access_token"]).status_code == 200

    http.post(advance, json={"seconds": 10}).raise_for_status()
    expired = _userinfo(emu, http, tokens["access_token"])
    assert expired.status_code == 401
    assert expired.json() == {"error": "invalid_request", "error_description": "Invalid Credentials"}
    # Expiry is not revocation: the refresh token still gets a fresh access token.
    fresh = _refresh(emu, http, tokens["refresh_token"]).json()["access_token"]
    assert _userinfo(emu, http, fresh).status_code == 200


@pytest.mark.parametrize(("kind", "placement"), [("refresh_token", "query"), ("access_token", "form")])
def test_revoke_kills_refresh_token_and_is_recorded(
    emu: GoogleEmulator, http: requests.Session, kind: str, placement: str
) -> None:
    flow, location = _sign_in_with_flow(emu, http, [OPENID, EMAIL])
    flow.fetch_token(authorization_response=location)
    credentials = flow.credentials
    token = credentials.refresh_token if kind == "refresh_token" else credentials.token
    if placement == "query":
        response = http.post(emu.endpoints["revoke_uri"], params={"token": token})
    else:
        response = http.post(emu.endpoints["revoke_uri"], data={"token": token})
    assert (response.status_code, response.json()) == (200, {})

    with pytest.raises(RefreshError, match="invalid_grant") as refused:
        credentials.refresh(google.auth.transport.requests.Request())
    assert "Token has been expired or revoked." in str(refused.value)
    assert _userinfo(emu, http, credentials.token).status_code == 401
    revocations = http.get(emu.base_url + "/_emulator/revocations").json()
    assert [(r["token_kind"], r["email"], r["client_id"]) for r in revocations] == [(kind, ADA, CLIENT_ID)]
    (grant,) = http.get(emu.base_url + "/_emulator/grants").json()
    assert (grant["revoked"], grant["live_refresh_tokens"]) == (True, 0)


def test_user_revoking_access_gives_invalid_grant(emu: GoogleEmulator, http: requests.Session) -> None:
    refresh_token = _exchange(emu, http, _raw_code(emu, http, access_type="offline")["code"]).json()["refresh_token"]
    response = http.post(emu.base_url + "/_emulator/grants/revoke", json={"email": ADA, "client_id": CLIENT_ID})
    assert response.status_code == 200
    with pytest.raises(RefreshError, match="invalid_grant"):
        _credentials(emu, refresh_token).refresh(google.auth.transport.requests.Request())
    # Only calls of the revocation endpoint (the product's doing) are recorded.
    assert http.get(emu.base_url + "/_emulator/revocations").json() == []
    # Signing in again is a first consent once more, so a refresh token comes back.
    assert "refresh_token" in _exchange(emu, http, _raw_code(emu, http, access_type="offline")["code"]).json()


def test_unknown_token_revoke_is_400(emu: GoogleEmulator, http: requests.Session) -> None:
    invalid_token = {"error": "invalid_token", "error_description": "Bad Request"}
    unknown = http.post(emu.endpoints["revoke_uri"], params={"token": "1//not-a-token"})
    assert (unknown.status_code, unknown.json()) == (400, invalid_token)

    refresh_token = _exchange(emu, http, _raw_code(emu, http, access_type="offline")["code"]).json()["refresh_token"]
    assert http.post(emu.endpoints["revoke_uri"], params={"token": refresh_token}).status_code == 200
    again = http.post(emu.endpoints["revoke_uri"], params={"token": refresh_token})
    assert (again.status_code, again.json()) == (400, invalid_token)
    assert len(emu.state.revocations()) == 1


# ---------------------------------------------------------------------- id_token and keys


def test_the_name_claim_needs_the_profile_scope(emu: GoogleEmulator, http: requests.Session) -> None:
    """OpenID Connect: ``profile`` gives ``name``; asked for ``openid email`` only, neither the
    id_token nor userinfo carries it (the product must cope without it)."""
    request = google.auth.transport.requests.Request()
    for scopes, expected in (([OPENID, EMAIL], None), ([OPENID, EMAIL, PROFILE], "Ada Lovelace")):
        flow, location = _sign_in_with_flow(emu, http, scopes)
        flow.fetch_token(authorization_response=location)
        claims = google_id_token.verify_token(
            flow.credentials.id_token, request, audience=CLIENT_ID, certs_url=emu.endpoints["certs_uri"]
        )
        info = _userinfo(emu, http, flow.credentials.token).json()
        assert (claims["email"], info["email"]) == (ADA, ADA)
        assert (claims.get("name"), info.get("name")) == (expected, expected), scopes


def test_id_token_claims_verify_with_google_auth(emu: GoogleEmulator, http: requests.Session) -> None:
    flow, location = _sign_in_with_flow(emu, http, [OPENID, EMAIL, PROFILE], nonce="n-0S6_WzA2Mj")
    flow.fetch_token(authorization_response=location)
    credentials = flow.credentials
    request = google.auth.transport.requests.Request()

    claims = google_id_token.verify_token(
        credentials.id_token, request, audience=CLIENT_ID, certs_url=emu.endpoints["certs_uri"]
    )
    expected_at_hash = (
        base64.urlsafe_b64encode(hashlib.sha256(credentials.token.encode()).digest()[:16]).rstrip(b"=").decode()
    )
    assert claims["iss"] == emu.issuer == emu.base_url
    assert claims["aud"] == claims["azp"] == CLIENT_ID
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["at_hash"] == expected_at_hash
    assert claims["sub"] == emu.add_account(ADA)["sub"]
    assert (claims["email"], claims["email_verified"], claims["name"]) == (ADA, True, "Ada Lovelace")
    assert claims["exp"] - claims["iat"] == 3600

    # The JWKS form of the same key verifies it too.
    jwks_claims = google_id_token.verify_token(
        credentials.id_token, request, audience=CLIENT_ID, certs_url=emu.endpoints["jwks_uri"]
    )
    assert jwks_claims["sub"] == claims["sub"]
    with pytest.raises(ValueError, match="audience"):
        google_id_token.verify_token(
            credentials.id_token, request, audience="someone-else", certs_url=emu.endpoints["certs_uri"]
        )


def test_discovery_and_certificates(emu: GoogleEmulator, http: requests.Session) -> None:
    discovery = http.get(emu.base_url + "/.well-known/openid-configuration").json()
    endpoints = emu.endpoints
    assert discovery["issuer"] == endpoints["issuer"] == emu.issuer
    assert discovery["authorization_endpoint"] == endpoints["auth_uri"]
    assert discovery["token_endpoint"] == endpoints["token_uri"]
    assert discovery["userinfo_endpoint"] == endpoints["userinfo_uri"]
    assert discovery["revocation_endpoint"] == endpoints["revoke_uri"]
    assert discovery["jwks_uri"] == endpoints["jwks_uri"]
    assert "S256" in discovery["code_challenge_methods_supported"]
    certs = http.get(endpoints["certs_uri"]).json()
    (kid,) = certs
    assert certs[kid].startswith("-----BEGIN CERTIFICATE-----")
    assert [k["kid"] for k in http.get(endpoints["jwks_uri"]).json()["keys"]] == [kid]


# ---------------------------------------------------------------------- control API and secrecy


def test_control_api_over_http(emu: GoogleEmulator, http: requests.Session) -> None:
    control = emu.base_url + "/_emulator"
    created = http.post(f"{control}/accounts", json={"email": "Turing@Example.com", "name": "Alan Turing"})
    assert created.status_code == 201
    account = created.json()
    assert account["email"] == "turing@example.com"
    assert len(account["sub"]) == 21
    assert account["sub"].isdigit()
    assert http.post(f"{control}/accounts", json={"email": "turing@example.com"}).json() == account
    assert account in http.get(f"{control}/accounts").json()

    client = {"client_id": "c2", "client_secret": "s2", "redirect_uris": [REDIRECT_URI]}
    assert http.post(f"{control}/clients", json=client).status_code == 201
    assert http.post(f"{control}/clock/advance", json={"seconds": -1}).status_code == 400
    assert http.post(f"{control}/reset").status_code == 200
    assert http.get(f"{control}/accounts").json() == []
    # After a reset the same e-mail gets the same sub: it is derived, not random.
    assert emu.add_account("turing@example.com")["sub"] == account["sub"]


def test_issued_lists_the_secrets(emu: GoogleEmulator, http: requests.Session) -> None:
    code = _raw_code(emu, http, access_type="offline")["code"]
    tokens = _exchange(emu, http, code).json()
    refreshed = _refresh(emu, http, tokens["refresh_token"]).json()

    issued = http.get(emu.base_url + "/_emulator/issued").json()
    assert issued == emu.state.issued()
    assert issued["codes"] == [code]
    assert issued["access_tokens"] == [tokens["access_token"], refreshed["access_token"]]
    assert issued["refresh_tokens"] == [tokens["refresh_token"]]
    assert issued["id_tokens"] == [tokens["id_token"], refreshed["id_token"]]


def test_request_log_carries_no_secrets(
    emu: GoogleEmulator,
    http: requests.Session,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Only the server side: client libraries (urllib3, oauthlib) log URLs and tokens at DEBUG.
    server_loggers = ("devstack.google", "werkzeug")
    for name in server_loggers:
        caplog.set_level(logging.DEBUG, logger=name)
    flow, location = _sign_in_with_flow(emu, http, [OPENID, EMAIL])
    flow.fetch_token(authorization_response=location)
    http.post(emu.endpoints["revoke_uri"], params={"token": flow.credentials.refresh_token})
    http.get(emu.endpoints["userinfo_uri"], params={"access_token": flow.credentials.token})

    records = [r.getMessage() for r in caplog.records if r.name.startswith(server_loggers)]
    server_log = "\n".join(records) + capfd.readouterr().err
    # The log exists (so this test can fail) and names paths...
    assert "/o/oauth2/v2/auth" in server_log
    assert "/revoke" in server_log
    # ...but never a code, token or the client secret, raw or URL-encoded.
    secrets = [s for values in emu.state.issued().values() for s in values] + [CLIENT_SECRET]
    assert len(secrets) >= 5
    for secret in secrets:
        assert secret not in server_log
        assert quote(secret, safe="") not in server_log


# ------------------------------------------------------- why refresh tokens stop working (§2.5)

GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
DAY = 24 * 3600


def _offline_refresh_token(emu: GoogleEmulator, http: requests.Session, scope: str) -> str:
    code = _raw_code(emu, http, scope=scope, access_type="offline", prompt="consent")["code"]
    return str(_exchange(emu, http, code).json()["refresh_token"])


def test_refresh_token_unused_for_six_months_stops_working(emu: GoogleEmulator, http: requests.Session) -> None:
    used = _offline_refresh_token(emu, http, f"{EMAIL} {CALENDAR_EVENTS}")
    idle = _offline_refresh_token(emu, http, f"{EMAIL} {CALENDAR_EVENTS}")
    for _ in range(7):  # one use a month keeps a token alive
        emu.advance_clock(30 * DAY)
        assert _refresh(emu, http, used).status_code == 200
    refused = _refresh(emu, http, idle)
    assert (refused.status_code, refused.json()) == (400, REVOKED_REFRESH)


def test_testing_publishing_status_expires_refresh_tokens_after_7_days(
    emu: GoogleEmulator, http: requests.Session
) -> None:
    emu.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], testing=True)
    calendar = _offline_refresh_token(emu, http, f"{EMAIL} {CALENDAR_EVENTS}")
    identity_only = _offline_refresh_token(emu, http, f"{OPENID} {EMAIL}")
    emu.advance_clock(6 * DAY)
    assert _refresh(emu, http, calendar).status_code == 200
    emu.advance_clock(1 * DAY + 60)
    refused = _refresh(emu, http, calendar)
    assert (refused.status_code, refused.json()) == (400, REVOKED_REFRESH)
    assert _refresh(emu, http, identity_only).status_code == 200


def test_password_change_revokes_grants_with_gmail_scopes(emu: GoogleEmulator, http: requests.Session) -> None:
    gmail = _offline_refresh_token(emu, http, f"{EMAIL} {GMAIL_READONLY}")
    changed = http.post(f"{emu.base_url}/_emulator/accounts/password-change", json={"email": ADA})
    assert changed.json() == {"revoked_refresh_tokens": 1}
    refused = _refresh(emu, http, gmail)
    assert (refused.status_code, refused.json()) == (400, REVOKED_REFRESH)


def test_password_change_keeps_grants_without_gmail_scopes(emu: GoogleEmulator, http: requests.Session) -> None:
    calendar = _offline_refresh_token(emu, http, f"{EMAIL} {CALENDAR_EVENTS}")
    http.post(f"{emu.base_url}/_emulator/accounts/password-change", json={"email": ADA}).raise_for_status()
    assert _refresh(emu, http, calendar).status_code == 200


class _ScopeItems(HTMLParser):
    """Collects the consent page's scope list: each item's scope and the text a person reads."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, str] = {}
        self._scope: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        scope = dict(attrs).get("data-scope")
        if tag == "li" and scope:
            self._scope = scope
            self.items[scope] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self._scope = None

    def handle_data(self, data: str) -> None:
        if self._scope:
            self.items[self._scope] += data


def test_consent_page_describes_every_scope_the_product_asks_for(emu: GoogleEmulator, http: requests.Session) -> None:
    # Every scope the product may request (identity, each feature, and the calendar-list
    # scopes it accepts), as Google's consent screen shows them: in words, never as a URL.
    asked = scopes_for(FEATURE_SCOPES)
    asked += [s for s in sorted(CALENDAR_LIST_SCOPES) if s not in asked]
    page = http.get(
        emu.endpoints["auth_uri"],
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": " ".join(asked),
        },
    )
    assert page.status_code == 200, page.text
    parser = _ScopeItems()
    parser.feed(page.text)
    assert list(parser.items) == asked
    for scope, text in parser.items.items():
        assert text.strip(), scope
        assert "googleapis.com" not in text, (scope, text)


def test_the_emulators_pages_declare_their_icon(emu: GoogleEmulator, http: requests.Session) -> None:
    """A browser asks a page without one for /favicon.ico, which the emulator does not serve:
    the 404 would be the only console error a newcomer sees while signing in."""
    consent = http.get(
        emu.endpoints["auth_uri"],
        params={"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid"},
    )
    assert consent.status_code == 200, consent.text
    assert '<link rel="icon" href="data:,">' in consent.text
    ui = http.get(emu.base_url + "/_emulator/ui")
    assert ui.status_code == 200, ui.text
    assert '<link rel="icon" href="data:,">' in ui.text
