"""Outlook / Microsoft 365 calendars over Microsoft Graph v1.0 (docs/GRAPH.md).

Nothing is imported here: the graph_webhook function imports only ``notifications`` (its
cold start must not pay for ``requests`` and the calendar adapter)."""
