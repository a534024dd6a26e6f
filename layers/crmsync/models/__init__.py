"""PynamoDB items. Table names are bound at run time from :class:`crmsync.config.Settings`.

Key rule: every user-owned item's partition key starts with the tenant and the user
(:func:`user_pk`), so no query can cross tenants. The one exception is the OAuth state,
addressed only by the hash of an unguessable value and carrying its owner inside.
"""

from crmsync.models.appointment import AppointmentItem, ScheduleItem
from crmsync.models.calendar import CalendarItem
from crmsync.models.connection import ConnectionItem
from crmsync.models.keys import user_pk
from crmsync.models.oauth_state import OAuthStateItem
from crmsync.models.settings import CalendarSettingsItem
from crmsync.models.sync import ChannelItem, ExternalEventItem, SyncStateItem

__all__ = [
    "AppointmentItem",
    "CalendarItem",
    "CalendarSettingsItem",
    "ChannelItem",
    "ConnectionItem",
    "ExternalEventItem",
    "OAuthStateItem",
    "ScheduleItem",
    "SyncStateItem",
    "bind_tables",
    "user_pk",
]


def bind_tables(*, connections_table: str, oauth_states_table: str) -> None:
    """Point the models at their tables (PynamoDB reconnects when the name changes)."""
    ConnectionItem.Meta.table_name = connections_table
    CalendarItem.Meta.table_name = connections_table
    AppointmentItem.Meta.table_name = connections_table
    ScheduleItem.Meta.table_name = connections_table
    SyncStateItem.Meta.table_name = connections_table
    ExternalEventItem.Meta.table_name = connections_table
    ChannelItem.Meta.table_name = connections_table
    CalendarSettingsItem.Meta.table_name = connections_table
    OAuthStateItem.Meta.table_name = oauth_states_table
