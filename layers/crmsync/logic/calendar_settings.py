"""F3 linked calendar, F4 conflict calendars, F6 sync preferences."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from crmsync.dal.calendars import CalendarStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import (
    CalendarRef,
    CalendarSettings,
    ConnectedCalendar,
    ConnectionStatus,
    Principal,
    SyncPreferences,
)
from crmsync.errors import Unprocessable

if TYPE_CHECKING:
    from crmsync.logic.calendars import CalendarStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalendarSettingsView:
    settings: CalendarSettings
    linked: ConnectedCalendar | None
    conflict_calendars: list[ConnectedCalendar]
    #: Each connected calendar's account status and sync state, by (connection, calendar)
    #: (empty when the service was built without ``statuses``).
    statuses: dict[tuple[str, str], CalendarStatus] = field(default_factory=dict)

    def status_of(self, calendar: ConnectedCalendar) -> CalendarStatus:
        status = self.statuses.get(_pair(calendar))
        if status is None:
            raise LookupError(f"no sync status for calendar {calendar.calendar_id!r}: build the service with statuses")
        return status


class CalendarSettingsService:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        calendars: CalendarStore,
        settings: SettingsStore,
        on_linked: Callable[[Principal, int], object] | None = None,
        on_changed: Callable[[Principal], object] | None = None,
        statuses: Callable[[Principal], list[CalendarStatus]] | None = None,
    ) -> None:
        """``on_linked(principal, days_back)``: bring a newly linked calendar up to date.
        ``on_changed(principal)``: the set of synced calendars may have changed.
        ``statuses(principal)``: every connected calendar with its account status and sync
        state (:meth:`Calendars.with_status`), shown with the chosen calendars."""
        self._connections = connections
        self._calendars = calendars
        self._settings = settings
        self._on_linked = on_linked
        self._on_changed = on_changed
        self._statuses = statuses

    def view(self, principal: Principal) -> CalendarSettingsView:
        settings = self._settings.get(principal)
        calendars = self._calendars.of_user(principal)
        linked = next((c for c in calendars if settings.linked and _ref(c) == settings.linked), None)
        conflict = [c for c in calendars if c.conflict]
        if self._statuses is None:
            return CalendarSettingsView(settings, linked, conflict)
        # Only calendars of accounts still connected have a status (as GET /v1/calendars).
        statuses = {_pair(s.calendar): s for s in self._statuses(principal)}
        return CalendarSettingsView(
            settings,
            linked if linked is not None and _pair(linked) in statuses else None,
            [c for c in conflict if _pair(c) in statuses],
            statuses,
        )

    def link(self, principal: Principal, ref: CalendarRef) -> CalendarSettingsView:
        """Make ``ref`` the linked calendar: it must be a writable calendar of a working
        connection. It becomes a conflict calendar too (the documented default)."""
        calendars = self._calendars.of_user(principal)
        calendar = next((c for c in calendars if _ref(c) == ref), None)
        if calendar is None:
            raise Unprocessable(f"No connected calendar {ref.calendar_id!r} in connection {ref.connection_id!r}.")
        if not calendar.writable:
            raise Unprocessable(
                f"The calendar {calendar.name!r} is read-only for {calendar.account_email} "
                f"(access role {calendar.access_role}); choose one you can write to."
            )
        connection = self._connections.get(principal, ref.connection_id)
        if connection is None or connection.status is not ConnectionStatus.CONNECTED:
            raise Unprocessable(f"The account {calendar.account_email} must be connected again first.")
        current = self._settings.get(principal)
        self._settings.save(principal, replace(current, linked=ref))
        self._calendars.set_conflict(principal, {_pair(c) for c in calendars if c.conflict} | {_pair(calendar)})
        if self._on_linked is not None and current.linked != ref:
            self._on_linked(principal, current.preferences.window_days_back)
        self._changed(principal)
        return self.view(principal)

    def unlink(self, principal: Principal) -> CalendarSettingsView:
        self._settings.save(principal, replace(self._settings.get(principal), linked=None))
        self._changed(principal)
        return self.view(principal)

    def set_conflict_calendars(self, principal: Principal, refs: list[CalendarRef]) -> CalendarSettingsView:
        known = {_pair(c) for c in self._calendars.of_user(principal)}
        wanted = {(r.connection_id, r.calendar_id) for r in refs}
        unknown = sorted(wanted - known)
        if unknown:
            names = ", ".join(calendar_id for _, calendar_id in unknown)
            raise Unprocessable(f"Not connected calendars: {names}.")
        self._calendars.set_conflict(principal, wanted)
        self._changed(principal)
        return self.view(principal)

    def _changed(self, principal: Principal) -> None:
        if self._on_changed is None:
            return
        try:
            self._on_changed(principal)
        except Exception:  # the change is saved; the next health check syncs what it implies
            log.exception("could not enqueue the calendar syncs after a settings change")

    def set_preferences(self, principal: Principal, preferences: SyncPreferences) -> CalendarSettingsView:
        self._settings.save(principal, replace(self._settings.get(principal), preferences=preferences))
        return self.view(principal)

    def forget_connection(self, principal: Principal, connection_id: str) -> None:
        """A disconnected account's calendar can no longer be the linked calendar."""
        settings = self._settings.get(principal)
        if settings.linked and settings.linked.connection_id == connection_id:
            self._settings.save(principal, replace(settings, linked=None))


def _ref(c: ConnectedCalendar) -> CalendarRef:
    return CalendarRef(c.connection_id, c.calendar_id)


def _pair(c: ConnectedCalendar) -> tuple[str, str]:
    return (c.connection_id, c.calendar_id)
