"""A user's calendar settings: the linked calendar (F3) and sync preferences (F6)."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute, VersionAttribute
from pynamodb.models import Model

CALENDAR_SETTINGS_SK = "SETTINGS#calendar"


class CalendarSettingsItem(Model):
    """Lives in the connections table, in the user's partition (sk ``SETTINGS#calendar``)."""

    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    linked_connection_id = UnicodeAttribute(null=True)
    linked_calendar_id = UnicodeAttribute(null=True)
    direction = UnicodeAttribute()
    external_deletion = UnicodeAttribute()
    window_days_back = NumberAttribute()
    window_days_ahead = NumberAttribute()
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()
