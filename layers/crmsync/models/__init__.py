"""PynamoDB items. Table names are bound at run time from :class:`crmsync.config.Settings`.

Key rule: every user-owned item's partition key starts with the tenant and the user
(:func:`user_pk`), so no query can cross tenants. The exceptions are items found by an
unguessable value alone: the OAuth state, the push channel and the BCC address lookup
(:class:`BccLookupItem`, keyed by the hash of the address's local part). Each names its
owner inside, and the owner's data is then read under the owner's partition.

The package loads a model's module on first use of its name (PEP 562), not at import: a
function that never touches a model (the webhooks read their channel with the low-level
client, :mod:`crmsync.dal.notifications`) pays nothing for PynamoDB, and ``crmsync.models.keys``
stays free of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each name lives.
_HOME: dict[str, str] = {
    "AppointmentItem": "crmsync.models.appointment",
    "ScheduleItem": "crmsync.models.appointment",
    "ConnectionsTableItem": "crmsync.models.base",
    "CalendarItem": "crmsync.models.calendar",
    "ConnectionItem": "crmsync.models.connection",
    "DataKeyItem": "crmsync.models.data_key",
    "CandidateItem": "crmsync.models.gcontacts",
    "ContactPendingItem": "crmsync.models.gcontacts",
    "ContactSyncStateItem": "crmsync.models.gcontacts",
    "GoogleContactItem": "crmsync.models.gcontacts",
    "PendingDeletionsItem": "crmsync.models.guard",
    "user_pk": "crmsync.models.keys",
    "BccAddressItem": "crmsync.models.mail",
    "BccLookupItem": "crmsync.models.mail",
    "ContactEmailItem": "crmsync.models.mail",
    "ContactItem": "crmsync.models.mail",
    "ContactPhoneItem": "crmsync.models.mail",
    "ConversationItem": "crmsync.models.mail",
    "LoggedMailItem": "crmsync.models.mail",
    "SenderAddressItem": "crmsync.models.mail",
    "GmailIndexItem": "crmsync.models.mail_sync",
    "MailboxLookupItem": "crmsync.models.mail_sync",
    "MailSyncItem": "crmsync.models.mail_sync",
    "OAuthStateItem": "crmsync.models.oauth_state",
    "CalendarSettingsItem": "crmsync.models.settings",
    "ContactsSyncItem": "crmsync.models.settings",
    "NeverLogItem": "crmsync.models.settings",
    "TenantSettingsItem": "crmsync.models.settings",
    "ChannelItem": "crmsync.models.sync",
    "ExternalEventItem": "crmsync.models.sync",
    "SyncRequestItem": "crmsync.models.sync",
    "SyncStateItem": "crmsync.models.sync",
    "UnlistedEventsItem": "crmsync.models.sync",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


def bind_tables(*, connections_table: str, oauth_states_table: str) -> None:
    """Point the models at their tables (PynamoDB reconnects when the name changes). Every
    kind of item of the connections table shares :class:`ConnectionsTableItem`'s ``Meta``."""
    from crmsync.models.base import ConnectionsTableItem
    from crmsync.models.oauth_state import OAuthStateItem

    ConnectionsTableItem.Meta.table_name = connections_table
    OAuthStateItem.Meta.table_name = oauth_states_table
