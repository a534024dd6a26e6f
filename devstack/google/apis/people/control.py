"""Acting as the user in Google Contacts: control routes and a small HTML page.

JSON in and out under ``/_emulator/people/``; the same routes accept the plain HTML forms
of ``GET /_emulator/ui/people?email=...`` (form-encoded, answered with a redirect back to
the page). Every change goes through :class:`PeopleStore`, exactly like an API write, so it
bumps the change sequence and shows up in the next incremental sync.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from devstack.google.apis.discovery import ApiError
from devstack.google.apis.people.fields import READ_FIELDS, WRITE_FIELDS, clean_person, display_name, render
from devstack.google.apis.people.store import CONNECTIONS, OTHER_CONTACTS, Contact, FullSyncQuota, PeopleStore
from devstack.google.responses import html_response, json_response
from devstack.google.server import EmulatorContext, Route
from devstack.google.state import Account

PREFIX = "/_emulator/people"
UI = "/_emulator/ui/people"
_KINDS = {"contacts": CONNECTIONS, "otherContacts": OTHER_CONTACTS}
_RESOURCE_PREFIX = {CONNECTIONS: "people/", OTHER_CONTACTS: "otherContacts/"}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class ControlError(Exception):
    """A control request that cannot be done (answered as ``{"error": message}``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _is_form(request: Request) -> bool:
    return request.mimetype in _FORM_TYPES


def _json(request: Request) -> dict[str, Any]:
    if _is_form(request):
        return {k: v for k, v in request.form.items()}
    try:
        value = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise ControlError("the body must be a JSON object") from None
    if not isinstance(value, dict):
        raise ControlError("the body must be a JSON object")
    return value


def _form_person(form: dict[str, Any], collection: str) -> dict[str, Any]:
    """The person an HTML form describes (empty inputs clear the field)."""
    person: dict[str, Any] = {}
    given, family = str(form.get("givenName", "")).strip(), str(form.get("familyName", "")).strip()
    if collection == OTHER_CONTACTS and not family:
        person["names"] = [{"displayName": given}] if given else []
    else:
        person["names"] = (
            [{k: v for k, v in (("givenName", given), ("familyName", family)) if v}] if given or family else []
        )
    for key, field, attr in (
        ("emailAddress", "emailAddresses", "value"),
        ("phone", "phoneNumbers", "value"),
        ("organization", "organizations", "name"),
        ("note", "biographies", "value"),
    ):
        value = str(form.get(key, "")).strip()
        if key in form:
            person[field] = [{attr: value}] if value else []
    return person


class PeopleControl:
    """Routes that let a test or a person change the demo user's address book."""

    def __init__(self, ctx: EmulatorContext, store: PeopleStore) -> None:
        self.ctx = ctx
        self.store = store

    def routes(self) -> list[Route]:
        """The control routes and the HTML page."""
        kind = "<any(contacts, otherContacts):kind>"
        return [
            Route(f"{PREFIX}/{kind}", ("GET",), self._guard(self.list_people)),
            Route(f"{PREFIX}/{kind}", ("POST",), self._guard(self.create_person)),
            Route(f"{PREFIX}/{kind}/<cid>", ("PATCH",), self._guard(self.update_person)),
            Route(f"{PREFIX}/{kind}/<cid>/update", ("POST",), self._guard(self.update_person)),
            Route(f"{PREFIX}/{kind}/<cid>", ("DELETE",), self._guard(self.delete_person)),
            Route(f"{PREFIX}/{kind}/<cid>/delete", ("POST",), self._guard(self.delete_person)),
            Route(f"{PREFIX}/expire-sync-tokens", ("POST",), self._guard(self.expire_sync_tokens)),
            Route(f"{PREFIX}/full-sync-quota", ("GET",), self._guard(self.get_quota)),
            Route(f"{PREFIX}/full-sync-quota", ("POST",), self._guard(self.set_quota)),
            Route(f"{PREFIX}/propagation", ("GET",), self._guard(self.get_propagation)),
            Route(f"{PREFIX}/propagation", ("POST",), self._guard(self.set_propagation)),
            Route(f"{PREFIX}/seed", ("POST",), self._guard(self.seed)),
            Route(UI, ("GET",), self.page),
        ]

    # ------------------------------------------------------------------ plumbing

    def _guard(self, handler: Any) -> Any:
        """Turn :class:`ControlError`/:class:`ApiError` into JSON errors; forms get a redirect."""

        def handle(request: Request, **values: str) -> Response:
            try:
                body = _json(request) if request.method in ("POST", "PATCH") else dict(request.args.items())
                result = handler(request, body, **values)
            except ControlError as error:
                return json_response({"error": str(error)}, error.status)
            except ApiError as error:
                return json_response({"error": error.message}, error.status)
            if _is_form(request):
                email = str(body.get("email", ""))
                return Response(status=303, headers={"Location": f"{UI}?email={quote(email)}"})
            status = 201 if request.method == "POST" and handler in (self.create_person,) else 200
            return json_response(result, status)

        return handle

    def _account(self, body: dict[str, Any]) -> Account:
        email = str(body.get("email", "")).strip().lower()
        if not email:
            raise ControlError("email is required")
        with self.ctx.state.lock:
            account = self.ctx.state.accounts_by_email.get(email)
        if account is None:
            raise ControlError(f"unknown account {email}", 404)
        return account

    def _contact(self, account: Account, kind: str, cid: str) -> Contact:
        collection = _KINDS[kind]
        contact = self.store.get(account.sub, _RESOURCE_PREFIX[collection] + cid, collection)
        if contact is None:
            raise ControlError(f"no such person {_RESOURCE_PREFIX[collection]}{cid}", 404)
        return contact

    @staticmethod
    def _view(contact: Contact) -> dict[str, Any]:
        return render(contact.resource_name, contact.etag, contact.data, contact.metadata(), READ_FIELDS)

    # ------------------------------------------------------------------ handlers

    def list_people(self, request: Request, body: dict[str, Any], kind: str) -> Any:
        """``GET /_emulator/people/{contacts|otherContacts}?email=`` → the live people."""
        account = self._account(body)
        return {"people": [self._view(c) for c in self.store.live(account.sub, _KINDS[kind])]}

    def create_person(self, request: Request, body: dict[str, Any], kind: str) -> Any:
        """``POST {email, person}`` or ``{email, people: [...]}`` (or a form) → created people."""
        account = self._account(body)
        collection = _KINDS[kind]
        if _is_form(request):
            people = [_form_person(body, collection)]
        else:
            given = body.get("people") if "people" in body else [body.get("person", {})]
            if not isinstance(given, list):
                raise ControlError("people must be a list of Person objects")
            people = given
        created = [self.store.create(account.sub, collection, clean_person(p)) for p in people]
        views = [self._view(c) for c in created]
        return {"people": views} if "people" in body else views[0]

    def update_person(self, request: Request, body: dict[str, Any], kind: str, cid: str) -> Any:
        """``PATCH {email, person}`` (or a form): replace the fields present in ``person``."""
        account = self._account(body)
        collection = _KINDS[kind]
        person = _form_person(body, collection) if _is_form(request) else body.get("person", {})
        if not isinstance(person, dict):
            raise ControlError("person must be a Person object")
        fields = frozenset(k for k in person if k in WRITE_FIELDS)
        with self.ctx.state.lock:
            contact = self._contact(account, kind, cid)
            self.store.update(account.sub, contact, clean_person(person, fields), fields)
            return self._view(contact)

    def delete_person(self, request: Request, body: dict[str, Any], kind: str, cid: str) -> Any:
        """``DELETE ?email=`` (or a form post to ``.../delete``)."""
        account = self._account(body)
        with self.ctx.state.lock:
            contact = self._contact(account, kind, cid)
            self.store.delete(account.sub, contact)
        return {}

    def expire_sync_tokens(self, request: Request, body: dict[str, Any]) -> Any:
        """``POST {email}``: every sync token issued so far answers EXPIRED_SYNC_TOKEN."""
        account = self._account(body)
        return {"expired": self.store.expire_sync_tokens(account.sub)}

    def get_quota(self, request: Request, body: dict[str, Any]) -> Any:
        """The first-page-of-full-sync quota."""
        return self.store.quota.as_dict()

    def set_quota(self, request: Request, body: dict[str, Any]) -> Any:
        """``POST {limit, window_seconds?, email?}``; ``limit`` 0 turns the quota off."""
        try:
            quota = FullSyncQuota(
                limit=int(body.get("limit", 0)),
                window_seconds=float(body.get("window_seconds", 60.0)),
                email=str(body.get("email", "")).strip().lower(),
            )
        except (TypeError, ValueError):
            raise ControlError("limit must be an integer and window_seconds a number") from None
        if quota.limit < 0 or quota.window_seconds <= 0:
            raise ControlError("limit must be ≥ 0 and window_seconds > 0")
        self.store.configure_quota(quota)
        return quota.as_dict()

    def get_propagation(self, request: Request, body: dict[str, Any]) -> Any:
        """The propagation delay of writes to incremental listings (global and per account)."""
        with self.ctx.state.lock:
            return self.store.propagation.as_dict()

    def set_propagation(self, request: Request, body: dict[str, Any]) -> Any:
        """``POST {seconds, email?}``: writes reach incremental listings ``seconds`` after they
        are made (emulator clock), for ``email``'s account or (no email) every account
        without its own setting; 0 turns it off. Reads and full listings are not delayed."""
        try:
            seconds = float(body.get("seconds", 0))
        except (TypeError, ValueError):
            raise ControlError("seconds must be a number") from None
        if not 0 <= seconds <= 86400:
            raise ControlError("seconds must be between 0 and 86400")
        email = str(body.get("email", "")).strip().lower()
        if email:
            self._account(body)  # an unknown account is a 404, not a silent no-op
        with self.ctx.state.lock:
            return self.store.configure_propagation(seconds, email).as_dict()

    def seed(self, request: Request, body: dict[str, Any]) -> Any:
        """``POST {email}``: the demo address book of a demo account (once)."""
        email = str(body.get("email", "")).strip()
        if not email:
            raise ControlError("email is required")
        try:
            return {"added": self.store.seed_demo(email)}
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    # ------------------------------------------------------------------ page

    def page(self, request: Request) -> Response:
        """The demo user's contacts and other contacts, with forms to change them."""
        email = request.args.get("email", "").strip().lower()
        accounts = self.ctx.state.accounts()
        links = " · ".join(
            f'<a href="{UI}?email={escape(quote(a["email"]))}">{escape(a["email"])}</a>' for a in accounts
        )
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>Google Contacts (emulator)</title>",
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .5em;text-align:left}"
            "input{width:10em}</style></head><body>",
            "<h1>Google Contacts (emulator)</h1>",
            f"<p>Accounts: {links or 'none'}</p>",
        ]
        with self.ctx.state.lock:
            account = self.ctx.state.accounts_by_email.get(email)
            if account is None:
                parts.append(f"<p>Choose an account{' (unknown: ' + escape(email) + ')' if email else ''}.</p>")
            else:
                parts.append(f"<h2>{escape(account.email)}</h2>")
                hidden = f'<input type="hidden" name="email" value="{escape(account.email)}">'
                for kind, title in (("contacts", "My Contacts"), ("otherContacts", "Other contacts")):
                    parts.append(self._section(account, kind, title, hidden))
                parts.append(
                    f'<h3>Sync</h3><form method="post" action="{PREFIX}/expire-sync-tokens">{hidden}'
                    "<button>Expire sync tokens</button></form>"
                    f'<form method="post" action="{PREFIX}/seed">{hidden}<button>Seed demo data</button></form>'
                )
        parts.append("</body></html>")
        return html_response("".join(parts))

    def _section(self, account: Account, kind: str, title: str, hidden: str) -> str:
        people = self.store.live(account.sub, _KINDS[kind])
        rows = []
        for contact in people:
            cid = contact.resource_name.split("/", 1)[1]
            rows.append(
                "<tr>"
                f"<td><form method='post' action='{PREFIX}/{kind}/{escape(cid)}/update'>{hidden}"
                f"{self._inputs(contact.data)}<button>Save</button></form></td>"
                f"<td><form method='post' action='{PREFIX}/{kind}/{escape(cid)}/delete'>{hidden}"
                f"<button>Delete</button></form></td>"
                f"<td><code>{escape(contact.resource_name)}</code></td></tr>"
            )
        add = f"<form method='post' action='{PREFIX}/{kind}'>{hidden}{self._inputs({})}<button>Add</button></form>"
        return f"<h3>{escape(title)} ({len(people)})</h3><table>{''.join(rows)}</table><p>{add}</p>"

    @staticmethod
    def _inputs(data: dict[str, list[dict[str, Any]]]) -> str:
        name = (data.get("names") or [{}])[0]
        given = name.get("givenName") or (display_name(data) if not name.get("familyName") else "")
        values = {
            "givenName": given,
            "familyName": name.get("familyName", ""),
            "emailAddress": (data.get("emailAddresses") or [{}])[0].get("value", ""),
            "phone": (data.get("phoneNumbers") or [{}])[0].get("value", ""),
            "organization": (data.get("organizations") or [{}])[0].get("name", ""),
        }
        return "".join(
            f'<input name="{key}" placeholder="{key}" value="{escape(str(value))}">' for key, value in values.items()
        )
