"""The user's calendar settings item."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError

from crmsync.dal import condition_failed
from crmsync.domain import CalendarRef, CalendarSettings, ExternalDeletion, Principal, SyncDirection, SyncPreferences
from crmsync.errors import Conflict
from crmsync.models.keys import user_pk
from crmsync.models.settings import CALENDAR_SETTINGS_SK, CalendarSettingsItem


class SettingsStore:
    def _item(self, principal: Principal) -> CalendarSettingsItem | None:
        try:
            return CalendarSettingsItem.get(
                user_pk(principal.tenant_id, principal.user_id), CALENDAR_SETTINGS_SK, consistent_read=True
            )
        except DoesNotExist:
            return None

    def get(self, principal: Principal) -> CalendarSettings:
        return settings_from_item(self._item(principal))

    def save(self, principal: Principal, settings: CalendarSettings) -> CalendarSettings:
        """Write the whole settings item; a concurrent change makes this raise Conflict."""
        item = self._item(principal) or CalendarSettingsItem(
            user_pk(principal.tenant_id, principal.user_id), CALENDAR_SETTINGS_SK
        )
        item.linked_connection_id = settings.linked.connection_id if settings.linked else None
        item.linked_calendar_id = settings.linked.calendar_id if settings.linked else None
        item.direction = settings.preferences.direction.value
        item.external_deletion = settings.preferences.external_deletion.value
        item.window_days_back = settings.preferences.window_days_back
        item.window_days_ahead = settings.preferences.window_days_ahead
        item.updated_at = datetime.now(UTC)
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The settings changed concurrently; reload and try again.") from exc
            raise
        return settings


def settings_from_item(item: CalendarSettingsItem | None) -> CalendarSettings:
    """The settings an item holds (the defaults when there is none)."""
    if item is None:
        return CalendarSettings(linked=None, preferences=SyncPreferences())
    linked = (
        CalendarRef(item.linked_connection_id, item.linked_calendar_id)
        if item.linked_connection_id and item.linked_calendar_id
        else None
    )
    return CalendarSettings(
        linked=linked,
        preferences=SyncPreferences(
            direction=SyncDirection(item.direction),
            external_deletion=ExternalDeletion(item.external_deletion),
            window_days_back=int(item.window_days_back),
            window_days_ahead=int(item.window_days_ahead),
        ),
    )
