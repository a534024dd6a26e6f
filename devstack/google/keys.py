"""The emulator's id_token signing key, published as Google does (v1 PEM certs and v3 JWKS)."""

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


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SigningKeys:
    """A fresh RSA-2048 key and a self-signed certificate for it, made when constructed.

    The key lives only in memory: id_tokens from a previous emulator run must not verify.
    """

    def __init__(self) -> None:
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Google's kids are 40 hex digits; a hash of the public key gives the same shape.
        self.kid = hashlib.sha1(public_der, usedforsecurity=False).hexdigest()
        self.certificate_pem = self._self_signed_certificate()

    def _self_signed_certificate(self) -> str:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devstack-google-emulator")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(self._private_key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` as an RS256 JWT whose header names this key's ``kid``."""
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers={"kid": self.kid})

    def v1_certs(self) -> dict[str, str]:
        """``{kid: PEM certificate}``, the shape of https://www.googleapis.com/oauth2/v1/certs."""
        return {self.kid: self.certificate_pem}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set, the shape of https://www.googleapis.com/oauth2/v3/certs."""
        numbers = self._private_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": self.kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            ]
        }
