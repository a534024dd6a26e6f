"""Connecting a Microsoft account (issue 16) on the production graph over fakes: offered only
when configured, the credential stored is the grant's token cache (encrypted), the account is
one connection however often it signs in, and an organisation's refusal stores nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import ConnectionStatus, CredentialKind, Principal
from crmsync.errors import AuthorizationDenied, InvalidRequest, OAuthStateError
from crmsync.messaging.messages import ConnectionCheck
from crmsync.providers.microsoft.oauth import MicrosoftCredential
from crmsync.security.tokens import TokenContext
from tests.fakes.world import SETTINGS, FakeGraph

ALICE = Principal("tenant-a", "alice")
BINDING = "b" * 43
MICROSOFT = {"client_id": "ms-client", "client_secret_arn": "arn:fake:ms"}
ADA = "ada@contoso.test"
ADA_SUBJECT = "6f1c2a4e-0b7d-4c1e-9a3b-5d8e7f60c0de.1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5"


@pytest.fixture
def graph() -> FakeGraph:
    return FakeGraph(microsoft=MICROSOFT)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _connect(graph: FakeGraph, **approve: Any) -> str:
    start = graph.integrations.start_connect("microsoft", ALICE, binding=BINDING)
    answer = graph.account_access.oauth("microsoft").approve(start.authorization_url, **approve)
    return graph.integrations.complete_connect(
        "microsoft", state=answer["state"], code=answer["code"], error=None, binding=BINDING
    ).connection_id


def test_microsoft_is_offered_only_when_configured() -> None:
    """Like iCloud's ``enabled``: a deployment without a Microsoft client id offers no button
    and refuses to start a sign-in."""
    bare = FakeGraph()
    assert "microsoft" not in bare.integrations.providers
    with pytest.raises(InvalidRequest):
        bare.integrations.start_connect("microsoft", ALICE, binding=BINDING)
    assert "microsoft" in FakeGraph(microsoft=MICROSOFT).integrations.providers
    half = FakeGraph(microsoft={"client_id": "ms-client"})  # no secret: not usable
    assert "microsoft" not in half.integrations.providers


def test_the_real_connectors_open_a_microsoft_connection_with_its_token_cache() -> None:
    """The composition root registers Microsoft's kit only when configured; a stored
    connection's credential is a MicrosoftCredential (MSAL refreshes from the cache)."""
    configured = Graph(Settings.model_validate({**SETTINGS, "microsoft": MICROSOFT}))
    assert "microsoft" in configured.connectors.providers
    assert configured.oauth_features["microsoft"] == ("calendar",)
    assert configured.settings.microsoft_redirect_uri == "https://crm.example.com/oauth/microsoft/callback"
    credential = configured.microsoft_credential("{}", _connection(FakeGraph(microsoft=MICROSOFT)))
    assert isinstance(credential, MicrosoftCredential)
    bare = Graph(Settings.model_validate(SETTINGS))
    assert "microsoft" not in bare.connectors.providers
    assert "microsoft" not in bare.oauth_features


def _connection(graph: FakeGraph) -> Any:
    connection_id = _connect(graph)
    found = graph.connection_store.get_stored(ALICE, connection_id)
    assert found is not None
    return found.connection


def test_the_token_cache_is_stored_encrypted_not_the_refresh_token_alone(graph: FakeGraph) -> None:
    """What MSAL refreshes from is its serialized token cache: that is the connection's
    credential, KMS-encrypted under the connection's context."""
    connection_id = _connect(graph, email=ADA, name="Ada", subject=ADA_SUBJECT)
    found = graph.connection_store.get_stored(ALICE, connection_id)
    assert found is not None
    c = found.connection
    assert (c.provider, c.email, c.subject, c.credential_kind) == (
        "microsoft",
        ADA,
        ADA_SUBJECT,
        CredentialKind.OAUTH_TOKENS,
    )
    assert "Calendars.ReadWrite" in c.scopes
    cache = graph.account_access.oauth("microsoft").token_caches[-1]
    assert cache.encode() not in found.credential_ciphertext
    context = TokenContext(ALICE.tenant_id, ALICE.user_id, connection_id)
    assert graph.cipher.decrypt(found.credential_ciphertext, context) == cache


