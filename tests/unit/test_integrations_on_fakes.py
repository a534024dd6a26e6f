"""Connecting, checking and disconnecting accounts (F1) on the production graph over fakes:
the OAuth state, PKCE, the encrypted credential, health checks and disconnect. Mirrors
tests/integration/test_connect_flow.py and test_connected_calendars.py without Java or the
emulator."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from crmsync.domain import CalendarRef, ConnectionStatus, CredentialKind, Principal, StoredConnection
from crmsync.errors import (
    AuthorizationDenied,
    InvalidRequest,
    NotFound,
    OAuthStateError,
    ProviderError,
    TokenExchangeFailed,
)
from crmsync.messaging.messages import ConnectionCheck
from crmsync.security.tokens import TokenContext, TokenDecryptionError
from tests.fakes.accounts import FakeAccountAccess, FakeOAuth, code_challenge
from tests.fakes.world import FakeGraph
from tests.support import clock

ALICE = Principal("tenant-a", "alice")
ALICE_AT_B = Principal("tenant-b", "alice")
BOB = Principal("tenant-a", "bob")
EMAIL = "ada@example.com"
BINDING = "b" * 43
OTHER_BINDING = "o" * 43
NINE = clock.next_weekday(clock.FRIDAY, 9)


class Counted:
    def __init__(self) -> None:
        self.names: list[str] = []

    def count(self, name: str) -> None:
        self.names.append(name)


class Clock:
    """The stores' clock, to move on."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def counted() -> Counted:
    return Counted()


@pytest.fixture
def graph(counted: Counted) -> FakeGraph:
    return FakeGraph(counter=counted)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def consent(graph: FakeGraph, principal: Principal = ALICE, **approve: object) -> dict[str, str]:
    """Start connecting in the browser with BINDING; the consent page's answer."""
    start = graph.integrations.start_connect("google", principal, binding=BINDING)
    return graph.account_access.oauth("google").approve(start.authorization_url, **approve)  # type: ignore[arg-type]


def callback(graph: FakeGraph, answer: dict[str, str], *, binding: str = BINDING, provider: str = "google") -> str:
    return graph.integrations.complete_connect(
        provider, state=answer["state"], code=answer["code"], error=None, binding=binding
    ).connection_id


def stored(graph: FakeGraph, principal: Principal, connection_id: str) -> StoredConnection:
    found = graph.connection_store.get_stored(principal, connection_id)
    assert found is not None
    return found


def check(graph: FakeGraph, principal: Principal, connection_id: str) -> ConnectionStatus | None:
    return graph.integrations.check_connection(
        ConnectionCheck(tenant_id=principal.tenant_id, user_id=principal.user_id, connection_id=connection_id)
    )


def nothing_stored(graph: FakeGraph) -> bool:
    return list(graph.connection_store.all_keys()) == []


# ---------------------------------------------------------------------- connect


def test_connect_stores_the_account_with_its_credential_only_as_ciphertext(graph: FakeGraph, counted: Counted) -> None:
    connection_id = callback(graph, consent(graph, email=EMAIL, name="Ada"))

    found = stored(graph, ALICE, connection_id)
    c = found.connection
    assert (c.provider, c.email, c.display_name, c.status) == ("google", EMAIL, "Ada", ConnectionStatus.CONNECTED)
    assert c.credential_kind is CredentialKind.OAUTH_TOKENS
    refresh_token = graph.account_access.oauth("google").refresh_tokens[-1]
    assert refresh_token.encode() not in found.credential_ciphertext
    assert refresh_token not in repr(c)
    assert (
        graph.cipher.decrypt(found.credential_ciphertext, TokenContext(ALICE.tenant_id, ALICE.user_id, connection_id))
        == refresh_token
    )
    for elsewhere in (
        TokenContext(ALICE.tenant_id, ALICE.user_id, "g" + "0" * 31),
        TokenContext(ALICE.tenant_id, BOB.user_id, connection_id),
        TokenContext(ALICE_AT_B.tenant_id, ALICE.user_id, connection_id),
    ):
        with pytest.raises(TokenDecryptionError):
            graph.cipher.decrypt(found.credential_ciphertext, elsewhere)
    assert [c.connection_id for c in graph.integrations.list_connections(ALICE)] == [connection_id]
    (queued,) = graph.queue.take()
    assert isinstance(queued, ConnectionCheck)
    assert (queued.connection_id, queued.reason) == (connection_id, "connected")
    assert counted.names == ["OAuthStarted", "ConnectionConnected"]


