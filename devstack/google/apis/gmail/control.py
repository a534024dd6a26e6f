"""Acting as the user in Gmail: control routes under ``/_emulator/gmail/`` and a small page at
``/_emulator/ui/gmail?email=...``.

Every change goes through :class:`GmailStore`, so it bumps the historyId, records history
and fires Pub/Sub pushes exactly as the same change made in Gmail would. Routes take JSON
(answering JSON) or, from the page's forms, form data (answering with a redirect back).
"""

from __future__ import annotations

import binascii
import datetime
import html
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from devstack.google.apis.gmail import mime
from devstack.google.apis.gmail.quota import UNITS_PER_SECOND
from devstack.google.apis.gmail.store import GmailError, Mailbox, StoredMessage
from devstack.google.responses import html_response, json_response
from devstack.google.server import Route

if TYPE_CHECKING:
    from collections.abc import Callable

    from devstack.google.apis.gmail.service import GmailApi

PREFIX = "/_emulator/gmail"
UI_PATH = "/_emulator/ui/gmail"


class _Input:
    """A control request's fields, from JSON or from an HTML form."""

    def __init__(self, request: Request) -> None:
        self.from_form = request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
        if self.from_form:
            self.data: dict[str, Any] = {
                k: v for k, v in request.form.items() if k not in ("labelIds", "add", "remove")
            }
            for name in ("labelIds", "add", "remove"):
                values = [v for v in request.form.getlist(name) if v]
                if values:
                    self.data[name] = [x.strip() for v in values for x in v.split(",") if x.strip()]
        else:
            body = request.get_json(force=True, silent=True)
            self.data = body if isinstance(body, dict) else {}
        if "email" not in self.data and request.args.get("email"):
            self.data["email"] = request.args["email"]

    def text(self, name: str) -> str:
        """Field ``name`` as a stripped string ('' if absent or not a string)."""
        value = self.data.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    def strings(self, name: str) -> list[str] | None:
        """Field ``name`` as a list of strings (a comma-separated string is split); None if absent."""
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ValueError(f"{name} must be a list of strings")


def _error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _back(email: str) -> Response:
    response = Response(status=303)
    response.headers["Location"] = f"{UI_PATH}?email={quote(email)}"
    return response


