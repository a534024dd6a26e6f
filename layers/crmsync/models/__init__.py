"""PynamoDB items. Table names are bound at run time from :class:`crmsync.config.Settings`.

Key rule: every user-owned item's partition key starts with the tenant and the user
(:func:`user_pk`), so no query can cross tenants. The exceptions are items found by an
unguessable value alone: the OAuth state, the push channel and the BCC address lookup
(:class:`BccLookupItem`, keyed by the hash of the address's local part). Each names its
owner inside, and the owner's data is then read under the owner's partition.
"""

from crmsync.models.appointment import AppointmentItem, ScheduleItem
from crmsync.models.base import ConnectionsTableItem
from crmsync.models.calendar import CalendarItem
from crmsync.models.connection import ConnectionItem
from crmsync.models.data_key import DataKeyItem
from crmsync.models.gcontacts import CandidateItem, ContactPendingItem, ContactSyncStateItem, GoogleContactItem
from crmsync.models.guard import PendingDeletionsItem
from crmsync.models.keys import user_pk
from crmsync.models.mail import (
    BccAddressItem,
    BccLookupItem,
    ContactEmailItem,
    ContactItem,
    ContactPhoneItem,
    ConversationItem,
    LoggedMailItem,
    SenderAddressItem,
)
from crmsync.models.mail_sync import GmailIndexItem, MailboxLookupItem, MailSyncItem
from crmsync.models.oauth_state import OAuthStateItem
from crmsync.models.settings import CalendarSettingsItem, ContactsSyncItem, NeverLogItem, TenantSettingsItem
from crmsync.models.sync import ChannelItem, ExternalEventItem, SyncRequestItem, SyncStateItem, UnlistedEventsItem

__all__ = [
    "AppointmentItem",
    "BccAddressItem",
    "BccLookupItem",
    "CalendarItem",
    "CalendarSettingsItem",
    "CandidateItem",
    "ChannelItem",
    "ConnectionItem",
    "ConnectionsTableItem",
    "ContactEmailItem",
    "ContactItem",
    "ContactPendingItem",
    "ContactPhoneItem",
    "ContactSyncStateItem",
    "ContactsSyncItem",
    "ConversationItem",
    "DataKeyItem",
    "ExternalEventItem",
    "GmailIndexItem",
    "GoogleContactItem",
    "LoggedMailItem",
    "MailSyncItem",
    "MailboxLookupItem",
    "NeverLogItem",
    "OAuthStateItem",
    "PendingDeletionsItem",
    "ScheduleItem",
    "SenderAddressItem",
    "SyncRequestItem",
    "SyncStateItem",
    "TenantSettingsItem",
    "UnlistedEventsItem",
    "bind_tables",
    "user_pk",
]


def bind_tables(*, connections_table: str, oauth_states_table: str) -> None:
    """Point the models at their tables (PynamoDB reconnects when the name changes). Every
    kind of item of the connections table shares :class:`ConnectionsTableItem`'s ``Meta``."""
    ConnectionsTableItem.Meta.table_name = connections_table
    OAuthStateItem.Meta.table_name = oauth_states_table
