"""The composition root: the one place that names concrete adapters and builds the object
graph. Each function builds one graph per execution environment (:func:`graph` or, for the
webhooks that call no provider API, :func:`core`), each part on first use and once:
one cipher, one queue, one store of each kind, one use case of each kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from crmsync.app.connectors import Connectors
    from crmsync.config import Settings
    from crmsync.dal.appointments import AppointmentStore
    from crmsync.dal.bcc import BccAddressStore, SenderAddressStore
    from crmsync.dal.calendars import CalendarStore
    from crmsync.dal.candidates import CandidateStore
    from crmsync.dal.channels import ChannelStore
    from crmsync.dal.connections import ConnectionStore
    from crmsync.dal.contacts import ContactStore
    from crmsync.dal.contacts_sync import ContactsSyncStore
    from crmsync.dal.gcontacts import ContactMirrorStore
    from crmsync.dal.guard import PendingDeletionsStore
    from crmsync.dal.mail_bucket import MailBucket
    from crmsync.dal.mail_log import MailLogStore
    from crmsync.dal.mail_sync import MailboxDirectory, MailSyncStore
    from crmsync.dal.mirror import MirrorStore
    from crmsync.dal.never_log import NeverLogStore
    from crmsync.dal.notifications import ChannelReader, SyncMarks, Table
    from crmsync.dal.oauth_states import OAuthStateStore
    from crmsync.dal.review import ReviewImportStore
    from crmsync.dal.settings import SettingsStore
    from crmsync.dal.sync_requests import SyncRequestStore
    from crmsync.dal.tenants import TenantSettingsStore
    from crmsync.domain import Connection, Counter, Principal, StoredConnection
    from crmsync.domain.contacts import Phone
    from crmsync.guard import DeletionThreshold
    from crmsync.logic.appointments import Appointments
    from crmsync.logic.availability import Availability
    from crmsync.logic.bcc_settings import BccSettings
    from crmsync.logic.calendar_settings import CalendarSettingsService
    from crmsync.logic.calendars import Calendars
    from crmsync.logic.contact_review import ContactReview
    from crmsync.logic.contacts import Contacts
    from crmsync.logic.contacts_sync_settings import ContactsSyncSettings, SyncProgressSource
    from crmsync.logic.integrations import Integrations
    from crmsync.logic.mail_send import MailSend
    from crmsync.logic.mail_sync_settings import MailSyncSettings
    from crmsync.logic.never_log import NeverLogSettings
    from crmsync.logic.uploads import Uploads
    from crmsync.mail.inbound import InboundMail
    from crmsync.messaging.events import EventBridgePublisher
    from crmsync.messaging.queue import SyncQueue
    from crmsync.ports.accounts import CredentialPort, PasswordLoginPort
    from crmsync.ports.calendar import CalendarPort
    from crmsync.ports.contacts import ContactsPort
    from crmsync.ports.mail import MailPort
    from crmsync.providers.google.oauth import GoogleOAuth
    from crmsync.providers.google.pubsub import PubSubPush
    from crmsync.providers.microsoft.oauth import MicrosoftOAuth
    from crmsync.security.tokens import TokenCipher
    from crmsync.sync.calendar_sync import CalendarSync
    from crmsync.sync.channels import Channels
    from crmsync.sync.contact_requests import ContactSyncRequests
    from crmsync.sync.contact_sync import ContactSync
    from crmsync.sync.mail_requests import MailSyncRequests
    from crmsync.sync.mail_sync import MailSyncEngine
    from crmsync.sync.planner import SyncPlanner
    from crmsync.sync.polling import CalendarPoller
    from crmsync.webhook_config import WebhookSettings


log = logging.getLogger(__name__)


def client_secret_reader(secret_arn: str) -> Callable[[], str]:
    """Reads an OAuth client secret (Google's, Microsoft's) from Secrets Manager on first use,
    cached for 5 min."""

    def read() -> str:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(secret_arn, max_age=300)
        return value if isinstance(value, str) else bytes(value).decode()

    return read


class CommonSettings(Protocol):
    """What :class:`Base` reads: both :class:`crmsync.config.Settings` and the webhooks'
    :class:`crmsync.webhook_config.WebhookSettings` have it."""

    @property
    def connections_table(self) -> str: ...

    @property
    def oauth_states_table(self) -> str: ...

    @property
    def sync_queue_url(self) -> str: ...

    @property
    def gmail_push_audience(self) -> str: ...

    @property
    def gmail_push_service_account(self) -> str: ...

    @property
    def pubsub_certs_uri(self) -> str: ...


class Base:
    """What every function shares: the sync queue, and what a Gmail push needs. Imports are
    deferred to first use, so a function pays only for what it touches."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings

    def bind_tables(self) -> None:
        """Point the PynamoDB models at this deployment's tables (before any model is used)."""
        from crmsync.models import bind_tables

        bind_tables(
            connections_table=self.settings.connections_table, oauth_states_table=self.settings.oauth_states_table
        )

    @cached_property
    def queue(self) -> SyncQueue:
        from crmsync.messaging.queue import SyncQueue

        return SyncQueue(self.settings.sync_queue_url)

    @cached_property
    def mailbox_directory(self) -> MailboxDirectory:
        from crmsync.dal.mail_sync import MailboxDirectory

        self.bind_tables()
        return MailboxDirectory()

    @cached_property
    def gmail_push(self) -> PubSubPush:
        """Authenticates Gmail's Pub/Sub pushes; one per process, so Google's certificates
        stay cached between invocations."""
        from crmsync.providers.google.pubsub import PubSubPush

        return PubSubPush(
            audience=self.settings.gmail_push_audience,
            service_account=self.settings.gmail_push_service_account,
            certs_url=self.settings.pubsub_certs_uri,
        )


