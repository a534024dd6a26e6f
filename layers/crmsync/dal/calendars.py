"""Connected calendars: one item per calendar of a connected account."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from crmsync.domain import ConnectedCalendar, Principal, ProviderCalendar
from crmsync.models.calendar import CALENDAR_SK_PREFIX, CalendarItem, calendar_sk
from crmsync.models.keys import user_pk


def calendar_from_item(item: CalendarItem) -> ConnectedCalendar:
    return ConnectedCalendar(
        connection_id=item.connection_id,
        calendar_id=item.calendar_id,
        account_email=item.account_email,
        name=item.name,
        access_role=item.access_role,
        primary=bool(item.primary),
        color=item.color,
        time_zone=item.time_zone,
        conflict=bool(item.conflict),
        refreshed_at=item.refreshed_at,
    )


class CalendarStore:
    def of_user(self, principal: Principal, connection_id: str | None = None) -> list[ConnectedCalendar]:
        prefix = calendar_sk(connection_id) if connection_id else CALENDAR_SK_PREFIX
        items = CalendarItem.query(
            user_pk(principal.tenant_id, principal.user_id), CalendarItem.sk.startswith(prefix), consistent_read=True
        )
        return [calendar_from_item(i) for i in items]

    def replace_for_connection(
        self, principal: Principal, connection_id: str, account_email: str, calendars: Iterable[ProviderCalendar]
    ) -> list[ConnectedCalendar]:
        """Make the stored calendars of a connection equal the provider's list.

        New calendars are added (the primary one blocks availability by default), known ones
        keep the user's choices, calendars gone at the provider are removed.
        """
        pk = user_pk(principal.tenant_id, principal.user_id)
        existing = {c.calendar_id: c for c in self.of_user(principal, connection_id)}
        now = datetime.now(UTC)
        wanted = {c.calendar_id: c for c in calendars}
        with CalendarItem.batch_write() as batch:
            for calendar in wanted.values():
                known = existing.get(calendar.calendar_id)
                batch.save(
                    CalendarItem(
                        pk,
                        calendar_sk(connection_id, calendar.calendar_id),
                        tenant_id=principal.tenant_id,
                        user_id=principal.user_id,
                        connection_id=connection_id,
                        calendar_id=calendar.calendar_id,
                        account_email=account_email,
                        name=calendar.name,
                        access_role=calendar.access_role,
                        primary=calendar.primary,
                        color=calendar.color,
                        time_zone=calendar.time_zone,
                        conflict=known.conflict if known else calendar.primary,
                        refreshed_at=now,
                    )
                )
            for gone in existing.keys() - wanted.keys():
                batch.delete(CalendarItem(pk, calendar_sk(connection_id, gone)))
        return self.of_user(principal, connection_id)

    def set_conflict(self, principal: Principal, chosen: set[tuple[str, str]]) -> list[ConnectedCalendar]:
        """Mark exactly the ``(connection_id, calendar_id)`` pairs in ``chosen`` as conflict
        calendars (only items whose flag changes are written)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        for calendar in self.of_user(principal):
            wanted = (calendar.connection_id, calendar.calendar_id) in chosen
            if wanted != calendar.conflict:
                CalendarItem(pk, calendar_sk(calendar.connection_id, calendar.calendar_id)).update(
                    actions=[CalendarItem.conflict.set(wanted)], condition=CalendarItem.sk.exists()
                )
        return self.of_user(principal)

    def delete_for_connection(self, principal: Principal, connection_id: str) -> None:
        pk = user_pk(principal.tenant_id, principal.user_id)
        with CalendarItem.batch_write() as batch:
            for calendar in self.of_user(principal, connection_id):
                batch.delete(CalendarItem(pk, calendar_sk(connection_id, calendar.calendar_id)))
