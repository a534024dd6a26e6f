"""The local stand-in for the CRM's identity provider.

An RSA key generated at start signs RS256 bearer tokens; the OIDC discovery document and the
JWKS are served by the local HTTP API server under `{api_base_url}/.devstack/issuer/`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER_PATH = "/.devstack/issuer"


class Issuer:
    """Issues bearer JWTs the HttpApi JWT authorizer of the local stack accepts."""

    def __init__(self, api_base_url: str, audience: str = "crmsync") -> None:
        self.issuer = f"{api_base_url.rstrip('/')}{ISSUER_PATH}"
        self.audience = audience
        self.kid = uuid.uuid4().hex[:16]
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def jwks_uri(self) -> str:
        """Where the JWKS is served."""
        return f"{self.issuer}/jwks.json"

    def issue_token(self, tenant_id: str, user_id: str, ttl: int = 3600, **extra_claims: Any) -> str:
        """A signed RS256 JWT for `user_id` in `tenant_id`; `extra_claims` override the defaults."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "tenant_id": tenant_id,
            "iat": now,
            "exp": now + ttl,
        }
        claims.update(extra_claims)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def discovery_document(self) -> dict[str, Any]:
        """The OpenID Connect discovery document."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }

    def jwks(self) -> dict[str, Any]:
        """The public key set."""
        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def handle(self, subpath: str) -> tuple[int, dict[str, Any]]:
        """Serve `GET {ISSUER_PATH}{subpath}`: (status, JSON body)."""
        if subpath == "/.well-known/openid-configuration":
            return 200, self.discovery_document()
        if subpath == "/jwks.json":
            return 200, self.jwks()
        return 404, {"message": "Not Found"}
