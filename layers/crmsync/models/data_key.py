"""The credentials' data keys (crmsync.security.tokens), encrypted by KMS."""

from __future__ import annotations

from pynamodb.attributes import BinaryAttribute, UTCDateTimeAttribute

from crmsync.models.base import ConnectionsTableItem

#: One partition for the deployment's few data keys (one a month), read once per function and
#: TTL: no tenant's, and never hot.
DATA_KEYS_PK = "DATAKEYS"
DATA_KEY_SK_PREFIX = "DK#"


class DataKeyItem(ConnectionsTableItem):
    """pk = ``DATAKEYS``, sk = ``DK#<month>``: a data key as KMS's ``GenerateDataKey`` answered
    it (``CiphertextBlob``, under the token key and the context naming the data key)."""

    encrypted = BinaryAttribute(legacy_encoding=False)
    created_at = UTCDateTimeAttribute()
