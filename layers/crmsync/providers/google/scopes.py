"""The least Google scopes for each product feature."""

from __future__ import annotations

from collections.abc import Iterable

IDENTITY = ("openid", "https://www.googleapis.com/auth/userinfo.email")

#: What sending mail as the user needs (mail sent from the CRM).
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"

FEATURE_SCOPES: dict[str, tuple[str, ...]] = {
    # List the user's calendars; read/write events (linked calendar, conflict calendars, watch).
    "calendar": (
        "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
        "https://www.googleapis.com/auth/calendar.events",
    ),
    # Two-way mail sync: read history and messages, send as the user.
    "email": (
        "https://www.googleapis.com/auth/gmail.readonly",
        GMAIL_SEND,
    ),
    "contacts": ("https://www.googleapis.com/auth/contacts",),
}


def scopes_for(features: Iterable[str]) -> list[str]:
    """Identity scopes plus those of each feature, in a stable order without repeats."""
    out: list[str] = list(IDENTITY)
    for feature in features:
        try:
            extra = FEATURE_SCOPES[feature]
        except KeyError:
            raise ValueError(f"unknown feature {feature!r}") from None
        out.extend(s for s in extra if s not in out)
    return out


#: Any of these lets a grant list the account's calendars (the broader ones include it).
CALENDAR_LIST_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/calendar",
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/calendar.calendarlist",
        "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    }
)


def reaches_calendars(scopes: Iterable[str]) -> bool:
    return bool(CALENDAR_LIST_SCOPES & set(scopes))
