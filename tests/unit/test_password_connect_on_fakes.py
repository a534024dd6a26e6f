"""Connecting iCloud (or another CalDAV server) with an Apple ID and an app-specific password
(issue 15 deliverable 1), on the production graph over fakes: validated by the provider before
anything is stored, stored only KMS-encrypted, never logged, a refusal explained, a server
address that points at the backend's own network refused."""

from __future__ import annotations

import logging

import pytest

from crmsync.domain import ConnectionStatus, CredentialKind, Principal
from crmsync.errors import CredentialsRefused, InvalidRequest, ProviderError
from crmsync.messaging.messages import ConnectionCheck
from crmsync.ports.errors import ProviderNotFound
from crmsync.security.tokens import TokenContext, TokenDecryptionError
from crmsync.security.urls import UnsafeServerUrl, check_server_url
from tests.fakes.accounts import FakePasswordLogin
from tests.fakes.world import FakeGraph

ALICE = Principal("tenant-a", "alice")
BOB = Principal("tenant-a", "bob")
APPLE_ID = "ada@icloud.example"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"


@pytest.fixture
def graph() -> FakeGraph:
    graph = FakeGraph()
    login(graph).add_account(APPLE_ID, APP_PASSWORD)
    return graph


def login(graph: FakeGraph) -> FakePasswordLogin:
    found = graph.account_access.password_login("icloud")
    assert isinstance(found, FakePasswordLogin)
    return found


def connect(graph: FakeGraph, principal: Principal = ALICE, **fields: str) -> str:
    given = {"username": APPLE_ID, "password": APP_PASSWORD, **fields}
    return graph.integrations.connect_with_password("icloud", principal, **given).connection_id  # type: ignore[arg-type]


def test_a_verified_account_is_stored_with_its_password_only_encrypted(
    graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    connection_id = connect(graph)

    found = graph.connection_store.get_stored(ALICE, connection_id)
    assert found is not None
    c = found.connection
    assert (c.provider, c.email, c.status) == ("icloud", APPLE_ID, ConnectionStatus.CONNECTED)
    assert c.credential_kind is CredentialKind.APP_PASSWORD
    assert APP_PASSWORD.encode() not in found.credential_ciphertext
    context = TokenContext(ALICE.tenant_id, ALICE.user_id, connection_id)
    clear = graph.cipher.decrypt(found.credential_ciphertext, context)
    assert APP_PASSWORD in clear
    with pytest.raises(TokenDecryptionError):
        graph.cipher.decrypt(found.credential_ciphertext, TokenContext(BOB.tenant_id, BOB.user_id, connection_id))
    assert APP_PASSWORD not in caplog.text
    assert APP_PASSWORD not in repr(c)
    (queued,) = graph.queue.take()
    assert isinstance(queued, ConnectionCheck)
    assert (queued.connection_id, queued.reason) == (connection_id, "connected")


def test_connecting_the_same_apple_id_again_updates_the_connection(graph: FakeGraph) -> None:
    first = connect(graph)
    login(graph).add_account(APPLE_ID, "wxyz-wxyz-wxyz-wxyz")

    again = connect(graph, password="wxyz-wxyz-wxyz-wxyz")

    assert again == first
    assert [c.connection_id for c in graph.integrations.list_connections(ALICE)] == [first]
    assert (
        connect(graph, BOB, password="wxyz-wxyz-wxyz-wxyz") != first
    )  # another user's connection of the same account is theirs


def test_a_wrong_app_specific_password_is_explained_and_nothing_is_stored(
    graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(CredentialsRefused) as refused:
        connect(graph, password="zzzz-zzzz-zzzz-zzzz")

    assert "app-specific password" in refused.value.detail
    assert "zzzz-zzzz-zzzz-zzzz" not in refused.value.detail
    assert "zzzz-zzzz-zzzz-zzzz" not in caplog.text
    assert graph.integrations.list_connections(ALICE) == []
    assert graph.queue.take() == []


def test_an_apple_id_password_instead_of_an_app_specific_one_is_told_apart(graph: FakeGraph) -> None:
    with pytest.raises(CredentialsRefused) as refused:
        connect(graph, password="MyAppleIdPassw0rd!")

    assert "not your Apple ID password" in refused.value.detail


def test_blank_or_control_characters_are_refused_before_asking_the_server(graph: FakeGraph) -> None:
    for fields in ({"username": ""}, {"password": "  "}, {"username": "ada\n@icloud.example"}, {"password": "a\x00b"}):
        with pytest.raises(InvalidRequest):
            connect(graph, **fields)
    assert login(graph).seen == []


def test_a_server_that_cannot_be_reached_or_has_no_caldav_stores_nothing(graph: FakeGraph) -> None:
    login(graph).fail_next(ProviderError("connection refused", retryable=True))
    with pytest.raises(ProviderError):
        connect(graph)
    login(graph).fail_next(ProviderNotFound("no CalDAV"))
    with pytest.raises(ProviderError) as missing:
        connect(graph)
    assert "CalDAV" in missing.value.detail
    assert graph.integrations.list_connections(ALICE) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # the instance metadata service
        "https://169.254.169.254/",
        "https://127.0.0.1:5232/",
        "https://[::1]/",
        "https://10.0.0.7/",
        "https://192.168.1.20/dav/",
        "https://localhost/",
        "https://user:secret@caldav.example.com/",
        "ftp://caldav.example.com/",
        "https://no-such-host.invalid/",
        "javascript:alert(1)",
    ],
)
def test_a_server_address_on_the_backends_own_network_is_refused(graph: FakeGraph, url: str) -> None:
    with pytest.raises(InvalidRequest):
        connect(graph, server_url=url)
    assert login(graph).seen == []


def test_loopback_servers_are_allowed_only_where_configured() -> None:
    assert check_server_url("http://127.0.0.1:5232/", private=True) == "http://127.0.0.1:5232/"
    with pytest.raises(UnsafeServerUrl):
        check_server_url("http://127.0.0.1:5232/")
    with pytest.raises(UnsafeServerUrl):
        check_server_url("http://10.1.2.3/", private=True)  # private is loopback, not the VPC


def test_another_provider_or_a_disabled_one_is_refused(graph: FakeGraph) -> None:
    with pytest.raises(InvalidRequest):
        graph.integrations.connect_with_password("google", ALICE, username=APPLE_ID, password=APP_PASSWORD)
