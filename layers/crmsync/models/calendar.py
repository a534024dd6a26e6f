"""A calendar of a connected account, as listed by the provider (F2)."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, UnicodeAttribute, UTCDateTimeAttribute

from crmsync.models.base import OwnedItem

CALENDAR_SK_PREFIX = "CAL#"


def calendar_sk(connection_id: str, calendar_id: str = "") -> str:
    """``CAL#<connection>#<calendar id>``; calendar ids may contain ``#`` (holiday calendars),
    connection ids never do, so the first separator after the connection is unambiguous."""
    return f"{CALENDAR_SK_PREFIX}{connection_id}#{calendar_id}"


class CalendarItem(OwnedItem):
    """Lives in the connections table, in the user's partition."""

    connection_id = UnicodeAttribute()
    calendar_id = UnicodeAttribute()
    account_email = UnicodeAttribute()
    name = UnicodeAttribute()
    access_role = UnicodeAttribute()
    primary = BooleanAttribute(default=False)
    color = UnicodeAttribute(null=True)
    time_zone = UnicodeAttribute(null=True)
    #: Busy time in this calendar blocks booking availability (F4).
    conflict = BooleanAttribute(default=False)
    refreshed_at = UTCDateTimeAttribute()