class Core(Base):
    """The webhooks' graph (google_webhook, graph_webhook): a notification's channel read and
    its calendar's mark written with the low-level client (:mod:`crmsync.dal.notifications`,
    the documented exception to PynamoDB: it keeps PynamoDB's models and pydantic out of the
    webhooks' cold start). A Gmail push's mailbox lookup still goes through PynamoDB, imported
    on the first Gmail push."""

    settings: WebhookSettings

    def __init__(self, settings: WebhookSettings) -> None:
        super().__init__(settings)

    @cached_property
    def table(self) -> Table:
        from crmsync.dal.notifications import Table

        return Table(self.settings.connections_table)

    @cached_property
    def channel_store(self) -> ChannelReader:
        from crmsync.dal.notifications import ChannelReader

        return ChannelReader(self.table)

    @cached_property
    def sync_requests(self) -> SyncMarks:
        from crmsync.dal.notifications import SyncMarks

        return SyncMarks(self.table)


class Graph(Base):
    """Every use case of the functions that talk to providers."""

    settings: Settings

    def __init__(
        self,
        settings: Settings,
        *,
        counter: Counter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``clock``: the moment the sync engine and the push channels act at."""
        from crmsync.domain import NoCounter

        super().__init__(settings)
        self.counter: Counter = counter or NoCounter()
        self.clock = clock
        self.bind_tables()

    @cached_property
    def channel_store(self) -> ChannelStore:
        from crmsync.dal.channels import ChannelStore

        return ChannelStore()

    @cached_property
    def sync_requests(self) -> SyncRequestStore:
        from crmsync.dal.sync_requests import SyncRequestStore

        return SyncRequestStore()

    # ------------------------------------------------------------------ infrastructure
    @cached_property
    def cipher(self) -> TokenCipher:
        from crmsync.dal.data_keys import DataKeyStore
        from crmsync.security.tokens import TokenCipher

        return TokenCipher(self.settings.token_key_id, data_keys=DataKeyStore())

    @cached_property
    def events(self) -> EventBridgePublisher:
        """The domain-event bus (EVENT_BUS_NAME); without one, events are not published."""
        from crmsync.messaging.events import EventBridgePublisher

        return EventBridgePublisher(self.settings.event_bus_name, on_failure=self.counter.count)

    @cached_property
    def threshold(self) -> DeletionThreshold:
        from crmsync.guard import DeletionThreshold

        return DeletionThreshold(share=self.settings.mass_deletion_share, minimum=self.settings.mass_deletion_minimum)

    # ------------------------------------------------------------------ providers
    @cached_property
    def google_oauth(self) -> GoogleOAuth:
        from crmsync.providers.google.oauth import GoogleOAuth

        return GoogleOAuth(
            self.settings.google,
            redirect_uri=self.settings.google_redirect_uri,
            client_secret=self._google_secret,
        )

    @cached_property
    def _google_secret(self) -> Callable[[], str]:
        return client_secret_reader(self.settings.google.client_secret_arn)

    def google_calendar(self, refresh_token: str, stored: StoredConnection) -> CalendarPort:
        from crmsync.providers.google.calendar import GoogleCalendar

        return GoogleCalendar(
            self.settings.google, refresh_token, self._google_secret, tenant_id=stored.connection.tenant_id
        )

    def google_contacts(self, refresh_token: str, connection: Connection) -> ContactsPort:
        from crmsync.providers.google.people import GooglePeople

        return GooglePeople(self.settings.google, refresh_token, self._google_secret)

    def google_mail(self, refresh_token: str, connection: Connection) -> MailPort:
        from crmsync.providers.google.gmail import GoogleMail, QuotaPacer

        # One pacer per opened mailbox: a mailbox syncs in one FIFO group, one run at a time,
        # so its run's calls stay within Gmail's per-user quota without meeting a 403.
        return GoogleMail(self.settings.google, refresh_token, self._google_secret, pacer=QuotaPacer())

    def google_credential(self, refresh_token: str, connection: Connection) -> CredentialPort:
        from crmsync.providers.google.oauth import GoogleCredential

        return GoogleCredential(self.google_oauth, refresh_token)

    @cached_property
    def microsoft_oauth(self) -> MicrosoftOAuth:
        """Sign in with Microsoft (MSAL); offered only when a client id and secret are set."""
        from crmsync.providers.microsoft.oauth import MicrosoftOAuth

        return MicrosoftOAuth(
            self.settings.microsoft,
            redirect_uri=self.settings.microsoft_redirect_uri,
            client_secret=self._microsoft_secret,
        )

    @cached_property
    def _microsoft_secret(self) -> Callable[[], str]:
        return client_secret_reader(self.settings.microsoft.client_secret_arn)

    def microsoft_credential(self, token_cache: str, connection: Connection) -> CredentialPort:
        from crmsync.providers.microsoft.oauth import MicrosoftCredential

        return MicrosoftCredential(self.microsoft_oauth, token_cache, connection.scopes)

    def microsoft_calendar(self, token_cache: str, stored: StoredConnection) -> CalendarPort:
        """The account's Outlook calendars over Graph, with access tokens from its token cache
        (MSAL: the cached one while valid, else redeemed with the refresh token, whose
        replacement is stored at once: :meth:`_keep_token_cache`)."""
        from crmsync.providers.graph.calendar import GraphCalendar
        from crmsync.providers.microsoft.oauth import MicrosoftTokens

        connection = stored.connection
        tokens = MicrosoftTokens(
            self.microsoft_oauth, token_cache, connection.scopes, renewed=self._keep_token_cache(stored)
        )
        return GraphCalendar(
            self.settings.microsoft.graph_root,
            tokens,
            tenant_id=connection.tenant_id,
            clock=self.clock,
            lifecycle_url=self.settings.graph_lifecycle_url,
        )

    @staticmethod
    def _microsoft_reaches_calendars(connection: Connection) -> bool:
        """Whether the grant holds Calendars.ReadWrite (the user may have declined it)."""
        from crmsync.providers.microsoft.oauth import FEATURE_SCOPES

        return set(FEATURE_SCOPES["calendar"]) <= set(connection.scopes)

    def _keep_token_cache(self, stored: StoredConnection) -> Callable[[str], None]:
        """Stores a token cache MSAL renewed, KMS-encrypted, on the connection as read (then on
        the version this wrote). Lost to another writer (a sync or the health check that stored
        its own renewal, a reconnect): theirs stands and ours is dropped; our refresh token
        stays valid until its own expiry, so nothing breaks. Never raises: the access token is
        in hand, and a failed write must not fail the sync that asked for it."""
        from crmsync.security.tokens import TokenContext

        c = stored.connection
        version = stored.version

        def keep(token_cache: str) -> None:
            nonlocal version
            try:
                ciphertext = self.cipher.encrypt(token_cache, TokenContext(c.tenant_id, c.user_id, c.connection_id))
                written = self.connection_store.renew_credential(
                    c.principal, c.connection_id, ciphertext, version=version
                )
            except Exception:  # see above: the renewal serves the next sync, not this one
                log.exception("could not store a renewed token cache", extra={"connection_id": c.connection_id})
                return
            if written is None:
                log.info("a newer token cache was stored meanwhile", extra={"connection_id": c.connection_id})
                return
            version = written

        return keep

    def caldav_calendar(self, secret: str, stored: StoredConnection) -> CalendarPort:
        from crmsync.providers.caldav.account import AppPassword
        from crmsync.providers.caldav.calendar import CalDavCalendar

        credential = AppPassword.from_secret(secret)
        return CalDavCalendar(
            credential.client(self.caldav_guard),
            tenant_id=stored.connection.tenant_id,
            home_url=credential.home_url,
            principal_url=credential.principal_url,
            clock=self.clock,
        )

    def caldav_credential(self, secret: str, connection: Connection) -> CredentialPort:
        from crmsync.providers.caldav.account import AppPassword, CalDavCredential

        return CalDavCredential(AppPassword.from_secret(secret), self.caldav_guard)

    def caldav_guard(self, url: str) -> None:
        """Every redirect a CalDAV server answers is checked before it is followed: a server
        (a user's own, or one taken over) must not send the backend to its own network."""
        from crmsync.errors import ProviderError
        from crmsync.security.urls import UnsafeServerUrl, check_server_url

        try:
            check_server_url(url, private=self.settings.caldav.private_servers)
        except UnsafeServerUrl:
            raise ProviderError("The CalDAV server redirected to an address it may not.", retryable=False) from None

    def caldav_login(self) -> PasswordLoginPort:
        """The iCloud connect flow's sign-in: discovery with the name and password (from the
        server the user names, else ``CALDAV_BASE_URL``) before anything is stored."""
        from crmsync.providers.caldav.account import CalDavLogin

        return CalDavLogin(self.settings.caldav.base_url, self.caldav_guard)

    @cached_property
    def connectors(self) -> Connectors:
        """Every provider's adapters over stored connections (the ports' access)."""
        from crmsync.app.connectors import Connectors, ProviderKit
        from crmsync.domain import CredentialKind
        from crmsync.providers.google.scopes import reaches_calendars

        google = ProviderKit(
            credential_kinds=frozenset({CredentialKind.OAUTH_TOKENS}),
            credential=self.google_credential,
            oauth=lambda: self.google_oauth,
            calendar=self.google_calendar,
            reaches_calendars=lambda connection: reaches_calendars(connection.scopes),
            contacts=self.google_contacts,
            mail=self.google_mail,
        )
        # iCloud (and any CalDAV server): an app-specific password, calendars only, polled.
        icloud = ProviderKit(
            credential_kinds=frozenset({CredentialKind.APP_PASSWORD}),
            credential=self.caldav_credential,
            password_login=self.caldav_login,
            calendar=self.caldav_calendar,
            polled=True,
        )
        kits = {"google": google, "icloud": icloud}
        if self.settings.microsoft.enabled:
            # Microsoft: MSAL's token cache per connection; Outlook calendars over Graph, with a
            # subscription per synced calendar (GraphCalendar.notification is SUBSCRIPTION).
            kits["microsoft"] = ProviderKit(
                credential_kinds=frozenset({CredentialKind.OAUTH_TOKENS}),
                credential=self.microsoft_credential,
                oauth=lambda: self.microsoft_oauth,
                calendar=self.microsoft_calendar,
                reaches_calendars=self._microsoft_reaches_calendars,
            )
        return Connectors(self.cipher, kits)

    # ------------------------------------------------------------------ stores
    @cached_property
    def connection_store(self) -> ConnectionStore:
        from crmsync.dal.connections import ConnectionStore

        return ConnectionStore()

    @cached_property
    def calendar_store(self) -> CalendarStore:
        from crmsync.dal.calendars import CalendarStore

        return CalendarStore()

    @cached_property
    def appointment_store(self) -> AppointmentStore:
        from crmsync.dal.appointments import AppointmentStore

        return AppointmentStore()

    @cached_property
    def settings_store(self) -> SettingsStore:
        from crmsync.dal.settings import SettingsStore

        return SettingsStore()

    @cached_property
    def mirror_store(self) -> MirrorStore:
        from crmsync.dal.mirror import MirrorStore

        return MirrorStore()

    @cached_property
    def pending_store(self) -> PendingDeletionsStore:
        from crmsync.dal.guard import PendingDeletionsStore

        return PendingDeletionsStore()

    @cached_property
    def oauth_states(self) -> OAuthStateStore:
        from crmsync.dal.oauth_states import OAuthStateStore

        return OAuthStateStore()

    @cached_property
    def bcc_addresses(self) -> BccAddressStore:
        from crmsync.dal.bcc import BccAddressStore

        return BccAddressStore()

    @cached_property
    def sender_addresses(self) -> SenderAddressStore:
        from crmsync.dal.bcc import SenderAddressStore

        return SenderAddressStore()

    @cached_property
    def never_log(self) -> NeverLogStore:
        """The users' never-log lists: BCC logging and Gmail sync ask ``get(principal).blocks(email)``."""
        from crmsync.dal.never_log import NeverLogStore

        return NeverLogStore()

    @cached_property
    def contact_store(self) -> ContactStore:
        from crmsync.dal.contacts import ContactStore

        return ContactStore()

    @cached_property
    def contacts_sync_store(self) -> ContactsSyncStore:
        from crmsync.dal.contacts_sync import ContactsSyncStore

        return ContactsSyncStore()

    @cached_property
    def contact_mirror(self) -> ContactMirrorStore:
        from crmsync.dal.gcontacts import ContactMirrorStore

        return ContactMirrorStore()

    @cached_property
    def candidates(self) -> CandidateStore:
        """The import candidates (F10): what the import review reads and answers."""
        from crmsync.dal.candidates import CandidateStore

        return CandidateStore()

    @cached_property
    def tenant_settings(self) -> TenantSettingsStore:
        from crmsync.dal.tenants import TenantSettingsStore

        return TenantSettingsStore()

    @cached_property
    def mail_log(self) -> MailLogStore:
        from crmsync.dal.mail_log import MailLogStore

        return MailLogStore()

    @cached_property
    def mail_bucket(self) -> MailBucket:
        from crmsync.dal.mail_bucket import MailBucket

        return MailBucket(self.settings.mail_bucket)

    # ------------------------------------------------------------------ use cases
    @cached_property
    def availability(self) -> Availability:
        from crmsync.logic.availability import Availability

        return Availability(
            appointments=self.appointment_store, calendars=self.calendar_store, mirror=self.mirror_store
        )

    @cached_property
    def appointments(self) -> Appointments:
        from crmsync.logic.appointments import Appointments

        return Appointments(
            store=self.appointment_store,
            settings=self.settings_store,
            connections=self.connection_store,
            calendars=self.connectors,
            queue=self.queue,
            external_busy=self.availability.external_busy,
            events=self.events,
            # Lazily: the API's cold start need not import the mirror store.
            created=lambda *event: self.mirror_store.record_unlisted(*event),
        )

    @cached_property
    def planner(self) -> SyncPlanner:
        from crmsync.sync.planner import SyncPlanner

        return SyncPlanner(
            settings=self.settings_store, calendars=self.calendar_store, mirror=self.mirror_store, queue=self.queue
        )

    @cached_property
    def calendar_poller(self) -> CalendarPoller:
        from crmsync.sync.polling import CalendarPoller

        return CalendarPoller(
            connections=self.connection_store,
            calendars=self.calendar_store,
            settings=self.settings_store,
            queue=self.queue,
            polled=self.connectors.polled_providers,
            clock=self.clock,
        )

    @cached_property
    def calendars(self) -> Calendars:
        from crmsync.logic.calendars import Calendars

        return Calendars(
            connections=self.connection_store,
            calendars=self.calendar_store,
            access=self.connectors,
            mirror=self.mirror_store,
            settings=self.settings_store,
            pending=self.pending_store,
            queue=self.queue,
            planner=self.planner,
            poll=lambda principal: self.calendar_poller.poll_user(principal),
        )

    @cached_property
    def channels(self) -> Channels:
        from crmsync.sync.channels import Channels

        return Channels(
            store=self.channel_store,
            mirror=self.mirror_store,
            webhook_url=self.settings.calendar_webhook_url,
            subscription_url=self.settings.graph_notification_url,
            clock=self.clock,
        )

    @cached_property
    def calendar_sync(self) -> CalendarSync:
        from crmsync.sync.calendar_sync import CalendarSync

        return CalendarSync(
            connections=self.connection_store,
            settings=self.settings_store,
            mirror=self.mirror_store,
            calendars=self.connectors,
            channels=self.channels,
            inbound=self.appointments.absorb,
            events=self.events,
            clock=self.clock,
            threshold=self.threshold,
            pending=self.pending_store,
            linked=self.appointments.linked_event_ids,
            keep=self.appointments.keep,
            counter=self.counter,
        )

    @cached_property
    def calendar_settings(self) -> CalendarSettingsService:
        from crmsync.logic.calendar_settings import CalendarSettingsService

        planner = self.planner

        def sync_after_change(principal: Principal) -> object:
            """Newly chosen calendars are synced (and get their channel) at once, dropped ones retired."""
            occasion = f"settings@{datetime.now(UTC).isoformat()}"
            return planner.enqueue(principal, None, reason="settings", occasion=occasion)

        return CalendarSettingsService(
            connections=self.connection_store,
            calendars=self.calendar_store,
            settings=self.settings_store,
            on_linked=self.appointments.enqueue_pending,
            on_changed=sync_after_change,
            statuses=self.calendars.with_status,
        )

    @property
    def oauth_features(self) -> dict[str, tuple[str, ...]]:
        """The features users may connect per OAuth provider: Google's configured ones, and
        Microsoft's calendar when Microsoft is configured (like iCloud's ``enabled``)."""
        features = {"google": tuple(self.settings.google.features)}
        if self.settings.microsoft.enabled:
            features["microsoft"] = ("calendar",)
        return features

    @cached_property
    def integrations(self) -> Integrations:
        from crmsync.logic.integrations import Integrations

        return Integrations(
            connections=self.connection_store,
            states=self.oauth_states,
            cipher=self.cipher,
            accounts=self.connectors,
            queue=self.queue,
            enabled_features=self.oauth_features,
            password_providers=("icloud",) if self.settings.caldav.enabled else (),
            private_servers=self.settings.caldav.private_servers,
            polled=self.connectors.polled_providers,
            state_ttl=timedelta(seconds=self.settings.oauth_state_ttl_seconds),
            counter=self.counter,
            mirrors=[
                self.calendar_settings.forget_connection,
                lambda principal, connection_id: self.contacts_sync_settings.forget_connection(
                    principal, connection_id
                ),
                self.calendar_store.delete_for_connection,
                self.calendar_sync.forget_connection,
                self.contact_sync.forget_connection,
                lambda principal, connection_id: self.mail_sync_settings.forget_connection(principal, connection_id),
            ],
            before_revoke=[
                self.calendar_sync.stop_channels,
                lambda principal, stored: self.mail_sync.stop_before_revoke(principal, stored),
            ],
            # Deferred: the contacts sync settings use these integrations to start consents.
            after_connect={
                "contacts_sync": lambda principal, c: self.contacts_sync_settings.complete(principal, c),
                "mail_sync": lambda principal, c: self.mail_sync_settings.complete(principal, c),
            },
            on_request=("contacts", "email"),
        )

    @cached_property
    def contacts_sync_progress(self) -> SyncProgressSource:
        """The contacts sync's progress: syncing, complete, or N contacts found."""
        from crmsync.logic.contacts_sync_settings import SyncedProgress

        return SyncedProgress(self.contact_mirror, self.candidates, self.review_imports)

    @cached_property
    def contacts_sync_settings(self) -> ContactsSyncSettings:
        from crmsync.logic.contacts_sync_settings import ContactsSyncSettings

        return ContactsSyncSettings(
            connections=self.connection_store,
            store=self.contacts_sync_store,
            integrations=self.integrations,
            calendars=self.calendar_store,
            calendar_settings=self.calendar_settings,
            progress=self.contacts_sync_progress,
            trigger=self.contact_sync_requests,
            held=self.pending_store,
        )

    @cached_property
    def bcc_settings(self) -> BccSettings:
        from crmsync.logic.bcc_settings import BccSettings

        return BccSettings(
            addresses=self.bcc_addresses,
            senders=self.sender_addresses,
            connections=self.connection_store,
            logging_domain=self.settings.logging_domain,
        )

    @cached_property
    def never_log_settings(self) -> NeverLogSettings:
        from crmsync.logic.never_log import NeverLogSettings

        return NeverLogSettings(self.never_log)

    @cached_property
    def contacts(self) -> Contacts:
        from crmsync.logic.contacts import Contacts

        return Contacts(
            contacts=self.contact_store,
            log=self.mail_log,
            bucket=self.mail_bucket,
            tenants=self.tenant_settings,
            events=self.events,
            default_region=self.settings.default_phone_region,
            # Deferred: the queue and the mail sync settings are built on first use.
            mail_pull=lambda principal, emails: self.mail_sync_requests.pull(principal, emails),
        )

    @cached_property
    def contact_sync(self) -> ContactSync:
        from crmsync.logic import contact_fields
        from crmsync.sync.contact_sync import ContactSync

        contacts = self.contacts

        def read_phones(principal: Principal, values: Sequence[str]) -> tuple[Phone, ...]:
            return contact_fields.phones(values, contacts.region(principal.tenant_id))

        return ContactSync(
            mirror=self.contact_mirror,
            contacts=self.contact_store,
            candidates=self.candidates,
            access=self.connectors,
            read_phones=read_phones,
            group_name=self.settings.contacts_group_name,
            clock=self.clock,
            threshold=self.threshold,
            held=self.pending_store,
            events=self.events,
            counter=self.counter,
            # Deferred: the integrations name this sync among what a disconnect forgets.
            scope_granted=lambda connection: self.integrations.feature_granted(connection, "contacts"),
        )

    @cached_property
    def contact_sync_requests(self) -> ContactSyncRequests:
        """Enqueues contacts syncs: the schedule, a reported login, on demand."""
        from crmsync.sync.contact_requests import ContactSyncRequests

        return ContactSyncRequests(settings=self.contacts_sync_store, queue=self.queue)

    @cached_property
    def review_imports(self) -> ReviewImportStore:
        from crmsync.dal.review import ReviewImportStore

        return ReviewImportStore()

    @cached_property
    def contact_review(self) -> ContactReview:
        from crmsync.logic.contact_review import ContactReview

        return ContactReview(
            candidates=self.candidates,
            mirror=self.contact_mirror,
            contacts=self.contacts,
            imports=self.review_imports,
            sync=self.contacts_sync_store,
            queue=self.queue,
        )

    @cached_property
    def mail_sync_store(self) -> MailSyncStore:
        from crmsync.dal.mail_sync import MailSyncStore

        return MailSyncStore()

    @cached_property
    def mail_sync(self) -> MailSyncEngine:
        """F8's sync engine (the worker's; the API only queues its runs)."""
        from crmsync.mail.parse import parse_message
        from crmsync.sync.mail_sync import MailSyncEngine

        return MailSyncEngine(
            store=self.mail_sync_store,
            connections=self.connection_store,
            senders=self.sender_addresses,
            access=self.connectors,
            contacts=self.contact_store,
            log_store=self.mail_log,
            bucket=self.mail_bucket,
            parse=parse_message,
            publisher=self.events,
            queue=self.queue,
            logging_domain=self.settings.logging_domain,
            topic=self.settings.gmail_topic,
            never_log=self.never_log,
            # Deferred: the integrations name the mail sync among what a disconnect forgets.
            scope_granted=lambda connection: self.integrations.feature_granted(connection, "email"),
            clock=self.clock,
            counter=self.counter,
        )

    @cached_property
    def mail_sync_requests(self) -> MailSyncRequests:
        from crmsync.sync.mail_requests import MailSyncRequests

        return MailSyncRequests(self.queue, self.mail_sync_store)

    @cached_property
    def mail_sync_settings(self) -> MailSyncSettings:
        from crmsync.logic.mail_sync_settings import MailSyncSettings

        return MailSyncSettings(
            connections=self.connection_store,
            store=self.mail_sync_store,
            directory=self.mailbox_directory,
            integrations=self.integrations,
            requests=self.mail_sync_requests,
            # Deferred: stopping a watch opens the mailbox (the engine does it).
            stopper=self,
        )

    def stop_watch(self, principal: Principal, connection_id: str) -> None:
        """Stop a mailbox's Gmail watch (the settings' stopper)."""
        self.mail_sync.stop_watch(principal, connection_id)

    @cached_property
    def uploads(self) -> Uploads:
        """Presigned uploads of attachments for mail sent from the CRM."""
        from crmsync.logic.uploads import Uploads

        return Uploads(self.mail_bucket, clock=self.clock)

    @cached_property
    def mail_send(self) -> MailSend:
        """Mail sent from the CRM through the user's synced Gmail (F8)."""
        from crmsync.logic.mail_send import MailSend
        from crmsync.providers.google.scopes import GMAIL_SEND

        return MailSend(
            contacts=self.contact_store,
            connections=self.connection_store,
            sync=self.mail_sync_store,
            access=self.connectors,
            log_store=self.mail_log,
            bucket=self.mail_bucket,
            publisher=self.events,
            message_id_domain=self.settings.logging_domain,
            scope_granted=lambda connection: GMAIL_SEND in connection.scopes,
            clock=self.clock,
            counter=self.counter,
        )

    @cached_property
    def inbound_mail(self) -> InboundMail:
        """F9's inbound_mail use case (only that function imports the mail code)."""
        from crmsync.mail.inbound import InboundMail
        from crmsync.mail.parse import parse_message

        return InboundMail(
            addresses=self.bcc_addresses,
            senders=self.sender_addresses,
            connections=self.connection_store,
            contacts=self.contacts,
            never_log=self.never_log,
            log_store=self.mail_log,
            bucket=self.mail_bucket,
            parse=parse_message,
            publisher=self.events,
            logging_domain=self.settings.logging_domain,
            counter=self.counter,
        )


def _metrics_counter() -> Counter:
    """Counts into the function's metrics (instances share one metric set, which the
    handler's ``log_metrics`` writes)."""
    from crmsync.metrics import Metrics, MetricsCounter

    return MetricsCounter(Metrics())


@cache
def graph() -> Graph:
    """This execution environment's graph, built on first use (not at import)."""
    from crmsync.config import get_settings

    return Graph(get_settings(), counter=_metrics_counter())


@cache
def core() -> Core:
    """The webhooks' graph: their settings only (no provider client settings, no pydantic)."""
    from crmsync.webhook_config import WebhookSettings

    return Core(WebhookSettings.from_env())
