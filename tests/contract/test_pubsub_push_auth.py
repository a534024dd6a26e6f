"""The Pub/Sub push authenticator against the emulator's published keys: Google's
certificates are fetched once while their Cache-Control max-age lasts (a warm function
verifies a push without a round trip), and without configuration every push is refused."""

from __future__ import annotations

import time
from typing import Any

import google.auth.transport.urllib3
import pytest
import urllib3

from crmsync.providers.google.pubsub import CachedCerts, PubSubPush
from devstack.google import GoogleEmulator

pytestmark = pytest.mark.integration

AUDIENCE = "https://sync.example.com/webhooks/google/gmail"
ACCOUNT = "gmail-push@crmsync-test.iam.gserviceaccount.com"


class CountingTransport:
    """google-auth's urllib3 transport, counting the requests it makes."""

    def __init__(self) -> None:
        self._inner = google.auth.transport.urllib3.Request(urllib3.PoolManager())
        self.urls: list[str] = []

    def __call__(self, url: str, **kwargs: Any) -> Any:
        self.urls.append(url)
        return self._inner(url, **kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token(emulator: GoogleEmulator, **over: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "sub": "1",
        "email": ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        **over,
    }
    return "Bearer " + emulator.sign(claims)


def test_googles_certificates_are_fetched_once_while_their_max_age_lasts(google_emulator: GoogleEmulator) -> None:
    transport, clock = CountingTransport(), Clock()
    push = PubSubPush(
        audience=AUDIENCE,
        service_account=ACCOUNT,
        certs_url=google_emulator.endpoints["certs_uri"],
        request=CachedCerts(transport, clock=clock),
    )
    assert push.authenticate(token(google_emulator)) is None
    assert push.authenticate(token(google_emulator, sub="2")) is None
    assert len(transport.urls) == 1

    clock.now += 6 * 3600 + 1  # the emulator says max-age=21600, as Google says hours
    assert push.authenticate(token(google_emulator)) is None
    assert transport.urls == [google_emulator.endpoints["certs_uri"]] * 2


@pytest.mark.parametrize("missing", ["audience", "service_account"])
def test_without_an_audience_or_a_service_account_every_push_is_refused(
    google_emulator: GoogleEmulator, missing: str
) -> None:
    transport = CountingTransport()
    settings = {"audience": AUDIENCE, "service_account": ACCOUNT, missing: ""}
    push = PubSubPush(**settings, certs_url=google_emulator.endpoints["certs_uri"], request=CachedCerts(transport))
    refusal = push.authenticate(token(google_emulator, aud=settings["audience"], email=settings["service_account"]))
    assert refusal is not None
    assert refusal.status == 403
    assert "not configured" in refusal.reason
    assert transport.urls == []