def test_the_authorization_url_asks_offline_consent_with_pkce_s256_and_keeps_the_verifier_server_side(
    graph: FakeGraph,
) -> None:
    start = graph.integrations.start_connect("google", ALICE, binding=BINDING, login_hint=EMAIL)
    params = query(start.authorization_url)

    assert (params["access_type"], params["prompt"], params["code_challenge_method"]) == ("offline", "consent", "S256")
    assert params["login_hint"] == EMAIL
    assert set(graph.account_access.oauth("google").scopes_for(["calendar"])) <= set(params["scope"].split())
    pending = graph.stores.oauth_states.states[params["state"]]
    assert params["code_challenge"] == code_challenge(pending.code_verifier)
    assert pending.code_verifier not in start.authorization_url
    assert start.binding == BINDING
    assert pending.binding_hash != BINDING  # only its hash is kept


def test_a_verifier_that_does_not_match_the_challenge_is_refused_and_nothing_is_stored(
    graph: FakeGraph, counted: Counted
) -> None:
    answer = consent(graph)
    states = graph.stores.oauth_states.states
    states[answer["state"]] = replace(states[answer["state"]], code_verifier="x" * 64)

    with pytest.raises(TokenExchangeFailed):
        callback(graph, answer)

    assert nothing_stored(graph)
    assert counted.names[-1] == "OAuthRefused"


def test_a_state_is_good_once(graph: FakeGraph, counted: Counted) -> None:
    answer = consent(graph)
    callback(graph, answer)

    with pytest.raises(OAuthStateError) as refused:
        callback(graph, answer)

    assert refused.value.reason == OAuthStateError.UNKNOWN
    assert len(list(graph.connection_store.all_keys())) == 1
    assert counted.names[-1] == "OAuthRefused"


def test_a_state_presented_from_another_browser_is_refused_and_not_burned(graph: FakeGraph) -> None:
    answer = consent(graph)

    with pytest.raises(OAuthStateError) as refused:
        callback(graph, answer, binding=OTHER_BINDING)
    assert refused.value.reason == OAuthStateError.MISMATCH
    with pytest.raises(OAuthStateError):
        callback(graph, answer, binding="")
    assert nothing_stored(graph)

    callback(graph, answer)  # the browser that started it still can
    assert len(list(graph.connection_store.all_keys())) == 1


def test_a_state_for_another_provider_is_refused(graph: FakeGraph) -> None:
    answer = consent(graph)
    with pytest.raises(OAuthStateError):
        callback(graph, answer, provider="microsoft")
    assert nothing_stored(graph)
    with pytest.raises(InvalidRequest):
        graph.integrations.start_connect("microsoft", ALICE)


def test_an_expired_state_is_refused_and_nothing_is_stored(counted: Counted) -> None:
    moment = Clock()
    graph = FakeGraph(clock=moment, counter=counted)
    answer = consent(graph)
    moment.offset = timedelta(seconds=graph.settings.oauth_state_ttl_seconds + 1)

    with pytest.raises(OAuthStateError) as refused:
        callback(graph, answer)

    assert refused.value.reason == OAuthStateError.EXPIRED
    assert nothing_stored(graph)
    assert graph.account_access.oauth("google").calls["exchange_code"] == 0
    with pytest.raises(OAuthStateError):  # and it is gone
        callback(graph, answer)


def test_unknown_or_disabled_features_are_refused_before_anything_is_stored(counted: Counted) -> None:
    graph = FakeGraph(counter=counted)
    graph.account_access = FakeAccountAccess(FakeOAuth())  # knows calendar, email and contacts

    with pytest.raises(InvalidRequest, match="Unknown"):
        graph.integrations.start_connect("google", ALICE, features=["telepathy"])
    with pytest.raises(InvalidRequest, match="not enabled"):
        graph.integrations.start_connect("google", ALICE, features=["calendar", "email"])

    assert graph.stores.oauth_states.states == {}
    assert counted.names == []
    graph.integrations.start_connect("google", ALICE, features=["calendar"])
    assert len(graph.stores.oauth_states.states) == 1


def test_connecting_the_same_account_again_updates_it_and_another_account_adds_one(graph: FakeGraph) -> None:
    first = callback(graph, consent(graph, email=EMAIL))
    before = stored(graph, ALICE, first)

    again = callback(graph, consent(graph, email=EMAIL))
    other = callback(graph, consent(graph, email="grace@example.com"))

    assert again == first
    assert other != first
    after = stored(graph, ALICE, first)
    assert after.version > before.version
    assert after.credential_ciphertext != before.credential_ciphertext  # the new grant's token
    assert after.connection.created_at == before.connection.created_at
    assert [c.email for c in graph.integrations.list_connections(ALICE)] == [EMAIL, "grace@example.com"]


