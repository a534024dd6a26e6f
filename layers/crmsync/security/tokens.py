"""Refresh tokens at rest: KMS encryption under an encryption context.

The context names tenant, user and connection, so a ciphertext copied to another
connection's record cannot be decrypted there (KMS refuses a different context).

A warm function keeps what it decrypted for a short while (``DECRYPTED_TTL``, at most
``DECRYPTED_MAX`` credentials), keyed by the ciphertext and its context: every sync opens its
connection, and a KMS Decrypt per sync was the largest line of an account's monthly cost
(bench/cost.py, docs/PERFORMANCE.md). A credential that changes is stored as a new ciphertext
and misses the cache; a connection removed is no longer read, so its entry is never used again
and ages out.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmsync.errors import CrmSyncError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient


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


#: How long a warm function reuses a credential it decrypted (seconds).
DECRYPTED_TTL = 15 * 60.0
#: How many decrypted credentials a warm function keeps at most (least recently used go first).
DECRYPTED_MAX = 256


class TokenCipher:
    """Encrypts and decrypts short secrets with one KMS key."""

    def __init__(
        self,
        key_id: str,
        kms_client: KMSClient | None = None,
        *,
        ttl: float = DECRYPTED_TTL,
        capacity: int = DECRYPTED_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key_id = key_id
        self._kms = kms_client
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._decrypted: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def kms(self) -> KMSClient:
        if self._kms is None:
            import boto3

            self._kms = boto3.client("kms")
        return self._kms

    def encrypt(self, plaintext: str, context: TokenContext) -> bytes:
        response = self.kms.encrypt(
            KeyId=self._key_id,
            Plaintext=plaintext.encode(),
            EncryptionContext=context.as_kms(),
        )
        return response["CiphertextBlob"]

    def decrypt(self, ciphertext: bytes, context: TokenContext) -> str:
        """The plaintext: from this environment's recent decryptions, else from KMS."""
        key = (hashlib.sha256(ciphertext).hexdigest(), tuple(sorted(context.as_kms().items())))
        now = self._clock()
        with self._lock:
            found = self._decrypted.get(key)
            if found is not None and now - found[0] < self._ttl:
                self._decrypted.move_to_end(key)
                return found[1]
        plaintext = self._decrypt(ciphertext, context)
        with self._lock:
            self._decrypted[key] = (now, plaintext)
            self._decrypted.move_to_end(key)
            while len(self._decrypted) > self._capacity:
                self._decrypted.popitem(last=False)
        return plaintext

    def _decrypt(self, ciphertext: bytes, context: TokenContext) -> str:
        try:
            response: Any = self.kms.decrypt(
                CiphertextBlob=ciphertext,
                EncryptionContext=context.as_kms(),
                KeyId=self._key_id,
            )
        except self.kms.exceptions.InvalidCiphertextException as exc:
            raise TokenDecryptionError("The stored token cannot be decrypted for this connection.") from exc
        return bytes(response["Plaintext"]).decode()
