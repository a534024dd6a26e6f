""" "Sign in with Microsoft" (issue 16) through the local stack: the API Gateway stand-in, the
real handlers in Lambda-like workers (MSAL in the callback and the health check, trusting the
emulator only through REQUESTS_CA_BUNDLE as the stack sets it), the Microsoft emulator's
consent page driven over https as a browser would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from crmsync.domain.sweeps import Sweep
from tests.support.microsoft_consent import consent
from tests.support.sweeps import fire_sweep_for

pytestmark = [pytest.mark.e2e]

ADMIN_ONLY = "linus@fabrikam.test"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(autouse=True)
def _trust_the_emulator(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's requests (the browser here) trust the emulator as the functions do:
    REQUESTS_CA_BUNDLE overrides a Session's verify (psf/requests#4726), so it is set, not verify."""
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.microsoft.trust_bundle))


class Browser:
    """One person's browser: cookies persist; API calls carry the CRM's bearer token."""

    def __init__(self, stack: Any, tenant: str, user: str) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.token = stack.issue_token(tenant, user)

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.http.request(method, self.stack.api_url + path, headers=headers, timeout=30, **kw)

    def start(self, **body: Any) -> str:
        response = self.api("POST", "/v1/integrations/microsoft/authorize", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["authorization_url"])

    def callback(self, url: str) -> dict[str, str]:
        """Follow Microsoft's redirect to our callback; the settings page's query."""
        assert url.startswith(self.stack.api_url + "/oauth/microsoft/callback?"), url
        response = self.http.get(url, allow_redirects=False, timeout=30)
        assert response.status_code == 303, response.text
        location = response.headers["Location"]
        assert location.startswith(self.stack.api_url + "/settings/integrations?")
        assert response.headers["Cache-Control"] == "no-store"
        return query(location)

    def connect(self, email: str, **kw: Any) -> dict[str, str]:
        return self.callback(consent(self.start(), email, session=self.http, **kw))

    def listing(self) -> dict[str, Any]:
        response = self.api("GET", "/v1/integrations")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def alice(stack: Any, unique: str) -> Iterator[Browser]:
    browser = Browser(stack, f"tenant-{unique}", "alice")
    yield browser
    browser.http.close()


@pytest.fixture
def bob(stack: Any, unique: str) -> Iterator[Browser]:
    browser = Browser(stack, f"tenant-{unique}", "bob")
    yield browser
    browser.http.close()


@pytest.fixture
def work_account(stack: Any, unique: str) -> str:
    """A work account of this test's own at the emulator (contoso): no other test's grants."""
    email = f"ada-{unique}@contoso.test"
    stack.microsoft.add_user(email, f"Ada {unique}")
    return email


def test_microsoft_is_offered_and_its_consent_url_is_the_configured_authority(stack: Any, alice: Browser) -> None:
    """The stack configures MicrosoftClientId: ``microsoft`` is among the providers, and the
    consent URL is the emulator's common authority with PKCE S256 and the registered redirect."""
    assert "microsoft" in alice.listing()["providers"]
    url = alice.start()
    assert url.startswith(stack.microsoft.authority("common") + "/oauth2/v2.0/authorize?")
    asked = query(url)
    assert asked["redirect_uri"] == f"{stack.api_url}/oauth/microsoft/callback"
    assert asked["code_challenge_method"] == "S256"
    assert "Calendars.ReadWrite" in asked["scope"].split()


def test_sign_in_connects_the_account_reconnecting_keeps_one_and_disconnect_removes_it(
    stack: Any, alice: Browser, work_account: str
) -> None:
    """Consent page → callback → the connection listed with the account's email; signing in
    again updates the same connection (subject ``{tid}.{oid}``); Disconnect deletes it."""
    first = alice.connect(work_account)
    assert "connected" in first, first
    items = alice.listing()["items"]
    assert [(i["provider"], i["email"], i["status"]) for i in items] == [("microsoft", work_account, "connected")]
    assert all("refresh" not in json.dumps(i).lower() for i in items)
    again = alice.connect(work_account)
    assert again["connected"] == first["connected"]
    assert [i["id"] for i in alice.listing()["items"]] == [first["connected"]]
    assert alice.api("DELETE", f"/v1/integrations/{first['connected']}").status_code == 204
    assert alice.listing()["items"] == []


def test_the_health_check_refreshes_through_msal_until_the_user_revokes(
    stack: Any, alice: Browser, work_account: str, unique: str
) -> None:
    """The worker's check refreshes the stored token cache with MSAL over https (the functions
    trust the emulator through REQUESTS_CA_BUNDLE); once the user's sessions are revoked the
    token endpoint answers invalid_grant and the connection needs re-authorization."""
    connected = alice.connect(work_account)["connected"]
    stack.drain()
    assert [i["status"] for i in alice.listing()["items"]] == ["connected"]
    stack.microsoft.revoke_grants(work_account)
    fire_sweep_for(stack, Sweep.HEALTH, f"tenant-{unique}", "alice", connected)
    stack.drain()
    items = alice.listing()["items"]
    assert [(i["id"], i["status"]) for i in items] == [(connected, "needs_reauth")]


def test_an_organisation_requiring_admin_consent_ends_with_that_reason(stack: Any, alice: Browser) -> None:
    """Linus's organisation lets only administrators consent ("Need admin approval",
    AADSTS90094; back to the app with consent_required/AADSTS65001): the page is told
    ``admin_consent_required`` and nothing is stored."""
    assert alice.connect(ADMIN_ONLY) == {"error": "admin_consent_required"}
    assert alice.listing()["items"] == []


def test_cancel_is_access_denied(stack: Any, alice: Browser, work_account: str) -> None:
    """The user cancels on Microsoft's page: access_denied, as Google's cancel."""
    assert alice.connect(work_account, cancel=True) == {"error": "access_denied"}
    assert alice.listing()["items"] == []


def test_the_state_is_single_use_and_bound_to_the_user(
    stack: Any, alice: Browser, bob: Browser, work_account: str
) -> None:
    """A replayed callback is refused; so is Alice's callback in Bob's browser, without using
    up Alice's sign-in; and one without the browser binding."""
    bob.start()  # Bob has a browser binding of his own
    url = consent(alice.start(), work_account, session=alice.http)
    assert bob.callback(url) == {"error": "state_mismatch"}
    stranger = requests.get(url, allow_redirects=False, timeout=30)
    assert query(stranger.headers["Location"]) == {"error": "state_mismatch"}
    assert "connected" in alice.callback(url)
    assert alice.callback(url) == {"error": "state_unknown"}
    assert bob.listing()["items"] == []
    assert len(alice.listing()["items"]) == 1


def test_no_code_or_token_reaches_the_logs(stack: Any, alice: Browser, work_account: str) -> None:
    """Every log line of a connect and a check (workers, API Gateway, emulator) is free of the
    authorization code and the client secret."""
    url = consent(alice.start(), work_account, session=alice.http)
    code = query(url)["code"]
    assert "connected" in alice.callback(url)
    stack.drain()
    logged = stack.logs.text()
    assert "/oauth/microsoft/callback" in logged
    assert code not in logged
    assert stack.microsoft_client_secret not in logged
