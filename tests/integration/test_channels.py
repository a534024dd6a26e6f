"""Calendar push channels: authentication of notifications, renewal before expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests

from crmsync.config import Settings
from crmsync.dal.channels import Channel, ChannelStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import Principal
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from crmsync.logic.wiring import client_secret_reader
from crmsync.providers.google.calendar import GoogleCalendar
from crmsync.security.secrets import sha256_hex
from crmsync.security.tokens import TokenCipher
from crmsync.sync.calendar_sync import CalendarSync
from crmsync.sync.channels import Channels, on_notification
from tests.integration.conftest import RecordingQueue
from tests.integration.test_connected_calendars import connect
from tests.support import clock
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
TOKEN = "the-channel-token-known-only-to-google-and-us"


@pytest.fixture
def channel(integrations: Integrations) -> Channel:  # (building the use cases binds the tables)
    c = Channel(
        channel_id="5b0f1d3e-1111-4222-8333-444455556666",
        tenant_id=ALICE.tenant_id,
        user_id=ALICE.user_id,
        connection_id="g1",
        calendar_id="ada@example.com",
        resource_id="res-1",
        token_hash=sha256_hex(TOKEN),
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )
    ChannelStore().put(c)
    return c


def headers(channel: Channel, **over: str) -> dict[str, str]:
    base = {
        "X-Goog-Channel-ID": channel.channel_id,
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "7",
        "X-Goog-Channel-Token": TOKEN,
    }
    return {**base, **over}


def test_an_authentic_notification_enqueues_one_sync(channel: Channel, recorded: RecordingQueue) -> None:
    assert on_notification(headers(channel), ChannelStore(), recorded) == (200, "enqueued")
    (message,) = recorded.take()
    assert (message.connection_id, message.calendar_id, message.reason) == ("g1", "ada@example.com", "push")


def test_a_duplicated_notification_is_the_same_deduplicated_message(channel: Channel, recorded: RecordingQueue) -> None:
    on_notification(headers(channel), ChannelStore(), recorded)
    on_notification(headers(channel), ChannelStore(), recorded)
    first, second = recorded.take()
    assert first.deduplication_id == second.deduplication_id
    on_notification(headers(channel, **{"X-Goog-Message-Number": "8"}), ChannelStore(), recorded)
    (third,) = recorded.take()
    assert third.deduplication_id != first.deduplication_id


@pytest.mark.parametrize(
    "forged",
    [
        {"X-Goog-Channel-Token": "guess"},
        {"X-Goog-Channel-Token": ""},
        {"X-Goog-Resource-ID": "another-resource"},
    ],
)
def test_a_wrong_token_or_resource_is_refused(
    channel: Channel, recorded: RecordingQueue, forged: dict[str, str]
) -> None:
    status, _ = on_notification(headers(channel, **forged), ChannelStore(), recorded)
    assert status == 403
    assert recorded.take() == []


def test_sync_messages_and_unknown_channels_are_acknowledged_and_ignored(
    channel: Channel, recorded: RecordingQueue
) -> None:
    assert on_notification(headers(channel, **{"X-Goog-Resource-State": "sync"}), ChannelStore(), recorded)[0] == 200
    unknown = headers(channel, **{"X-Goog-Channel-ID": "9d6c3a55-0000-4000-8000-000000000000"})
    assert on_notification(unknown, ChannelStore(), recorded) == (200, "unknown channel")
    assert recorded.take() == []


def test_a_channel_expiring_within_a_day_is_renewed_new_first_then_old_stopped(
    integrations: Integrations, calendars: Calendars, service_env, stack
) -> None:
    email = "renew-" + sha256_hex(str(datetime.now(UTC)))[:8] + "@example.com"
    connection_id = connect(integrations, ALICE, email, typed=True)
    calendars.refresh(ALICE, connection_id)

    def sync_at(moment: Callable[[], datetime]) -> None:
        settings = Settings.from_env(service_env)
        secret = client_secret_reader(settings.google.client_secret_arn)
        CalendarSync(
            connections=ConnectionStore(),
            settings=SettingsStore(),
            mirror=MirrorStore(),
            cipher=TokenCipher(settings.token_key_id),
            lister=lambda token: GoogleCalendar(settings.google, token, secret),
            channels=Channels(
                store=ChannelStore(), mirror=MirrorStore(), webhook_url=settings.calendar_webhook_url, clock=moment
            ),
        ).run(ALICE, connection_id, email)

    sync_at(lambda: datetime.now(UTC))
    first = MirrorStore().cursor(ALICE, connection_id, email)
    assert first.channel_id
    sync_at(lambda: datetime.now(UTC) + timedelta(days=5))  # two days left: kept
    assert MirrorStore().cursor(ALICE, connection_id, email).channel_id == first.channel_id

    sync_at(lambda: datetime.now(UTC) + timedelta(days=6, minutes=1))  # under a day left: renewed

    renewed = MirrorStore().cursor(ALICE, connection_id, email)
    assert renewed.channel_id not in (None, first.channel_id)
    live = {c["id"] for c in requests.get(f"{stack.google.base_url}/_emulator/calendar/channels", timeout=10).json()}
    assert renewed.channel_id in live
    assert first.channel_id not in live
    assert ChannelStore().get(first.channel_id or "") is None
    assert ChannelStore().get(renewed.channel_id or "") is not None


def test_disconnect_stops_the_channels_and_deletes_what_was_mirrored(
    integrations: Integrations, calendars: Calendars, calendar_sync, stack
) -> None:
    email = "bye-" + sha256_hex(str(datetime.now(UTC)))[:8] + "@example.com"
    connection_id = connect(integrations, ALICE, email, typed=True)
    calendars.refresh(ALICE, connection_id)
    soon = clock.days_ahead(20, 10)
    GoogleCalendarUser(stack.google.base_url, email).add(
        summary="x", start={"dateTime": clock.z(soon)}, end={"dateTime": clock.z(soon + timedelta(hours=1))}
    )
    calendar_sync.run(ALICE, connection_id, email)
    cursor = MirrorStore().cursor(ALICE, connection_id, email)
    assert cursor.channel_id
    assert MirrorStore().events(ALICE, connection_id, email)

    integrations.disconnect(ALICE, connection_id)

    live = {c["id"] for c in requests.get(f"{stack.google.base_url}/_emulator/calendar/channels", timeout=10).json()}
    assert cursor.channel_id not in live
    assert ChannelStore().get(cursor.channel_id) is None
    assert MirrorStore().events(ALICE, connection_id, email) == []
    assert MirrorStore().cursor(ALICE, connection_id, email).sync_token is None
