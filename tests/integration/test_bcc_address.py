"""F9 settings on DynamoDB Local: the BCC address (lazy, unique, rotated) and sender addresses."""

from __future__ import annotations

import re
import threading

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal.bcc import BccAddressStore
from crmsync.dal.connections import ConnectionStore
from crmsync.domain import Principal
from crmsync.errors import Conflict, NotFound, Unprocessable
from crmsync.logic.bcc_settings import BccSettings
from crmsync.models.mail import BccLookupItem

pytestmark = pytest.mark.integration

DOMAIN = "log.test.example"
ALICE = Principal("tenant-a", "alice")
BOB = Principal("tenant-a", "bob")
MALLORY = Principal("tenant-b", "alice")  # same user id, another tenant


@pytest.fixture
def bcc(service_env: dict[str, str]) -> BccSettings:
    return Graph(Settings.from_env({**service_env, "LOGGING_DOMAIN": DOMAIN})).bcc_settings


def connect_account(principal: Principal, email: str) -> None:
    ConnectionStore().upsert(
        principal,
        connection_id="g" + email.split("@")[0],
        provider="google",
        subject="sub-" + email,
        email=email,
        display_name=None,
        scopes=("openid", "email"),
        credential_ciphertext=b"not-a-real-ciphertext",
    )


def local(address: str) -> str:
    return address.split("@")[0]


def test_the_address_is_unguessable_on_the_logging_domain_and_stable(bcc: BccSettings) -> None:
    first = bcc.address(ALICE)
    assert re.fullmatch(rf"u[a-z2-7]{{26}}@{re.escape(DOMAIN)}", first.address)
    assert bcc.address(ALICE) == first
    others = {bcc.address(p).address for p in (BOB, MALLORY)}
    assert first.address not in others
    assert len(others) == 2
    assert BccAddressStore().owner_of(local(first.address)) == ALICE
    assert BccAddressStore().owner_of(local(first.address).upper()) == ALICE  # mail systems may change case


def test_concurrent_first_reads_issue_one_address(bcc: BccSettings, service_env: dict[str, str]) -> None:
    barrier = threading.Barrier(8)
    seen: list[str] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            barrier.wait()
            seen.append(bcc.address(ALICE).address)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) == 8
    assert len(set(seen)) == 1
    # Exactly one lookup item exists: losers' addresses never became reachable.
    lookups = [i for i in BccLookupItem.scan(BccLookupItem.pk.startswith("BCCADDR#")) if i.user_id == "alice"]
    assert len(lookups) == 1


def test_rotating_issues_a_new_address_and_the_old_one_stops(bcc: BccSettings) -> None:
    old = bcc.address(ALICE)
    new = bcc.rotate(ALICE)
    assert new.address != old.address
    assert new.created_at >= old.created_at
    assert bcc.address(ALICE) == new
    store = BccAddressStore()
    assert store.owner_of(local(old.address)) is None
    assert store.owner_of(local(new.address)) == ALICE


def test_rotating_from_a_stale_read_is_refused_without_change(bcc: BccSettings) -> None:
    current = bcc.address(ALICE)
    with pytest.raises(Conflict):
        BccAddressStore().rotate(ALICE, "u" + "a" * 26, "u" + "b" * 26)
    assert bcc.address(ALICE) == current
    assert BccAddressStore().owner_of(local(current.address)) == ALICE
    assert BccAddressStore().owner_of("u" + "b" * 26) is None


def test_without_a_logging_domain_the_feature_says_it_is_not_configured(service_env: dict[str, str]) -> None:
    unconfigured = Graph(Settings.from_env({**service_env, "LOGGING_DOMAIN": ""})).bcc_settings
    with pytest.raises(Unprocessable, match="not configured"):
        unconfigured.address(ALICE)


def test_sender_addresses_connected_accounts_first_then_added_ones(bcc: BccSettings) -> None:
    connect_account(ALICE, "Ada@Example.com")
    verification = bcc.add_sender(ALICE, " Ada.Alias@Other.ORG ")
    assert verification.sender.email == "ada.alias@other.org"
    assert verification.sender.status.value == "pending"
    assert re.fullmatch(r"CRM-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}", verification.code)
    assert verification.bcc_address == bcc.address(ALICE).address
    assert verification.code in verification.instructions
    assert verification.bcc_address in verification.instructions

    listed = [(s.email, s.status.value, s.source) for s in bcc.sender_addresses(ALICE)]
    assert listed == [
        ("ada@example.com", "verified", "connected_account"),
        ("ada.alias@other.org", "pending", "added"),
    ]
    assert bcc.sender_addresses(BOB) == []


def test_adding_again_issues_a_new_code(bcc: BccSettings) -> None:
    first = bcc.add_sender(ALICE, "alias@other.org")
    second = bcc.add_sender(ALICE, "alias@other.org")
    assert first.code != second.code
    assert len(bcc.sender_addresses(ALICE)) == 1


def test_refused_sender_addresses(bcc: BccSettings) -> None:
    connect_account(ALICE, "ada@example.com")
    with pytest.raises(Conflict, match="connected account"):
        bcc.add_sender(ALICE, "ADA@example.com")
    with pytest.raises(Unprocessable, match="logging domain"):
        bcc.add_sender(ALICE, f"someone@{DOMAIN}")
    with pytest.raises(Unprocessable, match="logging domain"):
        bcc.add_sender(ALICE, f"someone@mx.{DOMAIN}")
    assert [s.source for s in bcc.sender_addresses(ALICE)] == ["connected_account"]


def test_removing_sender_addresses(bcc: BccSettings) -> None:
    connect_account(ALICE, "ada@example.com")
    bcc.add_sender(ALICE, "alias@other.org")
    with pytest.raises(NotFound):
        bcc.remove_sender(BOB, "alias@other.org")  # another user's address is not there for them
    with pytest.raises(Unprocessable, match="disconnect"):
        bcc.remove_sender(ALICE, "ada@example.com")
    bcc.remove_sender(ALICE, "Alias@Other.org")
    assert [s.email for s in bcc.sender_addresses(ALICE)] == ["ada@example.com"]
    with pytest.raises(NotFound):
        bcc.remove_sender(ALICE, "alias@other.org")
