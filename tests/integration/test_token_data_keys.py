"""Credentials sealed under a shared data key (crmsync.security.tokens) with KMS (moto server)
and DynamoDB Local: bound to their connection, opened by any function with one KMS call per
data key and TTL instead of one per credential, older KMS-only ciphertexts still open."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest

from crmsync.dal.data_keys import DataKeyStore
from crmsync.security.tokens import SEALED, TokenCipher, TokenContext, TokenDecryptionError
from tests.support.clock import now

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def counted_kms(env: dict[str, str]) -> tuple[Any, Counter[str]]:
    """A real KMS client whose requests are counted (botocore's event hook, no stand-in)."""
    calls: Counter[str] = Counter()
    kms = boto3.client("kms", endpoint_url=env.get("AWS_ENDPOINT_URL_KMS") or env.get("AWS_ENDPOINT_URL"))
    kms.meta.events.register("before-call.kms.*", lambda model, **_: calls.update([model.name]))
    return kms, calls


def context(n: int) -> TokenContext:
    return TokenContext("acme", f"user-{n}", f"conn-{n}")


@pytest.fixture
def cipher_env(service_env: dict[str, str], kms_cipher: TokenCipher) -> dict[str, str]:
    return service_env  # kms_cipher binds the tables


def test_one_kms_call_opens_every_credential_of_the_month(cipher_env: dict[str, str]) -> None:
    key = cipher_env["TOKEN_KEY_ID"]
    writer_kms, writer_calls = counted_kms(cipher_env)
    writer = TokenCipher(key, writer_kms, data_keys=DataKeyStore())
    sealed = {n: writer.encrypt(f"refresh-token-{n}", context(n)) for n in range(40)}
    assert all(c.startswith(SEALED) for c in sealed.values())
    assert writer_calls == Counter({"GenerateDataKey": 1})

    # Another function (a fresh container) opens them all: one Decrypt, of the data key.
    reader_kms, reader_calls = counted_kms(cipher_env)
    reader = TokenCipher(key, reader_kms, data_keys=DataKeyStore())
    assert [reader.decrypt(sealed[n], context(n)) for n in range(40)] == [f"refresh-token-{n}" for n in range(40)]
    assert reader_calls == Counter({"Decrypt": 1})


def test_a_sealed_credential_opens_for_its_own_connection_only(kms_cipher: TokenCipher) -> None:
    sealed = kms_cipher.encrypt("secret", context(1))
    for other in (
        context(2),
        TokenContext("other-tenant", "user-1", "conn-1"),
        TokenContext("acme", "user-1", "conn-1", "app_password"),
    ):
        with pytest.raises(TokenDecryptionError):
            kms_cipher.decrypt(sealed, other)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    for broken in (
        bytes(tampered),
        SEALED + b"1999-01:" + sealed[len(SEALED) + 8 :],
        SEALED + b"x",
        SEALED + b"../..:" + bytes(20),
    ):
        with pytest.raises(TokenDecryptionError):
            kms_cipher.decrypt(broken, context(1))
    assert kms_cipher.decrypt(sealed, context(1)) == "secret"


def test_credentials_sealed_by_kms_alone_still_open(cipher_env: dict[str, str], kms_cipher: TokenCipher) -> None:
    legacy = TokenCipher(cipher_env["TOKEN_KEY_ID"]).encrypt("old-token", context(3))
    assert not legacy.startswith(SEALED)
    assert kms_cipher.decrypt(legacy, context(3)) == "old-token"
    with pytest.raises(TokenDecryptionError):
        kms_cipher.decrypt(legacy, context(4))


def test_a_data_key_is_opened_again_after_its_ttl(cipher_env: dict[str, str], kms_cipher: TokenCipher) -> None:
    sealed = kms_cipher.encrypt("secret", context(5))
    kms, calls = counted_kms(cipher_env)
    clock = Clock()
    reader = TokenCipher(cipher_env["TOKEN_KEY_ID"], kms, data_keys=DataKeyStore(), ttl=60, clock=clock)
    reader.decrypt(sealed, context(5))
    clock.t = 59
    reader.decrypt(sealed, context(5))
    assert calls["Decrypt"] == 1
    clock.t = 61
    reader.decrypt(sealed, context(5))
    assert calls["Decrypt"] == 2


def test_two_functions_making_the_month_s_key_at_once_agree(cipher_env: dict[str, str]) -> None:
    """The second writer's data key loses the conditional put; it uses the one stored first."""
    store = DataKeyStore()
    month = now().replace(year=now().year + 50)  # a month no other test seals in
    key_id = f"{month:%Y-%m}"

    class Late:
        """The store as a function sees it that read before the other stored its key."""

        def __init__(self) -> None:
            self.reads = 0

        def get(self, key: str) -> bytes | None:
            self.reads += 1
            return None if self.reads == 1 else store.get(key)

        def add(self, key: str, encrypted: bytes) -> bytes:
            return store.add(key, encrypted)

    first = TokenCipher(cipher_env["TOKEN_KEY_ID"], data_keys=store, today=lambda: month)
    one = first.encrypt("from the first", context(6))
    second = TokenCipher(cipher_env["TOKEN_KEY_ID"], data_keys=Late(), today=lambda: month)
    two = second.encrypt("from the second", context(7))
    assert store.get(key_id) is not None
    reader = TokenCipher(cipher_env["TOKEN_KEY_ID"], data_keys=DataKeyStore())
    assert (reader.decrypt(one, context(6)), reader.decrypt(two, context(7))) == ("from the first", "from the second")
