"""The composition root's connectors: a stored connection opens the adapter of its provider
and credential kind, with its credential decrypted under its own KMS context; connections
stored before credential kinds existed read (and open) unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from crmsync.app.wiring import Graph
from crmsync.domain import CredentialKind, Principal
from crmsync.errors import ProviderError
from crmsync.models import ConnectionItem, user_pk
from crmsync.models.connection import CONNECTION_SK_PREFIX
from crmsync.providers.google.calendar import GoogleCalendar
from crmsync.providers.google.gmail import GoogleMail
from crmsync.providers.google.oauth import GoogleCredential
from crmsync.providers.google.people import GooglePeople
from crmsync.security.tokens import TokenContext, TokenDecryptionError
from tests.integration.test_connected_calendars import connect

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")


@pytest.fixture
def stored(graph: Graph, integrations, ada: str):  # type: ignore[no-untyped-def]
    connection_id = connect(integrations, ALICE, ada, typed=True)
    found = graph.connection_store.get_stored(ALICE, connection_id)
    assert found is not None
    return found


def test_a_google_connection_opens_the_google_adapters(graph: Graph, stored) -> None:  # type: ignore[no-untyped-def]
    assert stored.connection.credential_kind is CredentialKind.OAUTH_TOKENS
    assert isinstance(graph.connectors.calendar(stored), GoogleCalendar)
    assert isinstance(graph.connectors.contacts(stored), GooglePeople)
    assert isinstance(graph.connectors.mail(stored), GoogleMail)
    assert isinstance(graph.connectors.credential(stored), GoogleCredential)
    assert [c.calendar_id for c in graph.connectors.calendar(stored).list_calendars() if c.primary]


@pytest.mark.parametrize(
    "change",
    [{"provider": "icloud"}, {"credential_kind": CredentialKind.APP_PASSWORD}],
    ids=["unknown provider", "credential kind the provider does not take"],
)
def test_a_connection_no_adapter_takes_is_refused_for_good(graph: Graph, stored, change: dict) -> None:  # type: ignore[no-untyped-def]
    odd = dataclasses.replace(stored, connection=dataclasses.replace(stored.connection, **change))
    with pytest.raises(ProviderError) as refused:
        graph.connectors.calendar(odd)
    assert not refused.value.retryable


def test_a_credential_is_read_only_under_its_own_connections_context(graph: Graph, stored) -> None:  # type: ignore[no-untyped-def]
    """Another connection's ciphertext (copied over, say by a bug or an attacker with table
    access) does not decrypt: the KMS context names tenant, user and connection."""
    c = stored.connection
    foreign = graph.cipher.encrypt("1//someone-elses-token", TokenContext(c.tenant_id, c.user_id, "g-other"))
    with pytest.raises(TokenDecryptionError):
        graph.connectors.secret(dataclasses.replace(stored, credential_ciphertext=foreign))


def test_a_connection_stored_before_credential_kinds_reads_and_opens_unchanged(
    graph: Graph, stored, stack, tables: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    c = stored.connection
    key = {"pk": {"S": user_pk(c.tenant_id, c.user_id)}, "sk": {"S": CONNECTION_SK_PREFIX + c.connection_id}}
    dynamodb = stack.aws_client("dynamodb")
    table = tables["ConnectionsTable"]
    raw = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    # The credential is stored under the attribute name deployed stacks already use.
    assert "refresh_token_ciphertext" in raw
    assert raw["credential_kind"] == {"S": "oauth_tokens"}
    dynamodb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE credential_kind")
    assert "credential_kind" not in dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]

    legacy = graph.connection_store.get_stored(ALICE, c.connection_id)
    assert legacy is not None
    assert legacy.connection.credential_kind is CredentialKind.OAUTH_TOKENS
    assert legacy.credential_ciphertext == stored.credential_ciphertext
    graph.connectors.credential(legacy).check()
    assert ConnectionItem.get(key["pk"]["S"], key["sk"]["S"]).credential_kind is None