class GmailControl:
    """The control routes and the page, over a :class:`GmailApi`'s store."""

    def __init__(self, api: GmailApi) -> None:
        self.api = api
        self.store = api.store
        self.state = api.state

    def routes(self) -> list[Route]:
        """The control and UI routes."""
        return [
            Route(f"{PREFIX}/messages", ("POST",), self.deliver),
            Route(f"{PREFIX}/messages/<message_id>/labels", ("POST",), self.change_labels),
            Route(f"{PREFIX}/messages/<message_id>/delete", ("POST",), self.delete),
            Route(f"{PREFIX}/messages/<message_id>", ("DELETE",), self.delete),
            Route(f"{PREFIX}/messages/<message_id>/trash", ("POST",), self.trash),
            Route(f"{PREFIX}/messages/<message_id>/untrash", ("POST",), self.untrash),
            Route(f"{PREFIX}/drafts", ("POST",), self.create_draft),
            Route(f"{PREFIX}/quota", ("GET",), self.quota_status),
            Route(f"{PREFIX}/quota", ("POST",), self.set_quota),
            Route(f"{PREFIX}/labels", ("POST",), self.create_label),
            Route(f"{PREFIX}/expire-history", ("POST",), self.expire_history),
            Route(f"{PREFIX}/lapse-watch", ("POST",), self.lapse_watch),
            Route(f"{PREFIX}/seed", ("POST",), self.seed),
            Route(f"{PREFIX}/mailbox", ("GET",), self.mailbox),
            Route(f"{PREFIX}/subscriptions", ("GET",), self.list_subscriptions),
            Route(f"{PREFIX}/subscriptions", ("POST",), self.subscribe),
            Route(f"{PREFIX}/subscriptions/<path:name>", ("DELETE",), self.unsubscribe),
            Route(UI_PATH, ("GET",), self.page),
        ]

    # ------------------------------------------------------------------ helpers
    def _box(self, data: _Input) -> Mailbox:
        address = data.text("email")
        if not address:
            raise ValueError("email is required")
        try:
            return self.store.mailbox_for_email(address)
        except KeyError:
            raise ValueError(f"unknown account {address}") from None

    def _on_box(self, request: Request, action: Callable[[Mailbox], Any], key: str) -> Response:
        """POST {email}: ``action`` on that mailbox, its result answered as ``{key: result}``."""
        data = _Input(request)
        try:
            box = self._box(data)
        except ValueError as exc:
            return _error(str(exc))
        return self._done(data, box, {key: action(box)})

    def _done(self, data: _Input, box: Mailbox, body: Any, status: int = 200) -> Response:
        return _back(box.email) if data.from_form else json_response(body, status)

    @staticmethod
    def _summary(message: StoredMessage) -> dict[str, Any]:
        return {
            **message.minimal(),
            "from": message.parsed.header("From"),
            "to": message.parsed.header("To"),
            "subject": message.parsed.subject,
            "messageIdHeader": message.parsed.message_id,
        }

    # ------------------------------------------------------------------ routes
    def deliver(self, request: Request) -> Response:
        """POST {email, raw | source | from,to,cc,subject,text,html, labelIds?, threadOf?}: incoming mail."""
        data = _Input(request)
        try:
            with self.state.lock:
                box = self._box(data)
                raw = self._source(data, box)
                labels = data.strings("labelIds")
                thread_of = data.text("threadOf") or None
                message = self.store.receive(box, raw, labels, thread_of=thread_of)
                return self._done(data, box, self._summary(message), 201)
        except ValueError as exc:
            return _error(str(exc))
        except GmailError as exc:
            return _error(exc.message, exc.status)

    def _source(self, data: _Input, box: Mailbox) -> bytes:
        if data.text("raw"):
            try:
                return mime.b64url_decode(data.text("raw"))
            except (ValueError, binascii.Error):
                raise ValueError("raw must be base64url") from None
        if data.text("source"):
            return data.text("source").encode()
        sender = data.text("from")
        if not sender:
            raise ValueError("raw, source or from is required")
        in_reply_to = references = ""
        thread_of = data.text("threadOf")
        if thread_of:
            # Reply headers make the message a real reply, so clients threading by headers agree.
            parent = box.message(thread_of)
            in_reply_to = parent.parsed.message_id
            references = " ".join(parent.parsed.references)
        return mime.compose(
            sender=sender,
            to=data.text("to") or f"{box.name} <{box.email}>",
            cc=data.text("cc"),
            subject=data.text("subject"),
            text=data.text("text"),
            html_body=data.text("html"),
            date=self.state.now(),
            in_reply_to=in_reply_to,
            references=references,
            domain=sender.rsplit("@", 1)[-1].strip(">") or "example.com",
        )

    def change_labels(self, request: Request, message_id: str) -> Response:
        """POST {email, add?, remove?}: what the user does with labels in Gmail."""
        data = _Input(request)
        try:
            box = self._box(data)
            message = self.store.modify(box, message_id, data.strings("add") or [], data.strings("remove") or [])
            return self._done(data, box, self._summary(message))
        except ValueError as exc:
            return _error(str(exc))
        except GmailError as exc:
            return _error(exc.message, exc.status)

    def delete(self, request: Request, message_id: str) -> Response:
        """POST .../delete or DELETE {email}: delete forever."""
        data = _Input(request)
        try:
            box = self._box(data)
            self.store.delete(box, message_id)
            return self._done(data, box, {"deleted": message_id, "historyId": str(box.history_id)})
        except ValueError as exc:
            return _error(str(exc))
        except GmailError as exc:
            return _error(exc.message, exc.status)

    def trash(self, request: Request, message_id: str) -> Response:
        """POST {email}: the user moves a message to the trash (as messages.trash)."""
        return self._trash(request, message_id, self.store.trash)

    def untrash(self, request: Request, message_id: str) -> Response:
        """POST {email}: the user takes a message out of the trash (as messages.untrash)."""
        return self._trash(request, message_id, self.store.untrash)

    def _trash(self, request: Request, message_id: str, action: Any) -> Response:
        data = _Input(request)
        try:
            box = self._box(data)
            return self._done(data, box, self._summary(action(box, message_id)))
        except ValueError as exc:
            return _error(str(exc))
        except GmailError as exc:
            return _error(exc.message, exc.status)

    def create_draft(self, request: Request) -> Response:
        """POST {email, to?, subject?, text?, threadOf?}: the user writes a draft (as
        drafts.create); answers ``{draftId, ...message}``."""
        data = _Input(request)
        try:
            with self.state.lock:
                box = self._box(data)
                in_reply_to = ""
                thread_of = data.text("threadOf") or None
                if thread_of:
                    in_reply_to = box.message(thread_of).parsed.message_id
                raw = mime.compose(
                    sender=f"{box.name} <{box.email}>" if box.name else box.email,
                    to=data.text("to") or "marie@curie.example",
                    subject=data.text("subject"),
                    text=data.text("text"),
                    date=self.state.now(),
                    in_reply_to=in_reply_to,
                )
                thread = box.message(thread_of).thread_id if thread_of else None
                draft_id, message = self.store.create_draft(box, raw, thread)
                return self._done(data, box, {"draftId": draft_id, **self._summary(message)}, 201)
        except ValueError as exc:
            return _error(str(exc))
        except GmailError as exc:
            return _error(exc.message, exc.status)

    def quota_status(self, request: Request) -> Response:
        """GET ?email=: the per-user quota of a mailbox (limit, units used in the current
        second, requests refused), or without email the global setting."""
        address = request.args.get("email", "").strip().lower()
        quota = self.store.quota
        if not address:
            return json_response({"units_per_second": quota.default, "mailboxes": dict(quota.per_mailbox)})
        return json_response(quota.status(address, self.state.now()))

    def set_quota(self, request: Request) -> Response:
        """POST {enabled, units_per_second?, email?}: switch Gmail's per-user rate limit on
        (250 units per second unless told otherwise) or off, for one account or for every
        account without its own setting."""
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
            return _error("enabled (true or false) is required")
        units = body.get("units_per_second", UNITS_PER_SECOND)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            return _error("units_per_second must be a positive integer")
        email = body.get("email")
        if email is not None:
            if not isinstance(email, str):
                return _error("email must be a string")
            try:
                email = self.store.mailbox_for_email(email).email
            except KeyError:
                return _error(f"unknown account {email}", 404)
        self.store.quota.configure(units if body["enabled"] else None, email)
        return json_response({"email": email, "units_per_second": units if body["enabled"] else None})

    def create_label(self, request: Request) -> Response:
        """POST {email, name}: a user label."""
        data = _Input(request)
        try:
            box = self._box(data)
            if not data.text("name"):
                raise ValueError("name is required")
            return self._done(data, box, self.store.create_label(box, data.text("name")).as_dict(), 201)
        except ValueError as exc:
            return _error(str(exc))

    def expire_history(self, request: Request) -> Response:
        """POST {email}: drop all retained history (older start ids now 404)."""
        return self._on_box(request, lambda box: str(self.store.expire_history(box)), "historyId")

    def lapse_watch(self, request: Request) -> Response:
        """POST {email}: the mailbox's watch lapses as an unrenewed one does after 7 days —
        Gmail stops publishing without telling anyone (the watch itself is left to expire)."""
        return self._on_box(request, self.store.lapse_watch, "lapsed")

    def seed(self, request: Request) -> Response:
        """POST {email}: the demo mailbox (only if empty)."""
        data = _Input(request)
        try:
            box = self._box(data)
        except ValueError as exc:
            return _error(str(exc))
        return self._done(data, box, {"seeded": self.store.seed_demo(box.email)}, 201)

    def mailbox(self, request: Request) -> Response:
        """GET ?email=: historyId, retention floor, watch, rate drops and the messages."""
        data = _Input(request)
        try:
            box = self._box(data)
        except ValueError as exc:
            return _error(str(exc))
        with self.state.lock:
            watch = box.watch
            return json_response(
                {
                    "email": box.email,
                    "historyId": str(box.history_id),
                    "historyFloor": str(box.history_floor),
                    "watch": None
                    if watch is None
                    else {
                        "topicName": watch.topic,
                        "labelIds": sorted(watch.label_ids),
                        "labelFilterBehavior": watch.behavior,
                        "expiration": str(watch.expiration_ms),
                    },
                    "pushesDroppedByRate": box.pushes_dropped_by_rate,
                    "messages": [self._summary(m) for m in self._newest_first(box)],
                }
            )

    def list_subscriptions(self, request: Request) -> Response:
        """GET: the push subscriptions."""
        with self.state.lock:
            return json_response([s.as_dict() for s in self.api.pubsub.subscriptions.values()])

    def subscribe(self, request: Request) -> Response:
        """POST {topicName, pushEndpoint, audience?, serviceAccountEmail?, name?}: a push subscription."""
        data = _Input(request)
        try:
            subscription = self.api.pubsub.subscribe(
                data.text("topicName"),
                data.text("pushEndpoint"),
                name=data.text("name"),
                audience=data.text("audience"),
                service_account_email=data.text("serviceAccountEmail"),
            )
        except ValueError as exc:
            return _error(str(exc))
        return json_response(subscription.as_dict(), 201)

    def unsubscribe(self, request: Request, name: str) -> Response:
        """DELETE: remove a push subscription."""
        if not self.api.pubsub.unsubscribe(name):
            return _error("no such subscription", 404)
        return json_response({})

    # ------------------------------------------------------------------ page
    @staticmethod
    def _newest_first(box: Mailbox) -> list[StoredMessage]:
        return sorted(box.messages.values(), key=lambda m: (m.internal_date, m.id), reverse=True)

    def page(self, request: Request) -> Response:
        """GET /_emulator/ui/gmail?email=: the mailbox, with forms for every control action."""
        e = html.escape
        with self.state.lock:
            accounts = [a.email for a in self.state.accounts_by_email.values()]
            address = request.args.get("email") or (accounts[0] if accounts else "")
            links = " · ".join(f'<a href="{UI_PATH}?email={e(quote(a))}">{e(a)}</a>' for a in accounts)
            try:
                box = self.store.mailbox_for_email(address)
            except KeyError:
                return html_response(f"<!doctype html><title>Gmail</title><p>Accounts: {links or 'none'}</p>", 404)
            hidden = f'<input type="hidden" name="email" value="{e(box.email)}">'
            rows = []
            for m in self._newest_first(box):
                when = datetime.datetime.fromtimestamp(m.internal_date / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M")
                unread = "UNREAD" in m.label_ids
                toggle = "remove" if unread else "add"
                bin_action = "untrash" if "TRASH" in m.label_ids else "trash"
                rows.append(
                    f"<tr><td>{e(when)}</td><td>{e(m.parsed.header('From'))}</td>"
                    f"<td>{'<b>' if unread else ''}{e(m.parsed.subject)}{'</b>' if unread else ''}"
                    f"<br><small>{m.parsed.snippet}</small></td>"
                    f"<td>{e(', '.join(m.label_ids))}</td><td><code>{e(m.id)}</code><br>thread "
                    f"<code>{e(m.thread_id)}</code></td><td>"
                    f'<form method="post" action="{PREFIX}/messages/{e(m.id)}/labels">{hidden}'
                    f'<input type="hidden" name="{toggle}" value="UNREAD">'
                    f"<button>{'Mark read' if unread else 'Mark unread'}</button></form>"
                    f'<form method="post" action="{PREFIX}/messages/{e(m.id)}/labels">{hidden}'
                    f'<input name="add" placeholder="add labels" size="10">'
                    f'<input name="remove" placeholder="remove labels" size="10"><button>Apply</button></form>'
                    f'<form method="post" action="{PREFIX}/messages/{e(m.id)}/delete">{hidden}'
                    f"<button>Delete forever</button></form>"
                    f'<form method="post" action="{PREFIX}/messages/{e(m.id)}/{bin_action}">{hidden}'
                    f"<button>{bin_action.capitalize()}</button></form></td></tr>"
                )
            options = "".join(
                f'<option value="{e(m.id)}">{e(m.parsed.subject)} ({e(m.id)})</option>' for m in self._newest_first(box)
            )
            label_names = ", ".join(f"{lab.name} ({lab.id})" for lab in box.labels.values() if lab.type == "user")
            watch = box.watch
            watch_text = (
                "none" if watch is None else f"topic {watch.topic}, expires {watch.expiration_ms} ms, {watch.behavior}"
            )
            body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gmail emulator · {e(box.email)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em;vertical-align:top}}form{{margin:.2em 0}}</style></head>
