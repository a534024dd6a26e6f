"""The production object graph (:class:`crmsync.app.wiring.Graph`) on fakes: every store,
the queue, the event bus, the KMS cipher and every provider port in memory. The use cases are
wired by the production composition root itself, so a fast test exercises the same wiring a
function runs, without Java, the emulator or moto."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import Connection, Counter, Principal, StoredConnection
from crmsync.security.tokens import TokenContext, TokenDecryptionError
from tests.fakes.accounts import FakeAccountAccess, FakeCredential, FakeOAuth, FakePasswordLogin
from tests.fakes.calendar import FakeCalendar, FakeCalendarAccess
from tests.fakes.stores import FakeStores
from tests.support.events import RecordingPublisher

__all__ = ["FakeCipher", "FakeConnectors", "FakeGraph", "RecordingQueue"]

SETTINGS = {
    "public_base_url": "https://crm.example.com",
    "connections_table": "fake-connections",
    "oauth_states_table": "fake-oauth-states",
    "token_key_id": "fake-key",
    "sync_queue_url": "https://sqs.invalid/fake.fifo",
    "google": {"client_id": "fake-client", "client_secret_arn": "arn:fake"},
}


class RecordingQueue:
    """The sync queue: keeps what was sent; the test plays the worker."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def take(self) -> list[Any]:
        taken, self.sent = self.sent, []
        return taken


class FakeCipher:
    """KMS with an encryption context: a ciphertext opens only under the context it was
    sealed with (TokenDecryptionError otherwise), and never holds the plaintext verbatim."""

    def encrypt(self, plaintext: str, context: TokenContext) -> bytes:
        sealed = {"context": context.as_kms(), "secret": plaintext[::-1]}
        return b"fake-kms:" + json.dumps(sealed).encode()

    def decrypt(self, ciphertext: bytes, context: TokenContext) -> str:
        try:
            sealed = json.loads(bytes(ciphertext).removeprefix(b"fake-kms:"))
        except ValueError:
            raise TokenDecryptionError("The token could not be decrypted.") from None
        if sealed.get("context") != context.as_kms():
            raise TokenDecryptionError("The token could not be decrypted.")
        return str(sealed["secret"])[::-1]

    @staticmethod
    def digest(ciphertext: bytes) -> str:
        return hashlib.sha256(ciphertext).hexdigest()


class FakeConnectors:
    """The fakes of every port, opened per stored connection like the production
    connectors: the calendar port of the connection, its credential, the OAuth client."""

    def __init__(
        self, calendars: FakeCalendarAccess, accounts: FakeAccountAccess, cipher: FakeCipher | None = None
    ) -> None:
        self.calendars = calendars
        self.accounts = accounts
        self.cipher = cipher

    def _open(self, stored: StoredConnection) -> None:
        """As the production connectors do, decrypt the credential first: an unreadable
        ciphertext raises TokenDecryptionError before any port is opened."""
        if self.cipher is not None:
            c = stored.connection
            self.cipher.decrypt(stored.credential_ciphertext, TokenContext(c.tenant_id, c.user_id, c.connection_id))

    @property
    def polled_providers(self) -> frozenset[str]:
        """As the production kits: iCloud's calendars (Outlook's have Graph subscriptions)."""
        return frozenset({"icloud"})

    def calendar(self, stored: StoredConnection) -> FakeCalendar:
        self._open(stored)
        return self.calendars.calendar(stored)

    def reaches_calendars(self, connection: Connection) -> bool:
        """As Google's: the grant holds the scopes of the ``calendar`` feature."""
        wanted = self.accounts.oauth(connection.provider).feature_scopes.get("calendar", ())
        return bool(wanted) and set(wanted) <= set(connection.scopes)

    def oauth(self, provider: str) -> FakeOAuth:
        return self.accounts.oauth(provider)

    def password_login(self, provider: str) -> FakePasswordLogin:
        return self.accounts.password_login(provider)

    def credential(self, stored: StoredConnection) -> FakeCredential:
        self._open(stored)
        return self.accounts.credential(stored)


