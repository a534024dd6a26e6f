"""Outlook / Microsoft 365 calendars over Microsoft Graph v1.0 (docs/GRAPH.md)."""

from crmsync.providers.graph.calendar import GraphCalendar

__all__ = ["GraphCalendar"]
