"""Graph mounted on the Microsoft emulator's port (devstack.microsoft.graph_mount), as the
local stack runs it: a Graph call is authenticated by an access token the identity platform
issued (Graph answers 401 InvalidAuthenticationToken otherwise, learn.microsoft.com/graph/errors),
the signed-in user has a mailbox with its default calendar, control routes are served beside."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from crmsync.config import MicrosoftSettings
from crmsync.providers.microsoft.oauth import MicrosoftOAuth
from crmsync.security.secrets import new_pkce_verifier, new_secret
from devstack.microsoft.emulator import MicrosoftEmulator
from devstack.microsoft.graph_mount import GraphMount, mount_graph
from tests.support.microsoft_consent import consent

pytestmark = pytest.mark.integration

CLIENT_ID = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
REDIRECT_URI = "http://127.0.0.1:9/oauth/microsoft/callback"


@pytest.fixture(scope="module")
def mounted() -> Iterator[tuple[MicrosoftEmulator, GraphMount]]:
    emu = MicrosoftEmulator()
    mount = mount_graph(emu)
    with emu:
        yield emu, mount


@pytest.fixture
def emu(mounted: tuple[MicrosoftEmulator, GraphMount], monkeypatch: pytest.MonkeyPatch) -> MicrosoftEmulator:
    emulator, _ = mounted
    emulator.reset()
    emulator.register_client(CLIENT_ID, "graph-mount-secret", [REDIRECT_URI])
    emulator.seed_demo_users()
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.trust_bundle))
    return emulator


def _access_token(emu: MicrosoftEmulator, email: str) -> str:
    settings = MicrosoftSettings(client_id=CLIENT_ID, client_secret_arn="unused", authority=emu.authority())
    oauth = MicrosoftOAuth(settings, redirect_uri=REDIRECT_URI, client_secret=lambda: "graph-mount-secret")
    verifier, scopes = new_pkce_verifier(), oauth.scopes_for(["calendar"])
    url = oauth.authorization_url(state=new_secret(), code_verifier=verifier, scopes=scopes, login_hint=None)
    code = parse_qs(urlsplit(consent(url, email)).query)["code"][0]
    return oauth.exchange_code(code=code, code_verifier=verifier, scopes=scopes).access_token


def test_a_signed_in_user_reads_its_profile_and_default_calendar(emu: MicrosoftEmulator) -> None:
    """Whoever signs in has a mailbox on first use (every Outlook account has a calendar)."""
    token = _access_token(emu, "ada@contoso.test")
    headers = {"Authorization": f"Bearer {token}"}
    me = requests.get(f"{emu.base_url}/v1.0/me", headers=headers, timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["userPrincipalName"] == "ada@contoso.test"
    calendars = requests.get(f"{emu.base_url}/v1.0/me/calendars", headers=headers, timeout=10).json()["value"]
    assert [c["name"] for c in calendars] == ["Calendar"]


def test_graph_refuses_a_missing_unknown_or_revoked_token(emu: MicrosoftEmulator) -> None:
    token = _access_token(emu, "grace@outlook.test")
    assert requests.get(f"{emu.base_url}/v1.0/me", timeout=10).status_code == 401
    unknown = requests.get(f"{emu.base_url}/v1.0/me", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "InvalidAuthenticationToken"
    emu.revoke_grants("grace@outlook.test", access_tokens=True)
    revoked = requests.get(f"{emu.base_url}/v1.0/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert revoked.status_code == 401


def test_control_routes_are_mounted_and_reset_forgets_the_mailboxes(
    emu: MicrosoftEmulator, mounted: tuple[MicrosoftEmulator, GraphMount]
) -> None:
    _, mount = mounted
    mount.add_user("linus@fabrikam.test")
    health = requests.get(f"{emu.base_url}/_microsoft/graph/health", timeout=10)
    assert health.status_code == 200, health.text
    listed = requests.get(f"{emu.base_url}/_microsoft/graph/users/linus@fabrikam.test/calendars", timeout=10)
    assert listed.status_code == 200, listed.text
    emu.reset()
    assert "linus@fabrikam.test" not in mount.state.users
