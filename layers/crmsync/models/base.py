"""The base of every item in the connections table (one table, many kinds of item)."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model


class ConnectionsTableItem(Model):
    """Keys are strings: ``pk`` names the partition (a user, or an unguessable value),
    ``sk`` the kind of item and its id. The table name is bound once, here, for every kind
    (:func:`crmsync.models.bind_tables`); subclasses must not declare their own ``Meta``."""

    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class OwnedItem(ConnectionsTableItem):
    """An item that names its owner: the tenant and the CRM user."""

    tenant_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
