"""Where the credentials' data keys are kept (crmsync.security.tokens.DataKeys)."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError

from crmsync.dal import condition_failed
from crmsync.models.data_key import DATA_KEY_SK_PREFIX, DATA_KEYS_PK, DataKeyItem


class DataKeyStore:
    def get(self, key_id: str) -> bytes | None:
        try:
            item = DataKeyItem.get(DATA_KEYS_PK, DATA_KEY_SK_PREFIX + key_id, consistent_read=True)
        except DoesNotExist:
            return None
        return bytes(item.encrypted)

    def add(self, key_id: str, encrypted: bytes) -> bytes:
        """Keep ``encrypted`` unless a data key ``key_id`` is kept already (another function
        made it first): the one kept, which every function then uses."""
        item = DataKeyItem(DATA_KEYS_PK, DATA_KEY_SK_PREFIX + key_id, encrypted=encrypted, created_at=datetime.now(UTC))
        try:
            item.save(condition=DataKeyItem.pk.does_not_exist())
        except PutError as exc:
            if not condition_failed(exc):
                raise
            kept = self.get(key_id)
            if kept is None:  # pragma: no cover - a data key is never deleted
                raise
            return kept
        return encrypted
