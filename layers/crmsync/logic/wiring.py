"""Builds the use cases from settings. Functions call this once per execution environment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from crmsync.config import Settings
from crmsync.dal.appointments import AppointmentStore
from crmsync.dal.bcc import BccAddressStore, SenderAddressStore
from crmsync.dal.calendars import CalendarStore
from crmsync.dal.channels import ChannelStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.contacts import ContactStore
from crmsync.dal.guard import PendingDeletionsStore
from crmsync.dal.mail_bucket import MailBucket
from crmsync.dal.mail_log import MailLogStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.oauth_states import OAuthStateStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import Principal
from crmsync.guard import DeletionThreshold
from crmsync.logic.appointments import Appointments
from crmsync.logic.availability import Availability
from crmsync.logic.bcc_settings import BccSettings
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.contacts import Contacts
from crmsync.logic.integrations import Counter, Integrations
from crmsync.messaging.events import EventBridgePublisher
from crmsync.messaging.queue import SyncQueue
from crmsync.models import bind_tables
from crmsync.providers.google.calendar import GoogleCalendar
from crmsync.providers.google.oauth import GoogleOAuth
from crmsync.security.tokens import TokenCipher
from crmsync.sync.calendar_sync import CalendarSync
from crmsync.sync.channels import Channels
from crmsync.sync.planner import SyncPlanner

if TYPE_CHECKING:
    from crmsync.mail.inbound import InboundMail, Parser


def client_secret_reader(secret_arn: str) -> Callable[[], str]:
    """Reads the Google client secret from Secrets Manager on first use, cached for 5 min."""

    def read() -> str:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(secret_arn, max_age=300)
        return value if isinstance(value, str) else bytes(value).decode()

    return read


def _google_calendar(settings: Settings) -> Callable[[str], GoogleCalendar]:
    """The Calendar adapter factory: one connection's refresh token in, an adapter out."""
    secret = client_secret_reader(settings.google.client_secret_arn)
    return lambda refresh_token: GoogleCalendar(settings.google, refresh_token, secret)


def build_events(settings: Settings) -> EventBridgePublisher:
    """The domain-event bus (EVENT_BUS_NAME); without one, events are not published."""
    return EventBridgePublisher(settings.event_bus_name)


def _bind(settings: Settings) -> None:
    bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)


def build_calendars(settings: Settings) -> Calendars:
    _bind(settings)
    return Calendars(
        connections=ConnectionStore(),
        calendars=CalendarStore(),
        cipher=TokenCipher(settings.token_key_id),
        provider=_google_calendar(settings),
        queue=SyncQueue(settings.sync_queue_url),
        planner=build_sync_planner(settings),
    )


def build_appointments(settings: Settings) -> Appointments:
    _bind(settings)
    return Appointments(
        store=AppointmentStore(),
        settings=SettingsStore(),
        connections=ConnectionStore(),
        cipher=TokenCipher(settings.token_key_id),
        writer=_google_calendar(settings),
        queue=SyncQueue(settings.sync_queue_url),
        external_busy=build_availability(settings).external_busy,
        events=build_events(settings),
    )


def build_availability(settings: Settings) -> Availability:
    _bind(settings)
    return Availability(appointments=AppointmentStore(), calendars=CalendarStore(), mirror=MirrorStore())


def deletion_threshold(settings: Settings) -> DeletionThreshold:
    return DeletionThreshold(share=settings.mass_deletion_share, minimum=settings.mass_deletion_minimum)


def build_calendar_sync(settings: Settings, counter: Counter | None = None) -> CalendarSync:
    _bind(settings)
    appointments = build_appointments(settings)
    return CalendarSync(
        connections=ConnectionStore(),
        settings=SettingsStore(),
        mirror=MirrorStore(),
        cipher=TokenCipher(settings.token_key_id),
        lister=_google_calendar(settings),
        channels=Channels(store=ChannelStore(), mirror=MirrorStore(), webhook_url=settings.calendar_webhook_url),
        inbound=appointments.absorb,
        events=build_events(settings),
        threshold=deletion_threshold(settings),
        pending=PendingDeletionsStore(),
        linked=appointments.linked_event_ids,
        keep=appointments.keep,
        counter=counter,
    )


def build_sync_planner(settings: Settings) -> SyncPlanner:
    _bind(settings)
    return SyncPlanner(
        settings=SettingsStore(),
        calendars=CalendarStore(),
        mirror=MirrorStore(),
        queue=SyncQueue(settings.sync_queue_url),
    )


def build_calendar_settings(settings: Settings) -> CalendarSettingsService:
    _bind(settings)
    return CalendarSettingsService(
        connections=ConnectionStore(),
        calendars=CalendarStore(),
        settings=SettingsStore(),
        on_linked=build_appointments(settings).enqueue_pending,
        on_changed=_sync_after_settings_change(build_sync_planner(settings)),
        statuses=build_calendars(settings).with_status,
    )


def _sync_after_settings_change(planner: SyncPlanner) -> Callable[[Principal], object]:
    """Newly chosen calendars are synced (and get their channel) at once, dropped ones retired."""

    def enqueue(principal: Principal) -> object:
        return planner.enqueue(principal, None, reason="settings", occasion=f"settings@{datetime.now(UTC).isoformat()}")

    return enqueue


def build_integrations(settings: Settings, counter: Counter | None = None) -> Integrations:
    _bind(settings)
    calendar_sync = build_calendar_sync(settings)
    return Integrations(
        connections=ConnectionStore(),
        states=OAuthStateStore(),
        cipher=TokenCipher(settings.token_key_id),
        google=GoogleOAuth(
            settings.google,
            redirect_uri=settings.google_redirect_uri,
            client_secret=client_secret_reader(settings.google.client_secret_arn),
        ),
        queue=SyncQueue(settings.sync_queue_url),
        enabled_features=settings.google.features,
        state_ttl=timedelta(seconds=settings.oauth_state_ttl_seconds),
        counter=counter,
        mirrors=[
            build_calendar_settings(settings).forget_connection,
            CalendarStore().delete_for_connection,
            calendar_sync.forget_connection,
        ],
        before_revoke=[calendar_sync.stop_channels],
    )


def build_bcc_settings(settings: Settings) -> BccSettings:
    _bind(settings)
    return BccSettings(
        addresses=BccAddressStore(),
        senders=SenderAddressStore(),
        connections=ConnectionStore(),
        logging_domain=settings.logging_domain,
    )


def build_contacts(settings: Settings) -> Contacts:
    _bind(settings)
    return Contacts(contacts=ContactStore(), log=MailLogStore(), bucket=MailBucket(settings.mail_bucket))


def build_inbound_mail(settings: Settings, parse: Parser, counter: Counter | None = None) -> InboundMail:
    """F9's inbound_mail use case. The parser is handed in by that function, and the module is
    imported here: no other function pays for importing the mail code."""
    from crmsync.mail.inbound import InboundMail

    _bind(settings)
    return InboundMail(
        addresses=BccAddressStore(),
        senders=SenderAddressStore(),
        connections=ConnectionStore(),
        contacts=ContactStore(),
        log_store=MailLogStore(),
        bucket=MailBucket(settings.mail_bucket),
        parse=parse,
        publisher=EventBridgePublisher(settings.event_bus_name, on_failure=counter.count if counter else None),
        logging_domain=settings.logging_domain,
        counter=counter,
    )
