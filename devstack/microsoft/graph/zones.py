"""Time-zone names as Outlook writes them: Windows names, mapped to IANA through CLDR.

Graph answers ``timeZone`` with Windows names ("W. Europe Standard Time") and accepts them (and
IANA names) on writes. The mapping is CLDR's windowsZones table as the ``icalendar`` package
ships it, so the emulator and the production adapter agree on a maintained source instead of a
hand-written table.
"""

from __future__ import annotations

from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

_IANA_TO_WINDOWS = {iana: windows for windows, iana in sorted(WINDOWS_TO_OLSON.items())}


class UnknownTimeZone(ValueError):
    """Neither a Windows nor an IANA time-zone name."""


def to_zone(name: str) -> tzinfo:
    """The tzinfo for a Windows or IANA name (``UTC`` included)."""
    iana = WINDOWS_TO_OLSON.get(name, name)
    try:
        return ZoneInfo("UTC" if iana in ("UTC", "Etc/UTC") else iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(name) from exc


def windows_name(name: str) -> str:
    """The Windows name Outlook stores for ``name`` (IANA names are translated when CLDR knows
    them; ``UTC`` stays ``UTC``)."""
    to_zone(name)
    if name in WINDOWS_TO_OLSON or name == "UTC":
        return name
    return _IANA_TO_WINDOWS.get(name, name)
