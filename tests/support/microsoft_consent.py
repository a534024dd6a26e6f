"""Drive the Microsoft emulator's consent page over HTTP, as a person would in a browser."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import requests


class _Forms(HTMLParser):
    """Each <form>: its action, hidden fields, radios and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({**a, "hidden": {}, "radios": [], "buttons": {}})
        elif tag == "input" and self.forms and a.get("type") == "hidden":
            self.forms[-1]["hidden"][a["name"]] = a.get("value", "")
        elif tag == "input" and self.forms and a.get("type") == "radio":
            self.forms[-1]["radios"].append(a.get("value", ""))
        elif tag == "button" and self.forms and a.get("id"):
            self.forms[-1]["buttons"][a["id"]] = (a.get("name", ""), a.get("value", ""))


def _press(http: requests.Session, page: requests.Response, button: str, account: str | None) -> requests.Response:
    parser = _Forms()
    parser.feed(page.text)
    form = next((f for f in parser.forms if button in f["buttons"]), None)
    assert form is not None, f"no #{button} on the page: {page.text[:400]}"
    data = dict(form["hidden"])
    if account is not None:
        assert account in form["radios"], f"{account} is not offered: {form['radios']}"
        data["account"] = account
    name, value = form["buttons"][button]
    data[name] = value
    return http.post(urljoin(page.url, form["action"]), data=data, allow_redirects=False, timeout=10)


def consent(
    authorization_url: str,
    email: str = "ada@contoso.test",
    *,
    cancel: bool = False,
    session: requests.Session | None = None,
) -> str:
    """Open the authorization URL, pick ``email`` and Accept (or Cancel); return where the
    emulator redirects the browser (the app's redirect URI with ``code`` or ``error``). A user
    whose organisation requires admin approval gets that page: "Return to the application
    without granting consent" is pressed. The session must trust the emulator's CA."""
    http = session or requests.Session()
    page = http.get(authorization_url, timeout=10, allow_redirects=False)
    assert page.status_code == 200, page.text[:400]
    if cancel:
        answer = _press(http, page, "cancel", None)
    else:
        answer = _press(http, page, "accept", email)
        if answer.status_code == 200 and "return-to-app" in answer.text:
            answer = _press(http, answer, "return-to-app", None)
    assert answer.status_code == 302, answer.text[:400]
    return str(answer.headers["Location"])
