"""Drive the Google emulator's consent page over HTTP, as a person would in a browser."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import requests


def consent(
    authorization_url: str,
    email: str = "ada@example.com",
    *,
    cancel: bool = False,
    typed: bool = False,
    session: requests.Session | None = None,
    untick: tuple[str, ...] = (),
) -> str:
    """Open the authorization URL, choose ``email`` (or cancel), return the redirect target.
    ``untick``: scopes to untick on the (granular) consent page before choosing the account."""
    http = session or requests.Session()
    page = http.get(authorization_url, timeout=10)
    page.raise_for_status()
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert request_id, "the consent page carries its pending request"
    assert action, "the consent page has a form"
    data: dict[str, str | list[str]] = {"request_id": unescape(request_id.group(1))}
    if cancel:
        data["action"] = "cancel"
    elif typed:
        data.update(email=email, action="use_email")
    else:
        data["account"] = email
        if untick:
            ticked = re.findall(r'type="checkbox" id="[^"]+" name="scope" value="([^"]+)" checked', page.text)
            data.update(granular="1", scope=[unescape(s) for s in ticked if unescape(s) not in untick])
    answer = http.post(
        urljoin(authorization_url, unescape(action.group(1))), data=data, allow_redirects=False, timeout=10
    )
    assert answer.status_code in (302, 303), answer.text[:300]
    return answer.headers["Location"]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
