"""A warm function reuses a credential it decrypted for a bounded time (crmsync.security.tokens):
KMS is asked once per credential and context within the TTL, again after it, and never for
another connection's context."""

from __future__ import annotations

import uuid

import pytest

from crmsync.security.tokens import TokenCipher, TokenContext, TokenDecryptionError
from devstack.aws import aws_client
from devstack.counting import CountingProxy, RequestLog

pytestmark = pytest.mark.integration


def test_a_decrypted_credential_is_reused_within_its_ttl_only(stack, service_env: dict[str, str]) -> None:
    # Given a cipher on KMS (moto) through a counting proxy, and a clock of the test's own
    log = RequestLog()
    proxy = CountingProxy(stack.aws_endpoint, log, "aws").start()
    now = [0.0]
    try:
        kms = aws_client("kms", proxy.endpoint)
        cipher = TokenCipher(service_env["TOKEN_KEY_ID"], kms, ttl=60.0, clock=lambda: now[0])
        context = TokenContext("tenant", f"user-{uuid.uuid4().hex[:8]}", "c1")
        ciphertext = cipher.encrypt("refresh-token", context)

        def decrypts() -> int:
            return sum(1 for r in log.snapshot() if r.operation == "Decrypt")

        # When it is decrypted twice within the TTL: one Decrypt
        assert cipher.decrypt(ciphertext, context) == "refresh-token"
        now[0] = 59.0
        assert cipher.decrypt(ciphertext, context) == "refresh-token"
        assert decrypts() == 1

        # Then another connection's context is still refused by KMS, not served from memory
        with pytest.raises(TokenDecryptionError):
            cipher.decrypt(ciphertext, TokenContext(context.tenant_id, context.user_id, "c2"))
        assert decrypts() == 2

        # And after the TTL, KMS is asked again
        now[0] = 61.0
        assert cipher.decrypt(ciphertext, context) == "refresh-token"
        assert decrypts() == 3
    finally:
        proxy.stop()
