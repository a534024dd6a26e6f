"""GET /settings/{page} (and /settings/contacts/review): serves the static settings pages
packaged beside this module."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.problems import problem

router = APIGatewayHttpRouter()

#: page name in the URL → (file, content type)
PAGES: dict[str, tuple[str, str]] = {
    "integrations": ("integrations.html", "text/html; charset=utf-8"),
    "calendar": ("calendar.html", "text/html; charset=utf-8"),
    "email": ("email.html", "text/html; charset=utf-8"),
    "common.js": ("common.js", "text/javascript; charset=utf-8"),
    "calendar.js": ("calendar.js", "text/javascript; charset=utf-8"),
    "email.js": ("email.js", "text/javascript; charset=utf-8"),
    "email-sync.js": ("email-sync.js", "text/javascript; charset=utf-8"),
    "settings.js": ("settings.js", "text/javascript; charset=utf-8"),
    "contacts-review.js": ("contacts-review.js", "text/javascript; charset=utf-8"),
    "settings.css": ("settings.css", "text/css; charset=utf-8"),
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


#: "New Contacts Found" (seed 004 steps 6–10), one level deeper than the other pages: the
#: Integrations page links to it as ``contacts/review``, and its own links start with ``../``.
#: Only served at that path (its relative links would be wrong at /settings/<page>).
CONTACTS_REVIEW = ("contacts-review.html", "text/html; charset=utf-8")


@lru_cache(maxsize=len(PAGES) + 1)
def _read(filename: str) -> str:
    return resources.files("crmsync.web").joinpath("static", filename).read_text(encoding="utf-8")


@router.get("/settings/<page>")
def settings_page(page: str) -> Response[str]:
    entry = PAGES.get(page)
    if entry is None:
        return problem(404, f"No settings page {page!r}.")
    return _serve(*entry)


@router.get("/settings/contacts/review")
def contacts_review_page() -> Response[str]:
    return _serve(*CONTACTS_REVIEW)


def _serve(filename: str, content_type: str) -> Response[str]:
    return Response(status_code=200, content_type=content_type, body=_read(filename), headers=SECURITY_HEADERS)
