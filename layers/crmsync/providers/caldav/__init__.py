"""CalDAV (iCloud and any standards server) behind the calendar port: a small client on
``requests`` (:mod:`.client`), the iCalendar mapping (:mod:`.ical`) and the adapter
(:mod:`.calendar`). See docs/CALDAV.md."""
