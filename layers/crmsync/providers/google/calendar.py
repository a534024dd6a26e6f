"""Google Calendar v3 behind the calendar port, through google-api-python-client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from crmsync.config import GoogleSettings
from crmsync.domain import ProviderCalendar, event_id_for
from crmsync.ports.calendar import (
    ChangeNotification,
    CreateIdempotency,
    EventDraft,
    EventPage,
    Watch,
    WrittenEvent,
)
from crmsync.ports.errors import ProviderDuplicate, ProviderError, ProviderNotFound
from crmsync.providers.google.api import build_service, google_errors
from crmsync.providers.google.events import event_body, parse_event, rfc3339

__all__ = ["GoogleCalendar"]


class GoogleCalendar:
    """The calendars of one connected Google account (one CRM tenant's connection: only
    that tenant's marker makes an event ours)."""

    notification = ChangeNotification.PUSH_CHANNEL
    idempotency = CreateIdempotency.DERIVED_ID
    reports_unseen_deletions = True

    def __init__(
        self,
        settings: GoogleSettings,
        refresh_token: str,
        client_secret: Callable[[], str],
        *,
        tenant_id: str,
        events_page_size: int = 2500,
    ) -> None:
        """``events_page_size``: ``maxResults`` of ``events.list`` (Google's largest, 2500;
        smaller only to see paging at work)."""
        self._service: Any = build_service("calendar", settings, refresh_token, client_secret)
        self._tenant_id = tenant_id
        self._events_page_size = events_page_size

    def list_calendars(self) -> list[ProviderCalendar]:
        calendars: list[ProviderCalendar] = []
        page_token: str | None = None
        while True:
            with google_errors("calendarList.list"):
                page = self._service.calendarList().list(pageToken=page_token, maxResults=250).execute(num_retries=0)
            for entry in page.get("items", []):
                if entry.get("deleted"):
                    continue
                calendars.append(
                    ProviderCalendar(
                        calendar_id=entry["id"],
                        name=entry.get("summaryOverride") or entry.get("summary") or entry["id"],
                        access_role=entry.get("accessRole", "reader"),
                        primary=bool(entry.get("primary", False)),
                        color=entry.get("backgroundColor"),
                        time_zone=entry.get("timeZone"),
                    )
                )
            page_token = page.get("nextPageToken")
            if not page_token:
                return calendars

    # ------------------------------------------------------------------ events
    def event_pages(self, calendar_id: str, *, cursor: str | None, since: datetime | None) -> Iterator[EventPage]:
        """``events.list`` with instances of recurring series expanded and deleted ones
        included. Incremental with the sync token; otherwise a full list from ``since``.
        The same parameters are used for both, as Google requires; nothing else is combined
        with the token (no q, no time bounds, no extended-property filter)."""
        params: dict[str, Any] = {
            "calendarId": calendar_id,
            "singleEvents": True,
            "showDeleted": True,
            "maxResults": self._events_page_size,
        }
        if cursor:
            params["syncToken"] = cursor
        elif since:
            params["timeMin"] = rfc3339(since)
        while True:
            with google_errors("events.list"):
                page = self._service.events().list(**params).execute(num_retries=0)
            events = [parse_event(raw, self._tenant_id) for raw in page.get("items", [])]
            if page.get("nextPageToken"):
                params["pageToken"] = page["nextPageToken"]
                yield EventPage(events, None)
                continue
            token = page.get("nextSyncToken")
            if not token:
                raise ProviderError("events.list: the last page carried no nextSyncToken.", retryable=True)
            yield EventPage(events, str(token))
            return

    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        """Insert under the id derived from ours, so a retried insert finds its event."""
        body = event_body(draft)
        try:
            return self._insert(calendar_id, body)
        except ProviderDuplicate:
            try:
                # Our earlier insert succeeded but its answer was lost: update that event.
                return self.update_event(calendar_id, event_id_for(draft.key), draft)
            except ProviderNotFound:
                # The id belongs to an event of ours that is gone for good: Google picks a new one.
                return self._insert(calendar_id, {k: v for k, v in body.items() if k != "id"})

    def created_event_id(self, key: str) -> str | None:
        return event_id_for(key)

    def _insert(self, calendar_id: str, body: dict[str, Any]) -> WrittenEvent:
        with google_errors("events.insert"):
            event = self._service.events().insert(calendarId=calendar_id, body=body).execute(num_retries=0)
        return WrittenEvent(str(event["id"]), event.get("etag"))

    def update_event(
        self, calendar_id: str, event_id: str, draft: EventDraft, *, etag: str | None = None
    ) -> WrittenEvent:
        body = event_body(draft)
        body["id"] = event_id
        request = self._service.events().update(calendarId=calendar_id, eventId=event_id, body=body)
        if etag:
            request.headers["If-Match"] = etag
        with google_errors("events.update"):
            event = request.execute(num_retries=0)
        return WrittenEvent(str(event["id"]), event.get("etag"))

    def event_exists(self, calendar_id: str, event_id: str) -> bool:
        """events.get: a deleted event is still answered (``cancelled``) until it is purged."""
        try:
            with google_errors("events.get"):
                event = (
                    self._service.events()
                    .get(calendarId=calendar_id, eventId=event_id, fields="id,status")
                    .execute(num_retries=0)
                )
        except ProviderNotFound:
            return False
        return event.get("status") != "cancelled"

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with google_errors("events.delete"):
            self._service.events().delete(calendarId=calendar_id, eventId=event_id).execute(num_retries=0)

    # ------------------------------------------------------------------ push channels
    def watch(self, calendar_id: str, *, channel_id: str, address: str, token: str) -> Watch:
        """Open a push channel for the calendar's events (Google's default lifetime: 7 days)."""
        body = {"id": channel_id, "type": "web_hook", "address": address, "token": token}
        with google_errors("events.watch"):
            answer = self._service.events().watch(calendarId=calendar_id, body=body).execute(num_retries=0)
        return Watch(
            channel_id=channel_id,
            resource_id=str(answer["resourceId"]),
            expires_at=datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC),
        )

    def stop_watch(self, channel_id: str, resource_id: str) -> None:
        with google_errors("channels.stop"):
            self._service.channels().stop(body={"id": channel_id, "resourceId": resource_id}).execute(num_retries=0)