def test_a_refused_exchange_stores_nothing_and_is_counted(graph: FakeGraph, counted: Counted) -> None:
    graph.account_access.oauth("google").fail_next_exchange(TokenExchangeFailed("invalid_grant", retryable=False))

    with pytest.raises(TokenExchangeFailed):
        callback(graph, consent(graph))

    assert nothing_stored(graph)
    assert graph.queue.take() == []
    assert counted.names == ["OAuthStarted", "OAuthRefused"]


def test_denied_consent_stores_nothing_consumes_the_state_and_is_counted(graph: FakeGraph, counted: Counted) -> None:
    answer = consent(graph)

    with pytest.raises(AuthorizationDenied):
        graph.integrations.complete_connect(
            "google", state=answer["state"], code=None, error="access_denied", binding=BINDING
        )

    assert nothing_stored(graph)
    assert graph.account_access.oauth("google").calls["exchange_code"] == 0
    assert counted.names == ["OAuthStarted", "OAuthRefused"]
    with pytest.raises(OAuthStateError):
        callback(graph, answer)


# ---------------------------------------------------------------------- disconnect


def synced_account(graph: FakeGraph) -> str:
    """Ada's account, its primary calendar linked, synced, with a live push channel."""
    connection_id = graph.connect(ALICE, EMAIL)
    graph.calendars.refresh(ALICE, connection_id)
    graph.calendar_settings.link(ALICE, CalendarRef(connection_id, EMAIL))
    graph.calendar_of(connection_id).user_add(EMAIL, summary="busy", start=NINE, end=NINE + timedelta(hours=1))
    graph.calendar_sync.run(ALICE, connection_id, EMAIL)
    assert graph.calendar_of(connection_id).watches()
    assert graph.mirror_store.events(ALICE, connection_id, EMAIL)
    graph.queue.take()
    return connection_id


def test_disconnect_stops_channels_then_revokes_and_forgets_everything_mirrored(
    graph: FakeGraph, counted: Counted
) -> None:
    connection_id = synced_account(graph)
    account = graph.calendar_of(connection_id)
    credential = graph.account_access.credential_of(connection_id)
    revoke = credential.revoke
    live_at_revoke: list[int] = []

    def noting_revoke() -> None:
        live_at_revoke.append(len(account.watches()))
        revoke()

    credential.revoke = noting_revoke  # type: ignore[method-assign]

    graph.integrations.disconnect(ALICE, connection_id)

    assert live_at_revoke == [0]  # channels stopped while the grant still worked
    assert credential.revoked
    assert account.watches() == {}
    assert graph.integrations.list_connections(ALICE) == []
    assert graph.connection_store.get_stored(ALICE, connection_id) is None
    assert graph.calendars.connected(ALICE) == []
    assert graph.mirror_store.events(ALICE, connection_id, EMAIL) == []
    assert graph.mirror_store.synced(ALICE) == []
    assert graph.calendar_settings.view(ALICE).linked is None
    assert graph.stores.contact_sync_stores.forgotten == [(ALICE, connection_id)]  # contacts mirror, cursor
    assert graph.stores.contact_sync_stores.candidates_deleted == [(ALICE, connection_id)]
    # The appointment made from the event stays the CRM's; the event no longer blocks.
    assert [b.source for b in graph.availability.busy(ALICE, NINE, NINE + timedelta(hours=2))] == ["crm"]
    assert counted.names[-1] == "ConnectionDisconnected"
    assert "RevokeFailed" not in counted.names


def test_disconnect_deletes_even_when_revoke_fails(graph: FakeGraph, counted: Counted) -> None:
    connection_id = synced_account(graph)
    credential = graph.account_access.credential_of(connection_id)
    credential.fail_next(ProviderError("the provider is unreachable", retryable=True))

    graph.integrations.disconnect(ALICE, connection_id)

    assert credential.calls["revoke"] == 1
    assert not credential.revoked
    assert graph.connection_store.get_stored(ALICE, connection_id) is None
    assert graph.calendars.connected(ALICE) == []
    assert graph.mirror_store.synced(ALICE) == []
    assert counted.names[-2:] == ["RevokeFailed", "ConnectionDisconnected"]


def test_another_user_or_tenant_can_neither_see_nor_disconnect_a_connection(graph: FakeGraph) -> None:
    connection_id = graph.connect(ALICE, EMAIL)

    for stranger in (BOB, ALICE_AT_B):
        assert graph.integrations.list_connections(stranger) == []
        with pytest.raises(NotFound):
            graph.integrations.disconnect(stranger, connection_id)
        assert check(graph, stranger, connection_id) is None

    assert [c.connection_id for c in graph.integrations.list_connections(ALICE)] == [connection_id]
    assert graph.account_access.credential_of(connection_id).calls["revoke"] == 0
    with pytest.raises(NotFound):
        graph.integrations.disconnect(ALICE, "g" + "0" * 31)


# ---------------------------------------------------------------------- health


