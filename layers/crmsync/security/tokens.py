"""Refresh tokens at rest: KMS encryption under an encryption context.

The context names tenant, user and connection, so a ciphertext copied to another
connection's record cannot be decrypted there (KMS refuses a different context).
"""

from __future__ import annotations

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


class TokenCipher:
    """Encrypts and decrypts short secrets with one KMS key."""

    def __init__(self, key_id: str, kms_client: KMSClient | None = None) -> None:
        self._key_id = key_id
        self._kms = kms_client

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
        try:
            response: Any = self.kms.decrypt(
                CiphertextBlob=ciphertext,
                EncryptionContext=context.as_kms(),
                KeyId=self._key_id,
            )
        except self.kms.exceptions.InvalidCiphertextException as exc:
            raise TokenDecryptionError("The stored token cannot be decrypted for this connection.") from exc
        return bytes(response["Plaintext"]).decode()
