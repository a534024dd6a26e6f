"""The OAuth binding cookie: ties a consent started in the browser to the callback that ends it
(docs/SECURITY.md). Apart from the integrations routes, so that the callback function imports
this and not those routes' schemas, nor powertools (its cookie class loads with the routes
that set the cookie)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools.shared.cookies import Cookie

    from crmsync.config import Settings

BINDING_COOKIE = "crmsync_oauth"


def cookie_value(cookies: list[str] | None, name: str) -> str | None:
    for cookie in cookies or ():
        key, _, value = cookie.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def binding_cookie(settings: Settings, value: str, max_age: int) -> Cookie:
    from aws_lambda_powertools.shared.cookies import Cookie, SameSite

    return Cookie(
        name=BINDING_COOKIE,
        value=value,
        path="/",
        secure=settings.cookie_secure,
        http_only=True,
        same_site=SameSite.LAX_MODE,
        max_age=max_age,
    )
