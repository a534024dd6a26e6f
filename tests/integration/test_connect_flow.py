"""F1 use cases against DynamoDB Local, moto (KMS, SQS, Secrets Manager) and the Google
emulator over HTTP — the real adapters, no fakes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pynamodb.exceptions import DoesNotExist

from crmsync.dal.connections import ConnectionStore
from crmsync.domain import ConnectionStatus, Principal
from crmsync.errors import AuthorizationDenied, NotFound, OAuthStateError, TokenExchangeFailed
from crmsync.logic.integrations import Integrations
from crmsync.messaging.messages import ConnectionCheck
from crmsync.models import ConnectionItem, OAuthStateItem, user_pk
from crmsync.security.secrets import sha256_hex
from crmsync.security.tokens import TokenContext, TokenDecryptionError
from tests.support.google_consent import consent, query

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
MALLORY = Principal("tenant-b", "mallory")


def connect(svc: Integrations, who: Principal, email: str) -> tuple[str, dict[str, str]]:
    start = svc.start_connect("google", who)
    return start.binding, query(consent(start.authorization_url, email))


def complete(svc: Integrations, binding: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
    return svc.complete_connect(
        "google", state=params.get("state"), code=params.get("code"), error=params.get("error"), binding=binding
    )


def test_connect_stores_the_account_with_an_encrypted_refresh_token(integrations, google, kms_cipher, ada) -> None:
    binding, params = connect(integrations, ALICE, ada)
    connection = complete(integrations, binding, params)

    assert connection.email == ada
    assert connection.status is ConnectionStatus.CONNECTED
    assert "openid" in connection.scopes
    assert [c.connection_id for c in integrations.list_connections(ALICE)] == [connection.connection_id]
    item = ConnectionItem.get(user_pk(ALICE.tenant_id, ALICE.user_id), "CONN#" + connection.connection_id)
    refresh_tokens = google.issued()["refresh_tokens"]
    assert refresh_tokens
    assert not [t for t in refresh_tokens if t.encode() in bytes(item.credential_ciphertext)]
    plaintext = kms_cipher.decrypt(
        bytes(item.credential_ciphertext), TokenContext(ALICE.tenant_id, ALICE.user_id, connection.connection_id)
    )
    assert plaintext in refresh_tokens


def test_connecting_needs_no_profile_the_account_has_no_name(integrations, ada) -> None:
    """We ask for ``openid email`` only, so Google's id_token has no ``name`` (that needs
    ``profile``): the connection is made without one, and its email names the account."""
    binding, params = connect(integrations, ALICE, ada)
    assert "profile" not in params["scope"]
    connection = complete(integrations, binding, params)
    assert (connection.email, connection.display_name) == (ada, None)
    (listed,) = integrations.list_connections(ALICE)
    assert (listed.email, listed.display_name) == (ada, None)


def test_the_ciphertext_does_not_decrypt_for_another_connection(integrations, kms_cipher, ada) -> None:
    binding, params = connect(integrations, ALICE, ada)
    connection = complete(integrations, binding, params)
    item = ConnectionItem.get(user_pk(ALICE.tenant_id, ALICE.user_id), "CONN#" + connection.connection_id)
    with pytest.raises(TokenDecryptionError):
        kms_cipher.decrypt(
            bytes(item.credential_ciphertext),
            TokenContext(MALLORY.tenant_id, MALLORY.user_id, connection.connection_id),
        )


def test_the_same_account_again_updates_and_another_account_adds(integrations, ada, grace) -> None:
    first = complete(integrations, *connect(integrations, ALICE, ada))
    again = complete(integrations, *connect(integrations, ALICE, ada))
    other = complete(integrations, *connect(integrations, ALICE, grace))

    assert again.connection_id == first.connection_id
    assert again.created_at == first.created_at
    assert again.updated_at > first.updated_at
    assert other.connection_id != first.connection_id
    assert sorted(c.email for c in integrations.list_connections(ALICE)) == [ada, grace]


def test_a_replayed_state_is_refused(make_integrations, ada) -> None:
    counted: list[str] = []
    integrations = make_integrations(counter=counted.append)
    binding, params = connect(integrations, ALICE, ada)
    complete(integrations, binding, params)
    assert "OAuthRefused" not in counted
    with pytest.raises(OAuthStateError) as refused:
        complete(integrations, binding, params)
    assert refused.value.reason == OAuthStateError.UNKNOWN
    assert counted.count("OAuthRefused") == 1


def test_a_state_presented_from_another_users_browser_is_refused_and_not_burned(integrations, ada) -> None:
    alice_binding, alice_params = connect(integrations, ALICE, ada)
    mallory_binding = integrations.start_connect("google", MALLORY).binding

    with pytest.raises(OAuthStateError) as refused:
        complete(integrations, mallory_binding, alice_params)
    assert refused.value.reason == OAuthStateError.MISMATCH
    assert integrations.list_connections(MALLORY) == []
    assert integrations.list_connections(ALICE) == []
    # Alice's own browser can still finish her sign-in.
    assert complete(integrations, alice_binding, alice_params).email == ada


def test_an_expired_state_is_refused_and_nothing_is_stored(integrations, stack, tables, ada) -> None:
    # DynamoDB purges expired items lazily (up to days later on AWS; DynamoDB Local purges
    # them promptly): turn the purge off so the test sees what AWS shows a late callback.
    stack.aws_client("dynamodb").update_time_to_live(
        TableName=tables["OAuthStatesTable"],
        TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires_at"},
    )
    binding, params = connect(integrations, ALICE, ada)
    # Eleven minutes later: the state is still stored, and expired.
    item = OAuthStateItem.get("STATE#" + sha256_hex(params["state"]))
    item.update(actions=[OAuthStateItem.expires_at.set(datetime.now(UTC) - timedelta(minutes=1))])

    with pytest.raises(OAuthStateError) as refused:
        complete(integrations, binding, params)
    assert refused.value.reason == OAuthStateError.EXPIRED
    assert integrations.list_connections(ALICE) == []


def test_a_missing_state_is_refused(integrations) -> None:
    with pytest.raises(OAuthStateError) as refused:
        integrations.complete_connect("google", state=None, code="4/0abc", error=None, binding="x" * 43)
    assert refused.value.reason == OAuthStateError.MISSING


def test_a_wrong_pkce_verifier_is_refused_by_google_and_nothing_is_stored(integrations, ada) -> None:
    binding, params = connect(integrations, ALICE, ada)
    # Someone who learned the code but not our verifier: swap the stored verifier.
    item = OAuthStateItem.get("STATE#" + sha256_hex(params["state"]))
    item.update(actions=[OAuthStateItem.code_verifier.set("x" * 64)])

    with pytest.raises(TokenExchangeFailed, match="invalid_grant"):
        complete(integrations, binding, params)
    assert integrations.list_connections(ALICE) == []


def test_consent_cancelled_stores_nothing_and_consumes_the_state(integrations) -> None:
    start = integrations.start_connect("google", ALICE)
    params = query(consent(start.authorization_url, cancel=True))
    assert params["error"] == "access_denied"

    with pytest.raises(AuthorizationDenied):
        complete(integrations, start.binding, params)
    assert integrations.list_connections(ALICE) == []
    with pytest.raises(DoesNotExist):
        OAuthStateItem.get("STATE#" + sha256_hex(params["state"]))


def test_two_concurrent_callbacks_with_one_state_connect_once(integrations, ada) -> None:
    binding, params = connect(integrations, ALICE, ada)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def callback() -> None:
        barrier.wait()
        try:
            complete(integrations, binding, params)
            outcomes.append("connected")
        except OAuthStateError:
            outcomes.append("refused")

    threads = [threading.Thread(target=callback) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["connected", "refused"]
    assert len(integrations.list_connections(ALICE)) == 1


def test_another_tenant_can_neither_see_nor_delete_a_connection(integrations, ada) -> None:
    connection = complete(integrations, *connect(integrations, ALICE, ada))
    assert integrations.list_connections(MALLORY) == []
    with pytest.raises(NotFound):
        integrations.disconnect(MALLORY, connection.connection_id)
    assert [c.connection_id for c in integrations.list_connections(ALICE)] == [connection.connection_id]


def test_disconnect_revokes_at_google_and_deletes(integrations, google, ada) -> None:
    connection = complete(integrations, *connect(integrations, ALICE, ada))
    revocations_before = len(google.revocations())

    integrations.disconnect(ALICE, connection.connection_id)

    assert integrations.list_connections(ALICE) == []
    assert len(google.revocations()) == revocations_before + 1


def test_disconnect_deletes_even_when_google_cannot_be_reached(make_integrations, ada) -> None:
    counted: list[str] = []
    svc = make_integrations(revoke_uri="http://127.0.0.1:9/revoke", counter=counted.append)
    connection = complete(svc, *connect(svc, ALICE, ada))

    svc.disconnect(ALICE, connection.connection_id)

    assert svc.list_connections(ALICE) == []
    assert "RevokeFailed" in counted


def test_a_revoked_grant_marks_the_connection_needs_reauth_until_reconnected(integrations, google, ada) -> None:
    connection = complete(integrations, *connect(integrations, ALICE, ada))
    check = ConnectionCheck(tenant_id=ALICE.tenant_id, user_id=ALICE.user_id, connection_id=connection.connection_id)
    assert integrations.check_connection(check) is ConnectionStatus.CONNECTED

    google.revoke_grant(ada)  # the user removed our access in their Google account

    assert integrations.check_connection(check) is ConnectionStatus.NEEDS_REAUTH
    (listed,) = integrations.list_connections(ALICE)
    assert listed.status is ConnectionStatus.NEEDS_REAUTH
    assert listed.status_reason == "invalid_grant"
    # Signing in again with the same account repairs the same connection.
    again = complete(integrations, *connect(integrations, ALICE, ada))
    assert again.connection_id == connection.connection_id
    assert again.status is ConnectionStatus.CONNECTED
    assert integrations.check_connection(check) is ConnectionStatus.CONNECTED


def test_a_check_that_raced_a_reconnect_does_not_overwrite_it(integrations, ada) -> None:
    """A check read the connection, the user reconnected, then the check's (old-token)
    verdict arrives: the reconnected state stands."""
    connection = complete(integrations, *connect(integrations, ALICE, ada))
    store = ConnectionStore()
    before_reconnect = store.get_stored(ALICE, connection.connection_id)
    assert before_reconnect is not None
    complete(integrations, *connect(integrations, ALICE, ada))

    late = store.set_status(
        ALICE,
        connection.connection_id,
        ConnectionStatus.NEEDS_REAUTH,
        "invalid_grant",
        version=before_reconnect.version,
    )

    assert late is None
    (listed,) = integrations.list_connections(ALICE)
    assert listed.status is ConnectionStatus.CONNECTED


def test_a_check_of_a_disconnected_connection_is_a_no_op(integrations) -> None:
    check = ConnectionCheck(tenant_id=ALICE.tenant_id, user_id=ALICE.user_id, connection_id="gdoesnotexist")
    assert integrations.check_connection(check) is None


def test_the_authorization_url_asks_for_what_we_need(integrations, google) -> None:
    start = integrations.start_connect("google", ALICE)
    params = query(start.authorization_url)
    assert params["access_type"] == "offline"
    assert params["prompt"] == "consent"
    assert params["include_granted_scopes"] == "true"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 43
    assert "https://www.googleapis.com/auth/calendar.events" in params["scope"].split()
    assert requests.get(start.authorization_url, timeout=10).status_code == 200
