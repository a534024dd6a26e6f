"""Calendar sync state and the mirror of provider events (F4, F7)."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from crmsync.models.base import ConnectionsTableItem, OwnedItem

# The keys the webhooks also build without PynamoDB (crmsync.dal.notifications): one definition.
from crmsync.models.keys import SYNC_REQUEST_SK_PREFIX as SYNC_REQUEST_SK_PREFIX
from crmsync.models.keys import channel_pk as channel_pk
from crmsync.models.keys import sync_request_sk as sync_request_sk

SYNC_SK_PREFIX = "SYNC#"
UNLISTED_SK_PREFIX = "UNLISTED#"
EXTERNAL_SK_PREFIX = "EXT#"


def sync_sk(connection_id: str, calendar_id: str) -> str:
    return f"{SYNC_SK_PREFIX}{connection_id}#{calendar_id}"


def unlisted_sk(connection_id: str, calendar_id: str) -> str:
    return f"{UNLISTED_SK_PREFIX}{connection_id}#{calendar_id}"


def external_prefix(connection_id: str, calendar_id: str) -> str:
    # Calendar ids may contain "#"; the trailing separator is followed by the event id,
    # which never does (base32hex / underscore), so a calendar's events share this prefix.
    return f"{EXTERNAL_SK_PREFIX}{connection_id}#{calendar_id}#"


class SyncStateItem(ConnectionsTableItem):
    """The cursor of one synced calendar. Written only after all pages were applied, and
    conditionally (version), so two workers can never both advance it."""

    connection_id = UnicodeAttribute()
    calendar_id = UnicodeAttribute()
    sync_token = UnicodeAttribute(null=True)
    #: The fixed lower bound of the full sync this token continues (Google requires the
    #: same filters for incremental syncs).
    window_start = UTCDateTimeAttribute(null=True)
    last_success_at = UTCDateTimeAttribute(null=True)
    #: The last failed sync's error (no secret: the provider's message), cleared by the
    #: next successful sync.
    last_error = UnicodeAttribute(null=True)
    last_error_at = UTCDateTimeAttribute(null=True)
    full_syncs = NumberAttribute(default=0)
    #: Events mirrored so far by the full (first) sync under way, page by page; absent when
    #: no full sync runs (the cursor's save at its end, or its failure, removes it).
    #: Written without the version (it must not make the sync's own cursor save conflict).
    events_so_far = NumberAttribute(null=True)
    #: The live push channel of this calendar (see ChannelItem).
    channel_id = UnicodeAttribute(null=True)
    channel_resource_id = UnicodeAttribute(null=True)
    channel_expires_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()


class SyncRequestItem(ConnectionsTableItem):
    """The "sync requested" mark of one calendar, which coalesces a burst of push
    notifications into one queued sync plus at most one trailing sync (DESIGN.md
    "Coalescing notifications"). Written by the webhook with conditions, taken (``pending``
    cleared) by the worker right before it lists the calendar's changes."""

    #: A sync was queued for a notification and has not started yet.
    pending = BooleanAttribute(default=False)
    #: When ``pending`` was last set (the queued message's occasion).
    requested_at = UTCDateTimeAttribute(null=True)
    #: The latest notification (the worker waits for a burst to go quiet).
    notified_at = UTCDateTimeAttribute(null=True)


class UnlistedEventsItem(ConnectionsTableItem):
    """The events our pushes created in one calendar that no listing has shown yet, for a
    provider whose incremental listing never reports the deletion of such an event (Graph:
    ``CalendarPort.reports_unseen_deletions``). Kept apart from the cursor, whose versioned
    whole-item save would lose a push's concurrent addition; both sets change only by
    ADD/DELETE of single ids, which commute."""

    #: Created, not listed yet.
    event_ids = UnicodeSetAttribute(null=True)
    #: Of those, the ones a check after a round found live though the round did not list
    #: them (created after its request); found so once more, they are out of the listing's
    #: window and dropped.
    seen = UnicodeSetAttribute(null=True)


class ExternalEventItem(ConnectionsTableItem):
    """One event instance of a synced calendar (recurring series arrive expanded)."""

    connection_id = UnicodeAttribute()
    calendar_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    start = UTCDateTimeAttribute(null=True)
    end = UTCDateTimeAttribute(null=True)
    #: All-day events keep their dates: they block whole days in the calendar's time zone.
    start_date = UnicodeAttribute(null=True)
    end_date = UnicodeAttribute(null=True)
    all_day = BooleanAttribute(default=False)
    transparent = BooleanAttribute(default=False)
    declined = BooleanAttribute(default=False)
    summary = UnicodeAttribute(null=True)
    etag = UnicodeAttribute(null=True)
    #: Set when the event is the twin of one of our appointments (echo recognition).
    crm_appointment_id = UnicodeAttribute(null=True)


class ChannelItem(OwnedItem):
    """A Calendar push channel, addressed by its id (a random UUID we chose) because that is
    all a notification names. Like the OAuth state, this is the one kind of item whose key
    does not start with the tenant; the item names its owner inside."""

    connection_id = UnicodeAttribute()
    calendar_id = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    #: sha256 of the channel token (the token itself is only in Google's notifications).
    token_hash = UnicodeAttribute()
    expires_at = UTCDateTimeAttribute()
