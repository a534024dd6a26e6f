"""A user's calendar settings: the linked calendar (F3) and sync preferences (F6); a tenant's
settings (the phone region of F10); the user's never-log list (F8/F9)."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from crmsync.models.base import ConnectionsTableItem
from crmsync.models.sweeps import SweepsIndex

CALENDAR_SETTINGS_SK = "SETTINGS#calendar"
TENANT_SETTINGS_SK = "TENANT#settings"
CONTACTS_SYNC_SK = "SETTINGS#contacts"


def tenant_pk(tenant_id: str) -> str:
    """A tenant's own partition (settings that hold for all its users)."""
    from crmsync.domain.ids import check_id

    return f"T#{check_id('tenant', tenant_id)}"


class CalendarSettingsItem(ConnectionsTableItem):
    """Lives in the connections table, in the user's partition (sk ``SETTINGS#calendar``)."""

    linked_connection_id = UnicodeAttribute(null=True)
    linked_calendar_id = UnicodeAttribute(null=True)
    direction = UnicodeAttribute()
    external_deletion = UnicodeAttribute()
    window_days_back = NumberAttribute()
    window_days_ahead = NumberAttribute()
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class TenantSettingsItem(ConnectionsTableItem):
    """A tenant's settings (pk ``T#<tenant>``, sk ``TENANT#settings``): what holds for all its
    users, set by its admins."""

    #: ISO 3166 region for phone numbers written without a country code.
    default_region = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class ContactsSyncSweeps(SweepsIndex["ContactsSyncItem"]):
    """Contacts-synced users by their scheduled sync's slot."""


class ContactsSyncItem(ConnectionsTableItem):
    """The user's contacts sync (sk ``SETTINGS#contacts``): which connection is their
    contacts account. Absent or without ``connection_id``: off."""

    tenant_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    connection_id = UnicodeAttribute(null=True)
    enabled_at = UTCDateTimeAttribute(null=True)
    #: Make the contacts account's primary calendar the linked one once its calendar list is
    #: known, unless a linked calendar is set by then (seed 004). Cleared when done.
    link_primary = BooleanAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    #: The scheduled sync's slot (:mod:`crmsync.domain.sweeps`) while sync is on.
    sweep = UnicodeAttribute(null=True)
    sweeps = ContactsSyncSweeps()
    version = VersionAttribute()


NEVER_LOG_SK = "SETTINGS#never-log"


class NeverLogItem(ConnectionsTableItem):
    """The user's never-log list (sk ``SETTINGS#never-log``): normalised entries as a string
    set, changed only by ``ADD``/``DELETE`` updates, so concurrent changes never lose one.
    DynamoDB drops the attribute when its last entry is deleted (no empty sets)."""

    entries = UnicodeSetAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
