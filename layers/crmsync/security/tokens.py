"""Credentials at rest (refresh tokens, token caches, app-specific passwords): encrypted under
the token key (KMS), bound to the connection they belong to.

Envelope encryption with a shared, cached data key. Each credential is sealed with AES-256-GCM
under a **data key**; the data key is made by KMS (``GenerateDataKey`` under the token key) and
stored only encrypted (:class:`DataKeys`: one a month, shared by every connection sealed that
month). The associated data names tenant, user and connection (and the purpose), so a
ciphertext copied to another connection's record does not open there, as KMS's encryption
context did. A function keeps the data keys it opened for :data:`DATA_KEY_TTL`: a sync no
longer costs one KMS Decrypt (it did: the largest line of an account's monthly cost,
docs/PERFORMANCE.md), whichever container it lands in — a container asks KMS once per data key
and TTL, however many connections it opens. Disabling the token key stops every function
within the TTL.

Credentials sealed before (a KMS ciphertext under the connection's encryption context) still
open, by KMS as before; they are sealed the new way when next written.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from crmsync.errors import CrmSyncError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

#: What starts a credential sealed under a data key (a KMS ciphertext never starts so).
SEALED = b"crmsync-dk1:"
#: How long a function keeps a data key it opened (seconds).
DATA_KEY_TTL = 15 * 60.0
_NONCE = 12
#: A data key's id: the month it was made for.
_KEY_ID = re.compile(r"\d{4}-\d{2}")


class TokenDecryptionError(CrmSyncError):
    slug = "token-decryption"


@dataclass(frozen=True)
class TokenContext:
    tenant_id: str
    user_id: str
    connection_id: str
    purpose: str = "refresh_token"

    def as_kms(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "connection_id": self.connection_id,
            "purpose": self.purpose,
        }


class DataKeys(Protocol):
    """Where the encrypted data keys are kept (:class:`crmsync.dal.data_keys.DataKeyStore`)."""

    def get(self, key_id: str) -> bytes | None:
        """The encrypted data key ``key_id``, or None."""
        ...

    def add(self, key_id: str, encrypted: bytes) -> bytes:
        """Keep ``encrypted`` as ``key_id`` unless one is kept already; the one kept."""
        ...


def data_key_context(key_id: str) -> dict[str, str]:
    """KMS's encryption context of a data key: it opens as that data key only."""
    return {"purpose": "credential-data-key", "data_key_id": key_id}


class TokenCipher:
    """Encrypts and decrypts short secrets under one KMS key: sealed under a shared data key
    when ``data_keys`` is given, else (tests, tools) one KMS call per secret."""

    def __init__(
        self,
        key_id: str,
        kms_client: KMSClient | None = None,
        *,
        data_keys: DataKeys | None = None,
        ttl: float = DATA_KEY_TTL,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key_id = key_id
        self._kms = kms_client
        self._data_keys = data_keys
        self._ttl = ttl
        self._clock = clock
        self._today = today
        #: Data keys opened: id → (when, the key).
        self._opened: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    @property
    def kms(self) -> KMSClient:
        if self._kms is None:
            import boto3

            self._kms = boto3.client("kms")
        return self._kms

    def encrypt(self, plaintext: str, context: TokenContext) -> bytes:
        if self._data_keys is None:
            response = self.kms.encrypt(
                KeyId=self._key_id,
                Plaintext=plaintext.encode(),
                EncryptionContext=context.as_kms(),
            )
            return response["CiphertextBlob"]
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key_id = f"{self._today():%Y-%m}"  # a data key a month: far under AES-GCM's 2^32 seals
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self._data_key(key_id, create=True)).encrypt(
            nonce, plaintext.encode(), _associated(key_id, context)
        )
        return SEALED + key_id.encode() + b":" + nonce + sealed

    def decrypt(self, ciphertext: bytes, context: TokenContext) -> str:
        if ciphertext.startswith(SEALED):
            return self._open(ciphertext, context)
        try:
            response: Any = self.kms.decrypt(
                CiphertextBlob=ciphertext,
                EncryptionContext=context.as_kms(),
                KeyId=self._key_id,
            )
        except self.kms.exceptions.InvalidCiphertextException as exc:
            raise TokenDecryptionError("The stored token cannot be decrypted for this connection.") from exc
        return bytes(response["Plaintext"]).decode()

    def _open(self, ciphertext: bytes, context: TokenContext) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        refused = TokenDecryptionError("The stored token cannot be decrypted for this connection.")
        key_id_bytes, sep, rest = ciphertext[len(SEALED) :].partition(b":")
        if not sep or len(rest) <= _NONCE:
            raise refused
        key_id = key_id_bytes.decode("ascii", "replace")
        if not _KEY_ID.fullmatch(key_id):
            raise refused
        try:
            plaintext = AESGCM(self._data_key(key_id, create=False)).decrypt(
                rest[:_NONCE], rest[_NONCE:], _associated(key_id, context)
            )
        except InvalidTag as exc:
            raise refused from exc
        return plaintext.decode()

    def _data_key(self, key_id: str, *, create: bool) -> bytes:
        """The data key ``key_id``: opened within the TTL, else from its store through KMS
        (made first when ``create`` and there is none)."""
        now = self._clock()
        with self._lock:
            found = self._opened.get(key_id)
            if found is not None and now - found[0] < self._ttl:
                return found[1]
        if self._data_keys is None:
            raise TokenDecryptionError("A sealed token needs the data keys' store to open.")
        encrypted = self._data_keys.get(key_id)
        if encrypted is None:
            if not create:
                raise TokenDecryptionError("The stored token's data key is missing.")
            made: Any = self.kms.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=data_key_context(key_id)
            )
            kept = self._data_keys.add(key_id, bytes(made["CiphertextBlob"]))
            # Two functions may make this month's key at once: the one stored first wins.
            key = bytes(made["Plaintext"]) if kept == bytes(made["CiphertextBlob"]) else self._kms_open(key_id, kept)
        else:
            key = self._kms_open(key_id, encrypted)
        with self._lock:
            self._opened = {k: v for k, v in self._opened.items() if now - v[0] < self._ttl}
            self._opened[key_id] = (now, key)
        return key

    def _kms_open(self, key_id: str, encrypted: bytes) -> bytes:
        try:
            response: Any = self.kms.decrypt(
                CiphertextBlob=encrypted, EncryptionContext=data_key_context(key_id), KeyId=self._key_id
            )
        except self.kms.exceptions.InvalidCiphertextException as exc:
            raise TokenDecryptionError("The stored token's data key cannot be decrypted.") from exc
        return bytes(response["Plaintext"])


def _associated(key_id: str, context: TokenContext) -> bytes:
    """AES-GCM's associated data: the connection (as KMS's context did) and the data key."""
    return json.dumps({**context.as_kms(), "data_key_id": key_id}, sort_keys=True, separators=(",", ":")).encode()
