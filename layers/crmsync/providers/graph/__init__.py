"""Microsoft Graph (Outlook / Microsoft 365 calendars) behind the calendar port."""