<body><h1>Gmail · {e(box.email)}</h1><p>Accounts: {links}</p>
<p>historyId <code>{box.history_id}</code> · history retained from <code>{box.history_floor}</code>
· watch: {e(watch_text)} · user labels: {e(label_names or "none")}</p>
<h2>Deliver incoming mail</h2>
<form method="post" action="{PREFIX}/messages">{hidden}
<p><input name="from" placeholder="From" required size="40"> <input name="cc" placeholder="Cc" size="30"></p>
<p><input name="subject" placeholder="Subject" size="60"></p>
<p><textarea name="text" rows="4" cols="70" placeholder="Text"></textarea></p>
<p><label>Reply in thread of <select name="threadOf"><option value="">(new thread)</option>{options}</select></label>
<input name="labelIds" placeholder="labels (default INBOX,UNREAD,CATEGORY_PERSONAL)" size="40"></p>
<button>Deliver</button></form>
<h2>Mailbox</h2>
<table><tr><th>Date (UTC)</th><th>From</th><th>Subject</th><th>Labels</th><th>Ids</th><th>Act</th></tr>
{"".join(rows) or '<tr><td colspan="6">empty</td></tr>'}</table>
<h2>Other</h2>
<form method="post" action="{PREFIX}/labels">{hidden}<input name="name" placeholder="label name" required>
<button>Create label</button></form>
<form method="post" action="{PREFIX}/seed">{hidden}<button>Seed demo mail (empty mailbox only)</button></form>
<form method="post" action="{PREFIX}/expire-history">{hidden}
<button>Expire history (history.list with older ids → 404)</button></form>
</body></html>"""
        return html_response(body)