def test_a_working_credential_keeps_the_connection_connected(graph: FakeGraph) -> None:
    connection_id = graph.connect(ALICE, EMAIL)
    assert check(graph, ALICE, connection_id) is ConnectionStatus.CONNECTED
    assert graph.account_access.credential_of(connection_id).calls["check"] == 1


def test_a_revoked_credential_needs_reauth_until_the_user_reconnects(graph: FakeGraph, counted: Counted) -> None:
    connection_id = graph.connect(ALICE, EMAIL)
    graph.account_access.credential_of(connection_id).user_revokes()

    assert check(graph, ALICE, connection_id) is ConnectionStatus.NEEDS_REAUTH

    (listed,) = graph.integrations.list_connections(ALICE)
    assert (listed.status, listed.status_reason) == (ConnectionStatus.NEEDS_REAUTH, "invalid_grant")
    assert "ConnectionNeedsReauth" in counted.names
    assert graph.connect(ALICE, EMAIL) == connection_id
    (listed,) = graph.integrations.list_connections(ALICE)
    assert listed.status is ConnectionStatus.CONNECTED


def test_a_retryable_failure_raises_and_changes_nothing(graph: FakeGraph) -> None:
    connection_id = graph.connect(ALICE, EMAIL)
    before = stored(graph, ALICE, connection_id)
    graph.account_access.credential_of(connection_id).fail_next(ProviderError("unavailable", retryable=True))

    with pytest.raises(ProviderError):
        check(graph, ALICE, connection_id)

    assert stored(graph, ALICE, connection_id) == before


def test_a_final_provider_refusal_marks_the_connection_in_error(graph: FakeGraph) -> None:
    connection_id = graph.connect(ALICE, EMAIL)
    graph.account_access.credential_of(connection_id).fail_next(ProviderError("refused", retryable=False))

    assert check(graph, ALICE, connection_id) is ConnectionStatus.ERROR
    (listed,) = graph.integrations.list_connections(ALICE)
    assert listed.status_reason == "provider_refused"


def test_an_unreadable_credential_marks_the_connection_in_error_without_asking_the_provider(graph: FakeGraph) -> None:
    connection_id = graph.connect(ALICE, EMAIL)
    table = graph.stores.table
    ((key, item),) = [(k, v) for k, v in table.items.items() if isinstance(v, StoredConnection)]
    table.items[key] = replace(item, credential_ciphertext=b"not a ciphertext")

    assert check(graph, ALICE, connection_id) is ConnectionStatus.ERROR

    (listed,) = graph.integrations.list_connections(ALICE)
    assert (listed.status, listed.status_reason) == (ConnectionStatus.ERROR, "token_unreadable")
    assert graph.account_access.credential_of(connection_id).calls["check"] == 0


def test_a_check_that_raced_a_reconnect_does_not_overwrite_it(graph: FakeGraph) -> None:
    connection_id = graph.connect(ALICE, EMAIL)
    credential = graph.account_access.credential_of(connection_id)
    credential.user_revokes()
    old_check = credential.check

    def check_while_the_user_reconnects() -> None:
        graph.connect(ALICE, EMAIL)  # the user reconnects while the old grant is checked
        old_check()

    credential.check = check_while_the_user_reconnects  # type: ignore[method-assign]

    assert check(graph, ALICE, connection_id) is None

    (listed,) = graph.integrations.list_connections(ALICE)
    assert listed.status is ConnectionStatus.CONNECTED


def test_a_check_of_a_disconnected_connection_is_a_no_op(graph: FakeGraph) -> None:
    connection_id = graph.connect(ALICE, EMAIL)
    graph.integrations.disconnect(ALICE, connection_id)
    assert check(graph, ALICE, connection_id) is None
    assert graph.account_access.credential_of(connection_id).calls["check"] == 0


def test_the_sweep_sends_one_check_per_connection_of_every_tenant(graph: FakeGraph) -> None:
    expected = {
        (ALICE.tenant_id, ALICE.user_id, graph.connect(ALICE, EMAIL)),
        (ALICE.tenant_id, ALICE.user_id, graph.connect(ALICE, "grace@example.com")),
        (BOB.tenant_id, BOB.user_id, graph.connect(BOB, "bob@example.com")),
        (ALICE_AT_B.tenant_id, ALICE_AT_B.user_id, graph.connect(ALICE_AT_B, EMAIL)),
    }
    graph.queue.take()

    assert graph.integrations.enqueue_health_checks("tick-1") == 4

    sent = graph.queue.take()
    assert all(isinstance(m, ConnectionCheck) and (m.reason, m.occasion) == ("scheduled", "tick-1") for m in sent)
    assert {(m.tenant_id, m.user_id, m.connection_id) for m in sent} == expected
    assert len(sent) == 4
