"""Google Calendar v3 through google-api-python-client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from crmsync.config import GoogleSettings
from crmsync.errors import ProviderError
from crmsync.providers.google.api import build_service, google_errors

#: Roles that may create and change events.
WRITABLE_ROLES = frozenset({"owner", "writer"})


@dataclass(frozen=True)
class ProviderCalendar:
    """A calendar as the provider lists it for the account."""

    calendar_id: str
    name: str
    access_role: str
    primary: bool
    color: str | None
    time_zone: str | None

    @property
    def writable(self) -> bool:
        return self.access_role in WRITABLE_ROLES


class GoogleCalendar:
    """The calendars of one connected Google account."""

    def __init__(
        self,
        settings: GoogleSettings,
        refresh_token: str,
        client_secret: Callable[[], str],
        *,
        events_page_size: int = 2500,
    ) -> None:
        """``events_page_size``: ``maxResults`` of ``events.list`` (Google's largest, 2500;
        smaller only to see paging at work)."""
        self._service: Any = build_service("calendar", settings, refresh_token, client_secret)
        self._events_page_size = events_page_size

    def list_calendars(self) -> list[ProviderCalendar]:
        """Every calendar in the account's calendar list (all pages)."""
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
    def event_pages(
        self, calendar_id: str, *, sync_token: str | None, time_min: str | None
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """The pages of ``events.list`` (instances of recurring series expanded, deleted ones
        included), each with ``None`` but the last, which carries the ``nextSyncToken``.

        Incremental with ``sync_token``; otherwise a full list from ``time_min``. The same
        parameters are used for both, as Google requires; nothing else is combined with the
        token (no q, no time bounds, no extended-property filter).
        """
        params: dict[str, Any] = {
            "calendarId": calendar_id,
            "singleEvents": True,
            "showDeleted": True,
            "maxResults": self._events_page_size,
        }
        if sync_token:
            params["syncToken"] = sync_token
        elif time_min:
            params["timeMin"] = time_min
        while True:
            with google_errors("events.list"):
                page = self._service.events().list(**params).execute(num_retries=0)
            items = list(page.get("items", []))
            if page.get("nextPageToken"):
                params["pageToken"] = page["nextPageToken"]
                yield items, None
                continue
            token = page.get("nextSyncToken")
            if not token:
                raise ProviderError("events.list: the last page carried no nextSyncToken.", retryable=True)
            yield items, str(token)
            return

    def insert_event(self, calendar_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with google_errors("events.insert"):
            return dict(self._service.events().insert(calendarId=calendar_id, body=body).execute(num_retries=0))

    def update_event(self, calendar_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with google_errors("events.update"):
            return dict(
                self._service.events()
                .update(calendarId=calendar_id, eventId=event_id, body=body)
                .execute(num_retries=0)
            )

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with google_errors("events.delete"):
            self._service.events().delete(calendarId=calendar_id, eventId=event_id).execute(num_retries=0)

    # ------------------------------------------------------------------ push channels
    def watch_events(self, calendar_id: str, *, channel_id: str, address: str, token: str) -> dict[str, Any]:
        """Open a push channel for the calendar's events (Google's default lifetime: 7 days)."""
        body = {"id": channel_id, "type": "web_hook", "address": address, "token": token}
        with google_errors("events.watch"):
            return dict(self._service.events().watch(calendarId=calendar_id, body=body).execute(num_retries=0))

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        with google_errors("channels.stop"):
            self._service.channels().stop(body={"id": channel_id, "resourceId": resource_id}).execute(num_retries=0)
