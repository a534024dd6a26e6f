"""The emulator's id_token signing key, published as a JWK Set the way Microsoft publishes its keys.

Microsoft's ``/discovery/v2.0/keys`` entries carry ``kty``, ``use``, ``kid``, ``x5t``, ``n``,
``e`` and ``x5c`` (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens,
"Validate the signature"); the emulator serves the same members for its one RS256 key.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKeys:
    """A fresh RSA-2048 key and a self-signed certificate for it, made when constructed.

    The key lives only in memory: tokens from an earlier emulator run must not verify.
    """

    def __init__(self) -> None:
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devstack-microsoft-emulator")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self._private_key, hashes.SHA256())
        )
        self._der = certificate.public_bytes(serialization.Encoding.DER)
        # Microsoft's kid equals the x5t: the certificate's SHA-1 thumbprint, base64url.
        self.kid = b64url(hashlib.sha1(self._der, usedforsecurity=False).digest())

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` as an RS256 JWT whose header names this key (``kid`` and ``x5t``)."""
        return jwt.encode(
            claims, self._private_key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid, "typ": "JWT"}
        )

    def jwks(self, issuer: str) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set; ``issuer`` is echoed per key as Microsoft's v2.0 key documents do."""
        numbers = self._private_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                    "x5c": [base64.b64encode(self._der).decode("ascii")],
                    "issuer": issuer,
                }
            ]
        }
