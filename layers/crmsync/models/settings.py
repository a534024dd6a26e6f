"""A user's calendar settings: the linked calendar (F3) and sync preferences (F6)."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute, VersionAttribute

from crmsync.models.base import ConnectionsTableItem

CALENDAR_SETTINGS_SK = "SETTINGS#calendar"


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