class FakeGraph(Graph):
    """``Graph`` whose infrastructure and providers are fakes. ``graph.stores``, ``.queue``
    (a :class:`RecordingQueue`), ``.published`` (a RecordingPublisher), ``.calendar_access``
    and ``.account_access`` are there to arrange and to inspect."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        calendar_page_size: int = 250,
        counter: Counter | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(Settings.model_validate({**SETTINGS, **settings}), clock=clock, counter=counter)
        self.stores = FakeStores(clock)
        self.calendar_access = FakeCalendarAccess(page_size=calendar_page_size, clock=clock)
        self.account_access = FakeAccountAccess(
            FakeOAuth(feature_scopes={"calendar": ("fake.calendar",)}),
            # Offered only where the settings configure Microsoft (microsoft={...}).
            FakeOAuth(provider="microsoft", feature_scopes={"calendar": ("Calendars.ReadWrite",)}, token_cache=True),
        )
        self.published = RecordingPublisher()

    @cached_property
    def queue(self) -> RecordingQueue:  # type: ignore[override]
        return RecordingQueue()

    @cached_property
    def cipher(self) -> FakeCipher:  # type: ignore[override]
        return FakeCipher()

    @cached_property
    def events(self) -> RecordingPublisher:  # type: ignore[override]
        return self.published

    @cached_property
    def connectors(self) -> FakeConnectors:  # type: ignore[override]
        return FakeConnectors(self.calendar_access, self.account_access, self.cipher)

    @cached_property
    def connection_store(self) -> Any:
        return self.stores.connection_store

    @cached_property
    def calendar_store(self) -> Any:
        return self.stores.calendar_store

    @cached_property
    def appointment_store(self) -> Any:
        return self.stores.appointment_store

    @cached_property
    def settings_store(self) -> Any:
        return self.stores.settings_store

    @cached_property
    def mirror_store(self) -> Any:
        return self.stores.mirror_store

    @cached_property
    def pending_store(self) -> Any:
        return self.stores.pending_store

    @cached_property
    def oauth_states(self) -> Any:
        return self.stores.oauth_states

    @cached_property
    def channel_store(self) -> Any:
        return self.stores.channel_store

    @cached_property
    def contact_mirror(self) -> Any:
        return self.stores.contact_sync_stores

    @cached_property
    def candidates(self) -> Any:
        return self.stores.contact_sync_stores

    @cached_property
    def contacts_sync_store(self) -> Any:
        return self.stores.contacts_sync_store

    @cached_property
    def mail_sync_store(self) -> Any:
        return self.stores.mail_sync_store

    @cached_property
    def mailbox_directory(self) -> Any:
        return self.stores.mail_sync_store

    # ------------------------------------------------------------------ arranging
    def connect(self, principal: Principal, email: str = "ada@example.com") -> str:
        """Connect an account the way a user does (authorize, consent, callback); its id."""
        integrations = self.integrations
        start = integrations.start_connect("google", principal, binding="b" * 43)
        answer = self.account_access.oauth("google").approve(start.authorization_url, email=email)
        connection = integrations.complete_connect(
            "google", state=answer["state"], code=answer["code"], error=None, binding="b" * 43
        )
        return connection.connection_id

    def calendar_of(self, connection_id: str) -> FakeCalendar:
        """The account's calendar provider, to act as the user in the calendar app."""
        stored = self.stores.connection_store.get_stored(*self._owner(connection_id))
        if stored is None:
            raise KeyError(connection_id)
        return self.calendar_access.calendar(stored)

    def _owner(self, connection_id: str) -> tuple[Principal, str]:
        for principal, found in self.stores.connection_store.all_keys():
            if found == connection_id:
                return principal, connection_id
        raise KeyError(connection_id)