def test_the_same_tenant_and_object_id_is_one_connection_even_after_an_email_change(graph: FakeGraph) -> None:
    """The subject is ``{tid}.{oid}`` (stable): reconnecting, even after the user's sign-in
    name changed, updates the one connection; another account adds one."""
    first = _connect(graph, email=ADA, subject=ADA_SUBJECT)
    again = _connect(graph, email="ada.lovelace@contoso.test", subject=ADA_SUBJECT)
    other = _connect(graph, email="grace@outlook.test", subject="9188040d-6c67-4c5b-b112-36a304b66dad.0001")
    assert again == first
    assert other != first
    emails = sorted(c.email for c in graph.integrations.list_connections(ALICE))
    assert emails == ["ada.lovelace@contoso.test", "grace@outlook.test"]


def test_an_organisation_that_requires_admin_consent_stores_nothing(graph: FakeGraph) -> None:
    """``error=consent_required`` (AADSTS65001 after the "Need admin approval" page) ends the
    sign-in: the state is used up and nothing is stored or exchanged."""
    start = graph.integrations.start_connect("microsoft", ALICE, binding=BINDING)
    state = _query(start.authorization_url)["state"]
    with pytest.raises(AuthorizationDenied) as caught:
        graph.integrations.complete_connect(
            "microsoft", state=state, code=None, error="consent_required", binding=BINDING
        )
    assert caught.value.error == "consent_required"
    assert graph.integrations.list_connections(ALICE) == []
    assert graph.account_access.oauth("microsoft").calls["exchange_code"] == 0
    with pytest.raises(OAuthStateError):
        graph.integrations.complete_connect("microsoft", state=state, code="x", error=None, binding=BINDING)


def test_a_microsoft_state_does_not_finish_a_google_sign_in(graph: FakeGraph) -> None:
    """The state is bound to the provider that started it (and to the user's browser)."""
    start = graph.integrations.start_connect("microsoft", ALICE, binding=BINDING)
    answer = graph.account_access.oauth("microsoft").approve(start.authorization_url)
    with pytest.raises(OAuthStateError):
        graph.integrations.complete_connect(
            "google", state=answer["state"], code=answer["code"], error=None, binding=BINDING
        )
    assert graph.integrations.list_connections(ALICE) == []


def test_a_check_that_renews_the_credential_stores_the_new_one_encrypted(graph: FakeGraph) -> None:
    """Microsoft's refresh token replaces itself on every use (refresh-tokens): the check's
    renewed token cache is stored, encrypted under the connection's context, with the status."""
    connection_id = _connect(graph, email=ADA, subject=ADA_SUBJECT)
    before = graph.connection_store.get_stored(ALICE, connection_id)
    assert before is not None
    graph.account_access.credential_of(connection_id).renews_to = "renewed-token-cache"
    status = graph.integrations.check_connection(
        ConnectionCheck(tenant_id=ALICE.tenant_id, user_id=ALICE.user_id, connection_id=connection_id)
    )
    assert status is ConnectionStatus.CONNECTED
    after = graph.connection_store.get_stored(ALICE, connection_id)
    assert after is not None
    assert after.version == before.version + 1
    context = TokenContext(ALICE.tenant_id, ALICE.user_id, connection_id)
    assert graph.cipher.decrypt(after.credential_ciphertext, context) == "renewed-token-cache"
    assert b"renewed-token-cache" not in after.credential_ciphertext


def test_a_check_that_renews_nothing_keeps_the_credential(graph: FakeGraph) -> None:
    connection_id = _connect(graph, email=ADA, subject=ADA_SUBJECT)
    before = graph.connection_store.get_stored(ALICE, connection_id)
    assert before is not None
    graph.integrations.check_connection(
        ConnectionCheck(tenant_id=ALICE.tenant_id, user_id=ALICE.user_id, connection_id=connection_id)
    )
    after = graph.connection_store.get_stored(ALICE, connection_id)
    assert after is not None
    assert after.credential_ciphertext == before.credential_ciphertext
