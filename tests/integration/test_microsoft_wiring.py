"""The composition root's Microsoft kit against the Microsoft emulator with Graph mounted (as
the local stack runs it): a stored connection's token cache opens ``GraphCalendar`` through
MSAL; the cached access token serves while valid (nothing stored); an expired one is redeemed
and the renewed cache stored, KMS-encrypted, on the version read; a lost race to another
writer keeps theirs and does not fail the call; a revoked grant is AuthRevoked. Stores and the
cipher are the fakes (their contract is tests/contract/test_stores.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from crmsync.app.wiring import Graph
from crmsync.domain import ConnectionStatus, Principal, StoredConnection
from crmsync.logic.integrations import connection_id_for
from crmsync.ports.calendar import ChangeNotification
from crmsync.ports.errors import AuthRevoked
from crmsync.security.secrets import new_pkce_verifier, new_secret
from crmsync.security.tokens import TokenContext
from devstack.microsoft.emulator import MicrosoftEmulator
from devstack.microsoft.graph_mount import GraphMount, mount_graph
from tests.fakes.world import FakeGraph
from tests.support.microsoft_consent import consent

pytestmark = pytest.mark.integration

CLIENT_ID = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
SECRET = "wiring-test-secret"
#: FakeGraph's public base URL + the callback path (the settings' microsoft_redirect_uri); never followed.
REDIRECT_URI = "https://crm.example.com/oauth/microsoft/callback"
ADA = "ada@contoso.test"
ALICE = Principal("tenant-ms", "alice")


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
    emulator.register_client(CLIENT_ID, SECRET, [REDIRECT_URI])
    emulator.seed_demo_users()
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.trust_bundle))
    return emulator


@pytest.fixture
def graph(emu: MicrosoftEmulator) -> FakeGraph:
    """Fake stores and cipher, the production connectors with Microsoft configured."""
    microsoft = {
        "client_id": CLIENT_ID,
        "client_secret_arn": "arn:fake",
        "authority": emu.authority(),
        "graph_root": f"{emu.base_url}/v1.0",
    }
    fake = FakeGraph(microsoft=microsoft)
    fake.__dict__["_microsoft_secret"] = lambda: SECRET
    fake.__dict__["connectors"] = Graph.connectors.func(fake)
    return fake


def expired(token_cache: str) -> str:
    """The cache an hour later: its access tokens have expired (MSAL reads ``expires_on``)."""
    cache = json.loads(token_cache)
    for entry in cache["AccessToken"].values():
        entry["expires_on"] = entry["extended_expires_on"] = str(int(time.time()) - 60)
    return json.dumps(cache)


def refresh_tokens(token_cache: str) -> set[str]:
    return {t["secret"] for t in json.loads(token_cache)["RefreshToken"].values()}


def connect(graph: FakeGraph, *, stale: bool = False) -> StoredConnection:
    """Ada signs in (the emulator's consent page); her token cache stored as the connect flow
    stores it (``stale``: an hour later, its access token expired)."""
    oauth = graph.microsoft_oauth
    verifier, scopes = new_pkce_verifier(), oauth.scopes_for(["calendar"])
    url = oauth.authorization_url(state=new_secret(), code_verifier=verifier, scopes=scopes, login_hint=None)
    code = parse_qs(urlsplit(consent(url, ADA)).query)["code"][0]
    grant = oauth.exchange_code(code=code, code_verifier=verifier, scopes=scopes)
    subject = oauth.identity(grant).subject
    connection_id = connection_id_for(ALICE, "microsoft", subject)
    assert grant.credential is not None
    cache = expired(grant.credential) if stale else grant.credential
    graph.connection_store.upsert(
        ALICE,
        connection_id=connection_id,
        provider="microsoft",
        subject=subject,
        email=ADA,
        display_name=None,
        scopes=grant.scopes,
        credential_ciphertext=graph.cipher.encrypt(cache, TokenContext(ALICE.tenant_id, ALICE.user_id, connection_id)),
    )
    stored = graph.connection_store.get_stored(ALICE, connection_id)
    assert stored is not None
    return stored


def reread(graph: FakeGraph, stored: StoredConnection) -> StoredConnection:
    found = graph.connection_store.get_stored(ALICE, stored.connection.connection_id)
    assert found is not None
    return found


def test_a_valid_cached_access_token_opens_the_outlook_calendars_and_nothing_is_stored(graph: FakeGraph) -> None:
    stored = connect(graph)

    assert graph.connectors.reaches_calendars(stored.connection)
    assert "microsoft" not in graph.connectors.polled_providers  # Graph subscriptions instead
    port = graph.connectors.calendar(stored)
    assert port.notification is ChangeNotification.SUBSCRIPTION
    calendars = port.list_calendars()

    assert [(c.name, c.primary) for c in calendars] == [("Calendar", True)]
    assert reread(graph, stored) == stored


def test_an_expired_access_token_is_redeemed_and_the_renewed_cache_stored_on_the_version_read(
    graph: FakeGraph,
) -> None:
    stored = connect(graph, stale=True)
    old = graph.connectors.secret(stored)

    port = graph.connectors.calendar(stored)
    port.list_calendars()
    port.list_calendars()

    after = reread(graph, stored)
    assert after.version == stored.version + 1  # stored once
    assert after.connection.status is ConnectionStatus.CONNECTED
    renewed = graph.connectors.secret(after)
    assert refresh_tokens(renewed)
    assert refresh_tokens(renewed).isdisjoint(refresh_tokens(old))
    graph.connectors.calendar(after).list_calendars()  # its access token is valid: nothing more
    assert reread(graph, after) == after


def test_a_renewal_that_loses_the_race_keeps_the_newer_cache_and_the_call_succeeds(graph: FakeGraph) -> None:
    stored = connect(graph, stale=True)
    port = graph.connectors.calendar(stored)
    checked = graph.connection_store.set_status(
        ALICE, stored.connection.connection_id, ConnectionStatus.CONNECTED, None, version=stored.version
    )
    assert checked is not None  # the health check wrote the connection meanwhile
    between = reread(graph, stored)

    assert [c.name for c in port.list_calendars()] == ["Calendar"]

    assert reread(graph, stored) == between


def test_a_grant_revoked_at_microsoft_is_auth_revoked(graph: FakeGraph, emu: MicrosoftEmulator) -> None:
    stored = connect(graph, stale=True)
    emu.revoke_grants(ADA, CLIENT_ID)

    with pytest.raises(AuthRevoked):
        graph.connectors.calendar(stored).list_calendars()
    assert reread(graph, stored) == stored


class RefusesRenewals:
    """The connection store, whose credential writes fail (DynamoDB throttling, say)."""

    def __init__(self, store: object) -> None:
        self._store = store

    def renew_credential(self, *args: object, **kwargs: object) -> int | None:
        raise RuntimeError("ProvisionedThroughputExceededException")

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_a_renewal_that_cannot_be_stored_is_logged_and_the_call_succeeds(
    graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    stored = connect(graph, stale=True)
    graph.__dict__["connection_store"] = RefusesRenewals(graph.stores.connection_store)

    assert [c.name for c in graph.connectors.calendar(stored).list_calendars()] == ["Calendar"]

    assert "could not store a renewed token cache" in caplog.text
    assert reread(graph, stored) == stored
    for secret in refresh_tokens(graph.connectors.secret(stored)):
        assert secret not in caplog.text
