"""The Gmail v1 methods the emulator serves (see the package docstring for the list)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from werkzeug.wrappers import Request

from devstack.google.apis.discovery import ApiError, Method
from devstack.google.apis.gmail import mime
from devstack.google.apis.gmail.paging import PageTokens
from devstack.google.apis.gmail.pubsub import PubSub
from devstack.google.apis.gmail.query import HIDDEN_LABELS, Query
from devstack.google.apis.gmail.store import GmailError, GmailStore, Mailbox, StoredMessage
from devstack.google.apis.service import ApiCall, ApiService, implements
from devstack.google.server import EmulatorContext, Route
from devstack.google.state import Account

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
# Scopes that may read message bodies and search; gmail.metadata alone may not.
_CONTENT_SCOPES = frozenset(
    {
        "https://mail.google.com/",
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://www.googleapis.com/auth/gmail.addons.current.message.readonly",
        "https://www.googleapis.com/auth/gmail.addons.current.message.action",
    }
)
METADATA_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"


def _page_size(call: ApiCall) -> int:
    # Gmail documents 500 as the largest page; larger requests get 500, not an error.
    return max(1, min(int(call.param("maxResults", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE))


Handler = TypeVar("Handler", bound=Callable[..., Any])


def gmail_method(method_id: str) -> Callable[[Handler], Handler]:
    """The core's :func:`implements` for a method, also rendering the store's
    :class:`GmailError` as Google's error (the core's decorator is typed for functions)."""

    def mark(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except GmailError as error:
                raise ApiError(error.status, error.message, error.reason) from None

        implements(method_id)(wrapper)
        return cast(Handler, wrapper)

    return mark


class GmailApi(ApiService):
    """Gmail v1 (the package docstring lists the methods), plus the batch endpoint.

    The store is ``ctx.stores["gmail"]`` (a :class:`GmailStore`); its Pub/Sub emulation is
    ``store.pubsub``.
    """

    api_name = "gmail"
    api_version = "v1"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.store: GmailStore = ctx.stores.setdefault("gmail", GmailStore(ctx.state))
        self.pubsub = PubSub(ctx)
        self.store.pubsub = self.pubsub
        self.store.listeners.append(self.pubsub.on_change)
        self.pages = PageTokens()

    def api_routes(self) -> list[Route]:
        """Only the discovery methods (what a batch part may call)."""
        return super().routes()

    def admit(self, method: Method, account: Account) -> None:
        """Gmail's per-user rate limit, when switched on (see :mod:`.quota`)."""
        self.store.quota.charge(account.email, method.id, self.state.now())

    # ------------------------------------------------------------------ helpers
    def mailbox(self, call: ApiCall) -> Mailbox:
        """The caller's mailbox; another user's ``userId`` is refused as Gmail refuses it."""
        user_id = str(call.param("userId", "me"))
        if user_id != "me" and user_id.lower() != call.account.email:
            raise ApiError(403, f"Delegation denied for {call.account.email}", "forbidden")
        return self.store.mailbox(call.account)

    @staticmethod
    def metadata_only(call: ApiCall) -> bool:
        """True when the token's only Gmail read access is the gmail.metadata scope."""
        return METADATA_SCOPE in call.scopes and not _CONTENT_SCOPES & set(call.scopes)

    def render(self, message: StoredMessage, fmt: str, headers: list[str] | None = None) -> dict[str, Any]:
        """A message in ``format`` minimal | metadata | full | raw."""
        out = message.minimal()
        if fmt == "full":
            out["payload"] = message.parsed.payload
        elif fmt == "raw":
            out["raw"] = mime.b64url(message.raw)
        elif fmt == "metadata":
            wanted = {h.lower() for h in headers or []}
            out["payload"] = {
                "mimeType": message.parsed.payload["mimeType"],
                "headers": [h for h in message.parsed.headers if not wanted or h["name"].lower() in wanted],
            }
        return out

    def _check_format(self, call: ApiCall, fmt: str) -> None:
        if fmt in ("full", "raw") and self.metadata_only(call):
            raise ApiError(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")

    # ------------------------------------------------------------------ users
    @gmail_method("gmail.users.getProfile")
    def get_profile(self, call: ApiCall) -> dict[str, Any]:
        """users.getProfile: address, totals and the current historyId."""
        with self.state.lock:
            box = self.mailbox(call)
            return {
                "emailAddress": box.email,
                "messagesTotal": len(box.messages),
                "threadsTotal": len({m.thread_id for m in box.messages.values()}),
                "historyId": str(box.history_id),
            }

    @gmail_method("gmail.users.watch")
    def watch(self, call: ApiCall) -> dict[str, str]:
        """users.watch: ``{historyId, expiration}``; one notification is sent at once."""
        box = self.mailbox(call)
        return self.pubsub.watch(box, call.body if isinstance(call.body, dict) else {})

    @gmail_method("gmail.users.stop")
    def stop(self, call: ApiCall) -> None:
        """users.stop: notifications end (204)."""
        self.pubsub.stop(self.mailbox(call))

    # ------------------------------------------------------------------ labels
    @gmail_method("gmail.users.labels.list")
    def list_labels(self, call: ApiCall) -> dict[str, Any]:
        """labels.list: system and user labels."""
        with self.state.lock:
            return {"labels": [label.as_dict() for label in self.mailbox(call).labels.values()]}

    @gmail_method("gmail.users.labels.get")
    def get_label(self, call: ApiCall) -> dict[str, Any]:
        """labels.get, with message counts."""
        with self.state.lock:
            box = self.mailbox(call)
            label = box.labels.get(str(call.param("id")))
            if label is None:
                raise ApiError(404, "Requested entity was not found.", "notFound")
            tagged = [m for m in box.messages.values() if label.id in m.label_ids]
            unread = [m for m in tagged if "UNREAD" in m.label_ids]
            return {
                **label.as_dict(),
                "messagesTotal": len(tagged),
                "messagesUnread": len(unread),
                "threadsTotal": len({m.thread_id for m in tagged}),
                "threadsUnread": len({m.thread_id for m in unread}),
            }

    # ------------------------------------------------------------------ messages
    @gmail_method("gmail.users.messages.list")
    def list_messages(self, call: ApiCall) -> dict[str, Any]:
        """messages.list: newest first, filtered by labelIds (AND), q and includeSpamTrash."""
        q = str(call.param("q", "") or "")
        if q and self.metadata_only(call):
            raise ApiError(403, "Metadata scope does not support 'q' parameter", "forbidden")
        label_ids = list(call.param("labelIds", []) or [])
        include_hidden = bool(call.param("includeSpamTrash", False))
        binding = {"q": q, "labelIds": sorted(label_ids), "includeSpamTrash": include_hidden}
        with self.state.lock:
            box = self.mailbox(call)
            query = Query(q, box, self.state.now())
            cursor = self._cursor(call, "messages", box, binding)
            show_hidden = include_hidden or query.includes_hidden or bool(HIDDEN_LABELS & set(label_ids))
            matched = [
                m
                for m in box.messages.values()
                if all(label in m.label_ids for label in label_ids)
                and (show_hidden or not HIDDEN_LABELS & set(m.label_ids))
                and query.matches(m)
            ]
            matched.sort(key=lambda m: (m.internal_date, m.id), reverse=True)
            if cursor is not None:
                matched = [m for m in matched if (m.internal_date, m.id) < (cursor[0], cursor[1])]
            size = _page_size(call)
            page = matched[:size]
            out: dict[str, Any] = {}
            if page:
                out["messages"] = [m.ref() for m in page]
            if len(matched) > size:
                last = page[-1]
                out["nextPageToken"] = self.pages.issue("messages", box.sub, binding, [last.internal_date, last.id])
            out["resultSizeEstimate"] = len(matched)
            return out

    def _cursor(self, call: ApiCall, kind: str, box: Mailbox, binding: dict[str, Any]) -> Any:
        token = call.param("pageToken")
        return self.pages.cursor(str(token), kind, box.sub, binding) if token else None

    @gmail_method("gmail.users.messages.get")
    def get_message(self, call: ApiCall) -> dict[str, Any]:
        """messages.get in format minimal | metadata | full | raw."""
        fmt = str(call.param("format", "full"))
        self._check_format(call, fmt)
        with self.state.lock:
            box = self.mailbox(call)
            message = box.message(str(call.param("id")))
            return self.render(message, fmt, call.param("metadataHeaders"))

    @gmail_method("gmail.users.messages.modify")
    def modify_message(self, call: ApiCall) -> dict[str, Any]:
        """messages.modify: add/remove labels."""
        body = call.body if isinstance(call.body, dict) else {}
        with self.state.lock:
            box = self.mailbox(call)
            message = self.store.modify(
                box, str(call.param("id")), body.get("addLabelIds") or [], body.get("removeLabelIds") or []
            )
            return message.with_labels()

    @gmail_method("gmail.users.messages.delete")
    def delete_message(self, call: ApiCall) -> None:
        """messages.delete: permanent deletion (``messageDeleted`` in history)."""
        with self.state.lock:
            self.store.delete(self.mailbox(call), str(call.param("id")))

    @gmail_method("gmail.users.messages.trash")
    def trash_message(self, call: ApiCall) -> dict[str, Any]:
        """messages.trash: TRASH added (``labelAdded`` in history)."""
        with self.state.lock:
            return self.store.trash(self.mailbox(call), str(call.param("id"))).with_labels()

    @gmail_method("gmail.users.messages.untrash")
    def untrash_message(self, call: ApiCall) -> dict[str, Any]:
        """messages.untrash: TRASH removed (``labelRemoved`` in history)."""
        with self.state.lock:
            return self.store.untrash(self.mailbox(call), str(call.param("id"))).with_labels()

    @gmail_method("gmail.users.messages.attachments.get")
    def get_attachment(self, call: ApiCall) -> dict[str, Any]:
        """messages.attachments.get: the ``MessagePartBody`` of an attachment whose id a
        ``format=full`` payload gave (``body.attachmentId``)."""
        if self.metadata_only(call):
            raise ApiError(403, "Metadata scope doesn't allow attachment access", "forbidden")
        with self.state.lock:
            message = self.mailbox(call).message(str(call.param("messageId")))
            attachment_id = str(call.param("id"))
            data = message.parsed.attachments.get(attachment_id)
            if data is None:
                raise ApiError(404, "Requested entity was not found.", "notFound")
            return {"attachmentId": attachment_id, "size": len(data), "data": mime.b64url(data)}

    @staticmethod
    def _raw_of(message: Any, *, required: bool = True) -> bytes | None:
        """The RFC 2822 bytes of a Message in a request body (``raw`` base64url, or the
        media upload's bytes in ``raw_bytes``)."""
        message = message if isinstance(message, dict) else {}
        raw = message.get("raw_bytes")
        if raw is not None:
            return bytes(raw)
        encoded = message.get("raw")
        if not isinstance(encoded, str) or not encoded:
            if not required:
                return None
            raise ApiError(
                400,
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
                "invalidArgument",
            )
        try:
            return mime.b64url_decode(encoded)
        except ValueError:
            raise ApiError(400, "Invalid value for ByteString: raw", "invalidArgument") from None

    @staticmethod
    def _thread_id_of(message: Any) -> str | None:
        thread_id = message.get("threadId") if isinstance(message, dict) else None
        if thread_id is not None and not isinstance(thread_id, str):
            raise ApiError(400, "Invalid thread_id value", "invalidArgument")
        return thread_id

    @gmail_method("gmail.users.messages.send")
    def send_message(self, call: ApiCall) -> dict[str, Any]:
        """messages.send: store in SENT, thread by Gmail's rule, deliver to local accounts."""
        body = call.body if isinstance(call.body, dict) else {}
        raw = self._raw_of(body)
        assert raw is not None
        thread_id = self._thread_id_of(body)
        with self.state.lock:
            return self._send(self.mailbox(call), raw, thread_id).with_labels()

    def _send(self, box: Mailbox, raw: bytes, thread_id: str | None) -> StoredMessage:
        prepared = mime.prepare_outgoing(raw, box.email, box.name, self.state.now())
        parsed = mime.parse(prepared)
        recipients = [*parsed.recipients["to"], *parsed.recipients["cc"], *parsed.recipients["bcc"]]
        if not recipients:
            raise ApiError(400, "Recipient address required", "invalidArgument")
        thread = self.store.thread_for_reply(box, parsed, thread_id) if thread_id else None
        labels = ["SENT"] + (["INBOX", "UNREAD"] if box.email in recipients else [])
        message = self.store.add_message(box, prepared, labels, thread_id=thread)
        delivered = mime.without_bcc(prepared)
        for address in dict.fromkeys(recipients):
            if address == box.email:
                continue
            try:
                other = self.store.mailbox_for_email(address)
            except KeyError:
                continue  # outside the emulator: the mail leaves "the Internet"
            self.store.receive(other, delivered)
        return message

    # ------------------------------------------------------------------ drafts
    @staticmethod
    def _draft(draft_id: str, message: dict[str, Any]) -> dict[str, Any]:
        return {"id": draft_id, "message": message}

    def _draft_body(self, call: ApiCall) -> tuple[bytes, str | None]:
        body = call.body if isinstance(call.body, dict) else {}
        message = body.get("message")
        if "raw_bytes" in body:  # media upload: the Draft metadata, then the message
            message = {**(message if isinstance(message, dict) else {}), "raw_bytes": body["raw_bytes"]}
        raw = self._raw_of(message)
        assert raw is not None
        return raw, self._thread_id_of(message)

    @gmail_method("gmail.users.drafts.create")
    def create_draft(self, call: ApiCall) -> dict[str, Any]:
        """drafts.create: a message with the DRAFT label (``messageAdded`` in history)."""
        raw, thread_id = self._draft_body(call)
        with self.state.lock:
            draft_id, message = self.store.create_draft(self.mailbox(call), raw, thread_id)
            return self._draft(draft_id, message.with_labels())

    @gmail_method("gmail.users.drafts.get")
    def get_draft(self, call: ApiCall) -> dict[str, Any]:
        """drafts.get in format minimal | metadata | full | raw."""
        fmt = str(call.param("format", "full"))
        self._check_format(call, fmt)
        with self.state.lock:
            draft_id = str(call.param("id"))
            message = self.mailbox(call).draft_message(draft_id)
            return self._draft(draft_id, self.render(message, fmt))

    @gmail_method("gmail.users.drafts.list")
    def list_drafts(self, call: ApiCall) -> dict[str, Any]:
        """drafts.list: newest first, with ``q`` and ``includeSpamTrash`` as messages.list."""
        q = str(call.param("q", "") or "")
        include_hidden = bool(call.param("includeSpamTrash", False))
        binding = {"q": q, "includeSpamTrash": include_hidden}
        with self.state.lock:
            box = self.mailbox(call)
            query = Query(q, box, self.state.now())
            cursor = self._cursor(call, "drafts", box, binding)
            show_hidden = include_hidden or query.includes_hidden
            drafts = [(draft_id, box.message(message_id)) for draft_id, message_id in box.drafts.items()]
            matched = [
                (d, m) for d, m in drafts if (show_hidden or not HIDDEN_LABELS & set(m.label_ids)) and query.matches(m)
            ]
            matched.sort(key=lambda dm: (dm[1].internal_date, dm[0]), reverse=True)
            if cursor is not None:
                matched = [(d, m) for d, m in matched if (m.internal_date, d) < (cursor[0], cursor[1])]
            size = _page_size(call)
            page = matched[:size]
            out: dict[str, Any] = {}
            if page:
                out["drafts"] = [self._draft(d, m.ref()) for d, m in page]
            if len(matched) > size:
                last_id, last = page[-1]
                out["nextPageToken"] = self.pages.issue("drafts", box.sub, binding, [last.internal_date, last_id])
            out["resultSizeEstimate"] = len(matched)
            return out

    @gmail_method("gmail.users.drafts.update")
    def update_draft(self, call: ApiCall) -> dict[str, Any]:
        """drafts.update: the draft's message is replaced (a new message id)."""
        raw, thread_id = self._draft_body(call)
        with self.state.lock:
            draft_id = str(call.param("id"))
            message = self.store.update_draft(self.mailbox(call), draft_id, raw, thread_id)
            return self._draft(draft_id, message.with_labels())

    @gmail_method("gmail.users.drafts.delete")
    def delete_draft(self, call: ApiCall) -> None:
        """drafts.delete: the draft and its message are deleted for good."""
        with self.state.lock:
            self.store.delete_draft(self.mailbox(call), str(call.param("id")))

    @gmail_method("gmail.users.drafts.send")
    def send_draft(self, call: ApiCall) -> dict[str, Any]:
        """drafts.send: the draft (its stored message, or the one in the body) is sent as
        messages.send sends; the draft is deleted and the sent message has a new id."""
        body = call.body if isinstance(call.body, dict) else {}
        draft_id = body.get("id")
        if not isinstance(draft_id, str) or not draft_id:
            raise ApiError(400, "Invalid draft", "invalidArgument")
        message = body.get("message")
        if "raw_bytes" in body:
            message = {**(message if isinstance(message, dict) else {}), "raw_bytes": body["raw_bytes"]}
        replacement = self._raw_of(message, required=False)
        with self.state.lock:
            box = self.mailbox(call)
            stored = box.draft_message(draft_id)
            raw = replacement if replacement is not None else stored.raw
            thread_id = self._thread_id_of(message) if replacement is not None else stored.thread_id
            if thread_id == stored.id:
                thread_id = None  # the draft started its own thread: so does the sent message
            sent = self._send(box, raw, thread_id)
            self.store.delete(box, stored.id)
            return sent.with_labels()

    # ------------------------------------------------------------------ threads
    @gmail_method("gmail.users.threads.get")
    def get_thread(self, call: ApiCall) -> dict[str, Any]:
        """threads.get: the thread's messages, oldest first."""
        fmt = str(call.param("format", "full"))
        self._check_format(call, fmt)
        with self.state.lock:
            box = self.mailbox(call)
            messages = box.thread(str(call.param("id")))
            if not messages:
                raise ApiError(404, "Requested entity was not found.", "notFound")
            return {
                "id": messages[0].thread_id,
                "historyId": str(max(m.history_id for m in messages)),
                "messages": [self.render(m, fmt, call.param("metadataHeaders")) for m in messages],
            }

    # ------------------------------------------------------------------ history
    @gmail_method("gmail.users.history.list")
    def list_history(self, call: ApiCall) -> dict[str, Any]:
        """history.list: records after startHistoryId; 404 once that id is out of retention."""
        raw_start = call.param("startHistoryId")
        if raw_start is None:
            raise ApiError(400, "Required parameter: startHistoryId", "required")
        if not str(raw_start).isdigit():
            raise ApiError(400, "Invalid startHistoryId", "invalidArgument")
        start = int(str(raw_start))
        types = set(call.param("historyTypes") or HISTORY_TYPES)
        label_id = call.param("labelId")
        binding = {"start": start, "types": sorted(types), "labelId": label_id}
        with self.state.lock:
            box = self.mailbox(call)
            cursor = self._cursor(call, "history", box, binding)
            records = self.store.history_since(box, start if cursor is None else int(cursor))
            selected = [r for r in records if r.types() & types and (not label_id or r.touches_label(label_id))]
            size = _page_size(call)
            page = selected[:size]
            out: dict[str, Any] = {}
            if page:
                out["history"] = [r.render(types) for r in page]
            if len(selected) > size:
                out["nextPageToken"] = self.pages.issue("history", box.sub, binding, page[-1].id)
            out["historyId"] = str(box.history_id)
            return out

    # ------------------------------------------------------------------ uploads
    @staticmethod
    def _body(request: Request, method: Method) -> Any:
        """Also accept the multipart/related upload of messages.send (JSON metadata + message)."""
        if request.mimetype == "multipart/related" and method.media_upload_path:
            parts = mime.multipart_parts(request.headers.get("Content-Type", ""), request.get_data())
            if parts is None or len(parts) != 2:
                raise ApiError(400, "Invalid multipart request.", "badContent")
            try:
                metadata = json.loads(mime.part_bytes(parts[0]) or b"{}")
            except ValueError:
                raise ApiError(400, "Invalid JSON payload received.", "parseError") from None
            return {**(metadata if isinstance(metadata, dict) else {}), "raw_bytes": mime.part_bytes(parts[1])}
        return ApiService._body(request, method)
