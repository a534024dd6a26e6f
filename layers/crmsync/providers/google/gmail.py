"""Gmail v1 behind the mail port, through google-api-python-client.

Used: ``users.getProfile``, ``messages.list`` (``q``, ``includeSpamTrash=false``),
``messages.get`` ``format=raw`` in batch requests, ``history.list``, ``messages.send``,
``users.watch`` and ``users.stop``. Left out (the port does not need them yet, or the
emulator lacks them): ``messages.attachments.get`` (raw messages carry their attachments),
trash/untrash, drafts, threads and labels methods, the media upload of ``messages.send``
(``raw`` in the JSON body is limited to Google's request size; large attachments will need it).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from crmsync.config import GoogleSettings
from crmsync.errors import InvalidRequest
from crmsync.ports.errors import CursorInvalid, ProviderNotFound
from crmsync.ports.mail import (
    ChangeKind,
    ChangePage,
    MailboxProfile,
    MailChange,
    MailWatch,
    MessagePage,
    MessageRef,
    OutgoingMessage,
    RawMessage,
)
from crmsync.providers.google.api import build_service, google_errors

__all__ = ["GoogleMail"]

logger = logging.getLogger(__name__)

#: Google's largest pages for messages.list and history.list.
MAX_PAGE_SIZE = 500
#: Calls per batch request: Google allows 100 but advises at most 50 (larger batches trip
#: the per-user rate limit).
BATCH_SIZE = 50
_BATCH_PATH = "/batch/gmail/v1"
_HISTORY_TYPES = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]
#: What the window's listing never includes besides spam and trash (``includeSpamTrash``
#: stays false): drafts, which ``messages.list`` otherwise returns.
_NOT_DRAFTS = "-in:draft"


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _ref(message: dict[str, Any]) -> MessageRef:
    return MessageRef(str(message["id"]), str(message.get("threadId", "")))


class GoogleMail:
    """The Gmail mailbox of one connected Google account."""

    def __init__(
        self,
        settings: GoogleSettings,
        refresh_token: str,
        client_secret: Callable[[], str],
        *,
        history_page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        """``history_page_size``: ``maxResults`` of ``history.list`` (smaller only to see paging
        at work)."""
        self._service: Any = build_service("gmail", settings, refresh_token, client_secret)
        # The client library builds the batch address from the discovery document's root,
        # which an api_endpoint override does not change.
        self._batch_uri = settings.api_root.rstrip("/") + _BATCH_PATH if settings.api_root else None
        self._history_page_size = history_page_size

    def _users(self) -> Any:
        return self._service.users()

    def profile(self) -> MailboxProfile:
        with google_errors("users.getProfile"):
            answer = self._users().getProfile(userId="me").execute(num_retries=0)
        return MailboxProfile(email=str(answer["emailAddress"]), history_cursor=str(answer["historyId"]))

    def list_messages(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        query: str = "",
        page: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> MessagePage:
        """``messages.list`` with ``q`` = the window as epoch seconds (exact, unlike dates,
        which Gmail reads in Pacific time), ``-in:draft`` and ``query``."""
        if since.tzinfo is None or (until is not None and until.tzinfo is None):
            logger.warning("mail listing refused: naive window bounds")
            raise InvalidRequest("The mail window needs time-zone-aware bounds.")
        terms = [f"after:{int(since.timestamp())}"]
        if until is not None:
            terms.append(f"before:{int(until.timestamp())}")
        terms.append(_NOT_DRAFTS)
        if query.strip():
            terms.append(query.strip())
        params: dict[str, Any] = {
            "userId": "me",
            "q": " ".join(terms),
            "includeSpamTrash": False,
            "maxResults": max(1, min(page_size, MAX_PAGE_SIZE)),
        }
        if page:
            params["pageToken"] = page
        with google_errors("messages.list"):
            answer = self._users().messages().list(**params).execute(num_retries=0)
        return MessagePage(
            messages=[_ref(m) for m in answer.get("messages", [])], next_page=answer.get("nextPageToken") or None
        )

    def get_messages(self, message_ids: Sequence[str]) -> list[RawMessage]:
        """``messages.get`` ``format=raw``, :data:`BATCH_SIZE` calls per batch request. The
        first part that failed other than "not found" raises (as its neutral error); the
        batch is then worth retrying as a whole."""
        from googleapiclient.http import BatchHttpRequest

        found: dict[str, RawMessage] = {}
        failures: list[BaseException] = []

        def collect(request_id: str, response: Any, exception: BaseException | None) -> None:
            if exception is not None:
                failures.append(exception)
            else:
                found[request_id] = self._raw(response)

        wanted = list(dict.fromkeys(message_ids))
        for start in range(0, len(wanted), BATCH_SIZE):
            chunk = wanted[start : start + BATCH_SIZE]
            batch = (
                BatchHttpRequest(callback=collect, batch_uri=self._batch_uri)
                if self._batch_uri
                else self._service.new_batch_http_request(callback=collect)
            )
            for message_id in chunk:
                batch.add(self._users().messages().get(userId="me", id=message_id, format="raw"), request_id=message_id)
            with google_errors("messages.get (batch)"):
                batch.execute()
            for failure in failures:
                try:
                    with google_errors("messages.get"):
                        raise failure
                except ProviderNotFound:
                    continue  # deleted since it was listed
            failures.clear()
        return [found[m] for m in wanted if m in found]

    @staticmethod
    def _raw(message: dict[str, Any]) -> RawMessage:
        return RawMessage(
            message_id=str(message["id"]),
            thread_id=str(message["threadId"]),
            label_ids=tuple(message.get("labelIds", [])),
            internal_date=datetime.fromtimestamp(int(message["internalDate"]) / 1000, UTC),
            raw=_b64url_decode(str(message["raw"])),
        )

    def changes_since(self, cursor: str) -> ChangePage:
        """``history.list`` from ``cursor``, every page; Gmail's 404 (a start id out of its
        retention, or never issued) is ``CursorInvalid``."""
        if not cursor.isdigit():
            raise CursorInvalid("The mail cursor is not a Gmail historyId.")
        changes: list[MailChange] = []
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {
                "userId": "me",
                "startHistoryId": cursor,
                "historyTypes": _HISTORY_TYPES,
                "maxResults": self._history_page_size,
            }
            if page_token:
                params["pageToken"] = page_token
            try:
                with google_errors("history.list"):
                    answer = self._users().history().list(**params).execute(num_retries=0)
            except ProviderNotFound:
                raise CursorInvalid("Gmail no longer has history from that historyId.") from None
            for record in answer.get("history", []):
                changes.extend(self._changes(record))
            page_token = answer.get("nextPageToken")
            if not page_token:
                return ChangePage(changes=changes, cursor=str(answer["historyId"]))

    @staticmethod
    def _changes(record: dict[str, Any]) -> list[MailChange]:
        """One history record's changes, in Gmail's order of kinds."""
        out: list[MailChange] = []
        for added in record.get("messagesAdded", []):
            message = added["message"]
            out.append(MailChange(ChangeKind.ADDED, _ref(message), tuple(message.get("labelIds", []))))
        for key, kind in (("labelsAdded", ChangeKind.LABELS_ADDED), ("labelsRemoved", ChangeKind.LABELS_REMOVED)):
            for change in record.get(key, []):
                out.append(MailChange(kind, _ref(change["message"]), tuple(change.get("labelIds", []))))
        for deleted in record.get("messagesDeleted", []):
            out.append(MailChange(ChangeKind.DELETED, _ref(deleted["message"])))
        return out

    def send(self, message: OutgoingMessage) -> MessageRef:
        """``messages.send`` with ``raw`` and, for a reply, ``threadId`` (see
        :class:`OutgoingMessage` for Gmail's threading rule)."""
        body: dict[str, Any] = {"raw": base64.urlsafe_b64encode(message.raw).decode("ascii")}
        if message.thread_id is not None:
            body["threadId"] = message.thread_id
        with google_errors("messages.send"):
            answer = self._users().messages().send(userId="me", body=body).execute(num_retries=0)
        return _ref(answer)

    def watch(self, topic: str, *, label_ids: Sequence[str] = (), exclude: bool = False) -> MailWatch:
        body: dict[str, Any] = {"topicName": topic}
        if label_ids:
            body["labelIds"] = list(label_ids)
            body["labelFilterBehavior"] = "exclude" if exclude else "include"
        with google_errors("users.watch"):
            answer = self._users().watch(userId="me", body=body).execute(num_retries=0)
        return MailWatch(
            cursor=str(answer["historyId"]),
            expires_at=datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC),
        )

    def stop(self) -> None:
        with google_errors("users.stop"):
            self._users().stop(userId="me").execute(num_retries=0)
