"""Builds the use cases from settings. Functions call this once per execution environment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from crmsync.config import Settings
from crmsync.dal.appointments import AppointmentStore
from crmsync.dal.calendars import CalendarStore
from crmsync.dal.channels import ChannelStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.oauth_states import OAuthStateStore
from crmsync.dal.settings import SettingsStore
from crmsync.logic.appointments import Appointments
from crmsync.logic.availability import Availability
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Counter, Integrations
from crmsync.messaging.queue import SyncQueue
from crmsync.models import bind_tables
from crmsync.providers.google.calendar import GoogleCalendar
from crmsync.providers.google.oauth import GoogleOAuth
from crmsync.security.tokens import TokenCipher
from crmsync.sync.calendar_sync import CalendarSync
from crmsync.sync.channels import Channels


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


def _bind(settings: Settings) -> None:
    bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)


def build_calendars(settings: Settings) -> Calendars:
    _bind(settings)
    return Calendars(
        connections=ConnectionStore(),
        calendars=CalendarStore(),
        cipher=TokenCipher(settings.token_key_id),
        provider=_google_calendar(settings),
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
    )


def build_availability(settings: Settings) -> Availability:
    _bind(settings)
    return Availability(appointments=AppointmentStore(), calendars=CalendarStore(), mirror=MirrorStore())


def build_calendar_sync(settings: Settings) -> CalendarSync:
    _bind(settings)
    return CalendarSync(
        connections=ConnectionStore(),
        settings=SettingsStore(),
        mirror=MirrorStore(),
        cipher=TokenCipher(settings.token_key_id),
        lister=_google_calendar(settings),
        channels=Channels(store=ChannelStore(), mirror=MirrorStore(), webhook_url=settings.calendar_webhook_url),
        inbound=build_appointments(settings).absorb,
    )


def build_calendar_settings(settings: Settings) -> CalendarSettingsService:
    _bind(settings)
    return CalendarSettingsService(
        connections=ConnectionStore(),
        calendars=CalendarStore(),
        settings=SettingsStore(),
        on_linked=build_appointments(settings).enqueue_pending,
    )


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
