"""Acting as a Google user in the emulator's Calendar (its control API, over HTTP), for
tests that need Google-side changes: events made, moved and deleted by the user, calendars
added, sync tokens invalidated, watch channels inspected."""

from __future__ import annotations

import uuid
from typing import Any

import requests


class GoogleCalendarUser:
    """One emulator account; ``calendar_id`` defaults to its primary calendar (its email)."""

    def __init__(self, base_url: str, email: str | None = None, calendar_id: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        self.calendar_id = calendar_id or self.email

    @classmethod
    def new(
        cls, base_url: str, name: str = "user", *, domain: str = "example.com", demo: bool = False
    ) -> GoogleCalendarUser:
        """A fresh emulator account of this test's own (listed on the consent page), so no other
        test's events, grants or channels reach it; ``demo`` gives it the demo calendars (Team,
        a read-only holidays calendar) and events."""
        user = cls(base_url, f"{name}-{uuid.uuid4().hex[:10]}@{domain}")
        requests.post(f"{user.base_url}/_emulator/accounts", json={"email": user.email}, timeout=10).raise_for_status()
        if demo:
            user._call("POST", "seed")
        return user

    def _call(self, method: str, path: str, **json: Any) -> Any:
        answer = requests.request(
            method, f"{self.base_url}/_emulator/calendar/{path}", json={"email": self.email, **json}, timeout=10
        )
        answer.raise_for_status()
        return answer.json()

    def add(self, calendar_id: str | None = None, **event: Any) -> dict[str, Any]:
        return dict(self._call("POST", "events", calendarId=calendar_id or self.calendar_id, event=event))

    def add_many(self, events: list[dict[str, Any]], calendar_id: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("POST", "events", calendarId=calendar_id or self.calendar_id, events=events))

    def patch(self, event_id: str, calendar_id: str | None = None, **event: Any) -> dict[str, Any]:
        return dict(
            self._call("PATCH", "events", calendarId=calendar_id or self.calendar_id, eventId=event_id, event=event)
        )

    def delete(self, event_id: str, calendar_id: str | None = None) -> None:
        self._call("DELETE", "events", calendarId=calendar_id or self.calendar_id, eventId=event_id)

    def events(self, calendar_id: str | None = None, *, cancelled: bool = True) -> list[dict[str, Any]]:
        """The stored events (series unexpanded), deleted ones too unless ``cancelled=False``."""
        answer = requests.get(
            f"{self.base_url}/_emulator/calendar/events",
            params={"email": self.email, "calendarId": calendar_id or self.calendar_id},
            timeout=10,
        )
        answer.raise_for_status()
        return [e for e in answer.json() if cancelled or e.get("status") != "cancelled"]

    def add_calendar(self, summary: str, **extra: Any) -> dict[str, Any]:
        return dict(self._call("POST", "calendars", summary=summary, **extra))

    def expire_sync_tokens(self, *, purge_deleted: bool = False) -> None:
        self._call("POST", "expire-sync-tokens", purgeDeleted=purge_deleted)

    def channels(self) -> list[dict[str, Any]]:
        """The account's live watch channels."""
        answer = requests.get(f"{self.base_url}/_emulator/calendar/channels", params={"email": self.email}, timeout=10)
        answer.raise_for_status()
        return list(answer.json())
