"""A tenant's settings, in the tenant's own partition (``T#<tenant>``)."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError

from crmsync.dal import condition_failed
from crmsync.errors import Conflict
from crmsync.models.settings import TENANT_SETTINGS_SK, TenantSettingsItem, tenant_pk


class TenantSettingsStore:
    def default_region(self, tenant_id: str) -> str | None:
        """The region the tenant set for phone numbers without a country code (None: unset)."""
        try:
            item = TenantSettingsItem.get(tenant_pk(tenant_id), TENANT_SETTINGS_SK, consistent_read=True)
        except DoesNotExist:
            return None
        return item.default_region

    def set_default_region(self, tenant_id: str, region: str | None) -> None:
        try:
            item = TenantSettingsItem.get(tenant_pk(tenant_id), TENANT_SETTINGS_SK, consistent_read=True)
        except DoesNotExist:
            item = TenantSettingsItem(tenant_pk(tenant_id), TENANT_SETTINGS_SK)
        item.default_region = region
        item.updated_at = datetime.now(UTC)
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The tenant's settings changed meanwhile; try again.") from exc
            raise
