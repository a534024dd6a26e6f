"""The accounts port's credential contract, over GoogleCredential (a refresh token the
emulator issued through the production OAuth flow) and the in-memory FakeCredential."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crmsync.ports.accounts import CredentialPort
from crmsync.ports.errors import AuthRevoked
from crmsync.providers.google.oauth import GoogleCredential
from devstack.google import GoogleEmulator
from tests.contract.ports import connect_google_account
from tests.fakes import FakeCredential

pytestmark = pytest.mark.integration


@pytest.fixture(params=["google", "fake"])
def credential(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[CredentialPort]:
    if request.param == "google":
        monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
        emulator: GoogleEmulator = request.getfixturevalue("google_emulator")
        account = connect_google_account(emulator)
        yield GoogleCredential(account.oauth, account.refresh_token)
    else:
        yield FakeCredential()


def test_a_fresh_credential_checks(credential: CredentialPort) -> None:
    credential.check()


def test_a_revoked_credential_fails_its_check(credential: CredentialPort) -> None:
    credential.revoke()

    with pytest.raises(AuthRevoked):
        credential.check()


def test_revoking_twice_is_fine(credential: CredentialPort) -> None:
    credential.revoke()
    credential.revoke()

    with pytest.raises(AuthRevoked):
        credential.check()
