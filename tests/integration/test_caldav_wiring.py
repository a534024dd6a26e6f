"""The composition root's iCloud kit against Radicale: credentials verified by discovery
before anything is stored, an ``app_password`` connection opened as the CalDAV adapter, and
its credential check failing with AuthRevoked once the password is revoked."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from crmsync.app.wiring import Graph
from crmsync.domain import Connection, ConnectionStatus, CredentialKind, Principal, StoredConnection
from crmsync.messaging.messages import ConnectionCheck
from crmsync.ports.calendar import ChangeNotification
from crmsync.ports.errors import AuthRevoked
from crmsync.providers.caldav.account import AppPassword
from crmsync.security.tokens import TokenContext
from devstack.caldav import CalDavServer
from tests.fakes.world import FakeGraph
from tests.support.caldav_user import CalDavUser

pytestmark = pytest.mark.integration


def stored(graph: FakeGraph, secret: str, email: str) -> StoredConnection:
    now = datetime.now(UTC)
    connection = Connection(
        tenant_id="tenant-i",
        user_id="ada",
        connection_id="c" * 32,
        provider="icloud",
        subject=email,
        email=email,
        display_name=None,
        scopes=(),
        status=ConnectionStatus.CONNECTED,
        status_reason=None,
        created_at=now,
        updated_at=now,
        last_checked_at=None,
        credential_kind=CredentialKind.APP_PASSWORD,
    )
    context = TokenContext(connection.tenant_id, connection.user_id, connection.connection_id)
    return StoredConnection(connection, graph.cipher.encrypt(secret, context), 1)


def test_verified_credentials_open_the_caldav_calendars(
    caldav_server: CalDavServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = CalDavUser(caldav_server)
    graph = FakeGraph(caldav={"base_url": caldav_server.base_url})

    connectors = Graph.connectors.func(graph)  # the production kits (FakeGraph's are fakes)

    secret = graph.verify_caldav(user.email, user.password)
    connection = stored(graph, secret, user.email)
    port = connectors.calendar(connection)

    assert json.loads(secret)["principal_url"].startswith(caldav_server.base_url)
    assert port.notification is ChangeNotification.POLLING
    assert [c.calendar_id for c in port.list_calendars()] == [user.calendar_url]
    connectors.credential(connection).check()
    assert user.password not in repr(AppPassword.from_secret(secret))
    assert user.password not in caplog.text

    caldav_server.remove_user(user.email)  # the app-specific password is revoked
    with pytest.raises(AuthRevoked):
        connectors.credential(connection).check()
    with pytest.raises(AuthRevoked):
        port.list_calendars()


def test_a_wrong_password_is_refused_before_anything_is_stored(caldav_server: CalDavServer) -> None:
    user = CalDavUser(caldav_server)
    graph = FakeGraph(caldav={"base_url": caldav_server.base_url})

    with pytest.raises(AuthRevoked):
        graph.verify_caldav(user.email, "not-" + user.password)


def test_a_password_revoked_later_marks_the_connection_needs_reauthorization(caldav_server: CalDavServer) -> None:
    """As Google's invalid_grant: the health check's PROPFIND answers 401."""
    user = CalDavUser(caldav_server)
    graph = FakeGraph(caldav={"base_url": caldav_server.base_url})
    graph.__dict__["connectors"] = Graph.connectors.func(graph)  # the production kits
    principal = Principal("tenant-i", "ada")
    connection_id = "d" * 32
    context = TokenContext(principal.tenant_id, principal.user_id, connection_id)
    graph.connection_store.upsert(
        principal,
        connection_id=connection_id,
        provider="icloud",
        subject=user.email,
        email=user.email,
        display_name=None,
        scopes=(),
        credential_ciphertext=graph.cipher.encrypt(graph.verify_caldav(user.email, user.password), context),
        credential_kind=CredentialKind.APP_PASSWORD,
    )
    check = ConnectionCheck(tenant_id=principal.tenant_id, user_id=principal.user_id, connection_id=connection_id)
    assert graph.integrations.check_connection(check) is ConnectionStatus.CONNECTED

    caldav_server.remove_user(user.email)

    assert graph.integrations.check_connection(check) is ConnectionStatus.NEEDS_REAUTH
