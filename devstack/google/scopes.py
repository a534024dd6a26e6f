"""OAuth scope strings: parsing, Google's normalisation, and human-readable descriptions."""

from __future__ import annotations

from collections.abc import Iterable

OPENID = "openid"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"

#: Scopes Google grants with any consent: never offered as a choice on the consent page.
IDENTITY = frozenset({OPENID, USERINFO_EMAIL, USERINFO_PROFILE})

# Google answers the short OpenID scopes with their long URL form in the `scope`
# of redirects and token responses; product code has to cope with that, so the
# emulator does the same.
_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}

_PREFIX = "https://www.googleapis.com/auth/"
_DESCRIPTIONS = {
    OPENID: "Associate you with your personal info on Google",
    USERINFO_EMAIL: "See your primary Google Account email address",
    USERINFO_PROFILE: ("See your personal info, including any personal info you've made publicly available"),
    _PREFIX + "calendar": (
        "See, edit, share, and permanently delete all the calendars you can access using Google Calendar"
    ),
    _PREFIX + "calendar.readonly": ("See and download any calendar you can access using your Google Calendar"),
    _PREFIX + "calendar.calendarlist": "See, add, and remove Google calendars you\u2019re subscribed to",
    _PREFIX + "calendar.calendarlist.readonly": "See the list of Google calendars you\u2019re subscribed to",
    _PREFIX + "calendar.calendars.readonly": (
        "See the title, description, default time zone, and other properties of Google calendars you have access to"
    ),
    _PREFIX + "calendar.settings.readonly": "View your Calendar settings",
    _PREFIX + "calendar.freebusy": "View your availability in your calendars",
    _PREFIX + "calendar.events.owned": "See, create, change, and delete events on Google calendars you own",
    _PREFIX + "calendar.events": "View and edit events on all your calendars",
    _PREFIX + "calendar.events.readonly": "View events on all your calendars",
    _PREFIX + "gmail.readonly": "View your email messages and settings",
    _PREFIX + "gmail.metadata": ("View your email message metadata such as labels and headers, but not the email body"),
    _PREFIX + "gmail.modify": "Read, compose, and send emails from your Gmail account",
    _PREFIX + "gmail.send": "Send email on your behalf",
    _PREFIX + "gmail.labels": "See and edit your email labels",
    _PREFIX + "contacts": "See, edit, download, and permanently delete your contacts",
    _PREFIX + "contacts.readonly": "See and download your contacts",
    _PREFIX + "contacts.other.readonly": (
        "See and download contact info automatically saved in your \u201cOther contacts\u201d"
    ),
}


def normalize(scope: str) -> str:
    """Return the canonical form Google reports for ``scope``."""
    return _ALIASES.get(scope, scope)


def parse(raw: str | None) -> tuple[str, ...]:
    """Split a space-delimited scope parameter into normalised scopes, deduplicated in order."""
    return merge(normalize(s) for s in (raw or "").split())


def merge(*groups: Iterable[str]) -> tuple[str, ...]:
    """Concatenate scope groups, dropping repeats but keeping first-seen order."""
    seen: dict[str, None] = {}
    for group in groups:
        for scope in group:
            seen.setdefault(scope, None)
    return tuple(seen)


def join(scopes: Iterable[str]) -> str:
    """Render scopes the way Google's `scope` response parameter does (space-separated)."""
    return " ".join(scopes)


def describe(scope: str) -> str:
    """Return the consent-screen wording for ``scope`` (the scope itself when unknown)."""
    return _DESCRIPTIONS.get(scope, scope)
