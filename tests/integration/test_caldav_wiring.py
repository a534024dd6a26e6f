"""The composition root's iCloud kit against Radicale: credentials verified by discovery
before anything is stored, an ``app_password`` connection opened as the CalDAV adapter, and
its credential check failing with AuthRevoked once the password is revoked."""

from __future__ import annotations

import json
import logging

import pytest

from crmsync.app.wiring import Graph
from crmsync.domain import ConnectionStatus, CredentialKind, Principal, StoredConnection
from crmsync.errors import CredentialsRefused, ProviderError
from crmsync.messaging.messages import ConnectionCheck
from crmsync.ports.calendar import ChangeNotification
from crmsync.ports.errors import AuthRevoked
from crmsync.providers.caldav.account import AppPassword
from devstack.caldav import CalDavServer
from tests.fakes.world import FakeGraph
from tests.support.caldav_user import CalDavUser

pytestmark = pytest.mark.integration


ALICE = Principal("tenant-i", "ada")


def production(caldav_server: CalDavServer) -> FakeGraph:
    """Fakes for stores and queue, the production provider kits (FakeGraph's are fakes), the
    local CalDAV server as iCloud; loopback allowed as in the local stack."""
    graph = FakeGraph(caldav={"base_url": caldav_server.base_url, "private_servers": True})
    graph.__dict__["connectors"] = Graph.connectors.func(graph)
    return graph


def stored(graph: FakeGraph, connection_id: str) -> StoredConnection:
    found = graph.connection_store.get_stored(ALICE, connection_id)
    assert found is not None
    return found


def test_verified_credentials_open_the_caldav_calendars(
    caldav_server: CalDavServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = CalDavUser(caldav_server)
    graph = production(caldav_server)

    connection = graph.integrations.connect_with_password("icloud", ALICE, username=user.email, password=user.password)

    found = stored(graph, connection.connection_id)
    assert (connection.provider, connection.email) == ("icloud", user.email.lower())
    assert connection.credential_kind is CredentialKind.APP_PASSWORD
    secret = graph.connectors.secret(found)
    assert json.loads(secret)["principal_url"].startswith(caldav_server.base_url)
    port = graph.connectors.calendar(found)
    assert port.notification is ChangeNotification.POLLING
    assert [c.calendar_id for c in port.list_calendars()] == [user.calendar_url]
    graph.connectors.credential(found).check()
    assert user.password not in repr(AppPassword.from_secret(secret))
    assert user.password not in caplog.text

    caldav_server.remove_user(user.email)  # the app-specific password is revoked
    with pytest.raises(AuthRevoked):
        graph.connectors.credential(found).check()
    with pytest.raises(AuthRevoked):
        port.list_calendars()


def test_a_wrong_password_is_refused_and_explained_before_anything_is_stored(caldav_server: CalDavServer) -> None:
    user = CalDavUser(caldav_server)
    graph = production(caldav_server)

    with pytest.raises(CredentialsRefused):
        graph.integrations.connect_with_password("icloud", ALICE, username=user.email, password="not-" + user.password)

    assert graph.integrations.list_connections(ALICE) == []


def test_a_redirect_to_the_backends_own_network_is_not_followed(caldav_server: CalDavServer) -> None:
    """In production (no private servers) the local server's own redirect to loopback is
    refused: a server must not send the backend to its network."""
    user = CalDavUser(caldav_server)
    graph = FakeGraph(caldav={"base_url": caldav_server.base_url})
    graph.__dict__["connectors"] = Graph.connectors.func(graph)

    with pytest.raises(ProviderError) as refused:
        graph.integrations.connect_with_password("icloud", ALICE, username=user.email, password=user.password)

    assert "redirected" in refused.value.detail
    assert graph.integrations.list_connections(ALICE) == []


def test_a_password_revoked_later_marks_the_connection_needs_reauthorization(caldav_server: CalDavServer) -> None:
    """As Google's invalid_grant: the health check's PROPFIND answers 401."""
    user = CalDavUser(caldav_server)
    graph = production(caldav_server)
    connection = graph.integrations.connect_with_password("icloud", ALICE, username=user.email, password=user.password)
    check = ConnectionCheck(tenant_id=ALICE.tenant_id, user_id=ALICE.user_id, connection_id=connection.connection_id)
    assert graph.integrations.check_connection(check) is ConnectionStatus.CONNECTED

    caldav_server.remove_user(user.email)

    assert graph.integrations.check_connection(check) is ConnectionStatus.NEEDS_REAUTH


@pytest.mark.parametrize("text", ["jörg-𝄞", "山田"])
def test_names_and_passwords_beyond_latin_1_are_sent_as_utf_8(caldav_server: CalDavServer, text: str) -> None:
    """RFC 7617 §2.1: Basic credentials in UTF-8 (requests encodes str credentials as
    Latin-1, which raised UnicodeEncodeError, a 500 from the API, for any other character;
    found by the API fuzzer). Such a name the server does not know is refused, not a crash;
    such a password signs in. (The name stays ASCII where it signs in: Radicale puts it in
    the principal's path, which the local fault layer does not carry beyond ASCII.)"""
    user = CalDavUser(caldav_server)
    graph = production(caldav_server)
    with pytest.raises(CredentialsRefused):
        graph.integrations.connect_with_password("icloud", ALICE, username=f"{text}@example.com", password=text)

    email = f"utf8-{user.email}"
    password = caldav_server.add_user(email, password=f"{text}-secret")
    connection = graph.integrations.connect_with_password("icloud", ALICE, username=email, password=password)

    assert password == f"{text}-secret"
    graph.connectors.credential(stored(graph, connection.connection_id)).check()  # signs in again
