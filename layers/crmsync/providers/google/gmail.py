"""Gmail v1 behind the mail port, through google-api-python-client.

Used: ``users.getProfile``, ``messages.list`` (``q``, ``includeSpamTrash=false``),
``messages.get`` ``format=raw`` in batch requests, ``history.list``, ``messages.send``,
``users.watch`` and ``users.stop``. Left out (the port does not need them):
``messages.attachments.get`` (raw messages carry their attachments), trash/untrash (a trashed
message shows as TRASH added in history), drafts (``-in:draft`` keeps them out of
listings), threads and labels methods, the media upload of ``messages.send``
(``raw`` in the JSON body is limited to Google's request size; large attachments will need it).
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from crmsync.config import GoogleSettings
from crmsync.errors import InvalidRequest
from crmsync.ports.errors import CursorInvalid, ProviderError, ProviderNotFound, RateLimited
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

__all__ = ["GoogleMail", "QuotaPacer"]

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


#: Gmail's per-user rate limit ("250 quota units per user per second, moving average") and
#: what this adapter plans for by default: a margin for other clients of the same mailbox.
GMAIL_UNITS_PER_SECOND = 250
DEFAULT_UNITS_PER_SECOND = 240
#: Quota units of the calls made here (Gmail's per-method quota usage table).
QUOTA_UNITS = {
    "users.getProfile": 1,
    "messages.list": 5,
    "messages.get": 5,
    "history.list": 2,
    "messages.send": 100,
    "users.watch": 100,
    "users.stop": 50,
}
#: Attempts of a batch part that failed for the rate limit or a server error, and the
#: backoff between them (doubling from the base, capped; full jitter).
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 32.0


class QuotaPacer:
    """Keeps one mailbox's calls within a quota budget, so a long backfill does not meet
    Gmail's rate limit at all. Share one pacer across the calls (and adapters) of a mailbox.

    Gmail counts a moving window: units spent in the last second. A token bucket admits its
    capacity *plus* its refill within one window (up to twice the budget), so this pacer
    keeps the same window instead: a call waits (``pause``) until its units fit in
    ``units_per_second`` minus what was spent in the last ``window`` seconds. A call's units
    are dated when it *ends* (:meth:`spending`), which is never earlier than Gmail counted
    them, so the two windows cannot disagree in Gmail's disfavour.
    """

    def __init__(
        self,
        units_per_second: int = DEFAULT_UNITS_PER_SECOND,
        *,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], Any] = time.sleep,
        window: float = 1.0,
    ) -> None:
        if units_per_second < 1 or window <= 0:
            raise ValueError("a quota budget needs at least 1 unit per a positive window")
        self.units_per_second = units_per_second
        self._clock = clock
        self._pause = pause
        self._window = window
        self._spent: deque[list[float]] = deque()  # [time, units], oldest first
        self._lock = threading.Lock()

    def _used(self, now: float) -> float:
        while self._spent and self._spent[0][0] <= now - self._window:
            self._spent.popleft()
        return sum(units for _, units in self._spent)

    def _wait_for(self, units: float) -> list[float]:
        """Reserve ``units`` (dated now), pausing first until they fit."""
        if units > self.units_per_second:
            raise ValueError(f"{units} quota units never fit a budget of {self.units_per_second} per second")
        while True:
            with self._lock:
                now = self._clock()
                used = self._used(now)
                if used + units <= self.units_per_second:
                    entry = [now, float(units)]
                    self._spent.append(entry)
                    return entry
                # The earliest moment enough of the window has expired.
                freed, wait = used, 0.0
                for at, spent in self._spent:
                    freed -= spent
                    wait = at + self._window - now
                    if freed + units <= self.units_per_second:
                        break
            self._pause(max(wait, 1e-3))

    def acquire(self, units: float) -> None:
        """Wait until ``units`` fit in the budget and spend them now."""
        self._wait_for(units)

    @contextmanager
    def spending(self, units: float) -> Iterator[None]:
        """Wait until ``units`` fit, make the call, and date its units at its end."""
        entry = self._wait_for(units)
        try:
            yield
        finally:
            with self._lock:
                entry[0] = max(entry[0], self._clock())


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
        pacer: QuotaPacer | None = None,
        pause: Callable[[float], Any] = time.sleep,
        jitter: Callable[[], float] = random.random,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        """``history_page_size``: ``maxResults`` of ``history.list`` (smaller only to see paging
        at work). ``pacer``: spend every call's quota units through it (share one per
        mailbox); without one, calls go out at once. ``pause``, ``jitter`` (a number in
        [0, 1)) and ``max_attempts``: the backoff of :meth:`get_messages`' retries."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._pacer = pacer
        self._pause = pause
        self._jitter = jitter
        self._max_attempts = max_attempts
        self._service: Any = build_service("gmail", settings, refresh_token, client_secret)
        # The client library builds the batch address from the discovery document's root,
        # which an api_endpoint override does not change.
        self._batch_uri = settings.api_root.rstrip("/") + _BATCH_PATH if settings.api_root else None
        self._history_page_size = history_page_size

    def _users(self) -> Any:
        return self._service.users()

    @contextmanager
    def _paced(self, method: str, calls: int = 1) -> Iterator[None]:
        """Google's error translation, after waiting for the quota units of ``calls`` calls."""
        if self._pacer is None:
            with google_errors(method):
                yield
            return
        with self._pacer.spending(QUOTA_UNITS[method] * calls), google_errors(method):
            yield

    def profile(self) -> MailboxProfile:
        with self._paced("users.getProfile"):
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
        with self._paced("messages.list"):
            answer = self._users().messages().list(**params).execute(num_retries=0)
        return MessagePage(
            messages=[_ref(m) for m in answer.get("messages", [])], next_page=answer.get("nextPageToken") or None
        )

    def find_sent(self, message_id: str, *, since: datetime) -> MessageRef | None:
        """``messages.list`` with ``q`` = ``rfc822msgid:`` and ``in:sent`` after ``since`` and
        ``includeSpamTrash`` (a sent message the user trashed was still sent)."""
        if since.tzinfo is None:
            raise InvalidRequest("The search needs a time-zone-aware bound.")
        if not message_id or any(c.isspace() or c in '<>"' for c in message_id):
            raise InvalidRequest("A Message-ID without brackets, quotes or spaces is needed.")
        params: dict[str, Any] = {
            "userId": "me",
            "q": f"after:{int(since.timestamp())} in:sent rfc822msgid:{message_id}",
            "includeSpamTrash": True,
            "maxResults": 1,
        }
        with self._paced("messages.list"):
            answer = self._users().messages().list(**params).execute(num_retries=0)
        found = answer.get("messages") or []
        return _ref(found[0]) if found else None

    def get_messages(self, message_ids: Sequence[str]) -> list[RawMessage]:
        """``messages.get`` ``format=raw``, :data:`BATCH_SIZE` calls per batch request (fewer
        when a pacer's budget holds fewer). A message deleted meanwhile (a 404 part) is left
        out. Parts refused for the rate limit (429, Gmail's rate-limit 403s) or failed with a
        server error are retried alone, after an exponential backoff with full jitter (or
        Gmail's ``Retry-After`` when longer), at most ``max_attempts`` times in all: then
        ``RateLimited`` (or the server error) is raised. Any other failed part raises at once
        as its neutral error."""
        wanted = list(dict.fromkeys(message_ids))
        size = BATCH_SIZE
        if self._pacer is not None:
            size = max(1, min(BATCH_SIZE, self._pacer.units_per_second // QUOTA_UNITS["messages.get"]))
        found: dict[str, RawMessage] = {}
        for start in range(0, len(wanted), size):
            pending = wanted[start : start + size]
            for attempt in range(1, self._max_attempts + 1):
                pending, last, retry_after = self._get_batch(pending, found)
                if not pending:
                    break
                if attempt == self._max_attempts:
                    logger.warning("gmail batch gave up", extra={"parts_left": len(pending), "attempts": attempt})
                    raise last
                delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)) * self._jitter()
                self._pause(max(delay, retry_after or 0.0))
        return [found[m] for m in wanted if m in found]

    def _get_batch(
        self, message_ids: list[str], found: dict[str, RawMessage]
    ) -> tuple[list[str], ProviderError, float | None]:
        """One batch request; returns the ids worth retrying, the last such failure and the
        longest ``Retry-After`` among them."""
        from googleapiclient.http import BatchHttpRequest

        failures: dict[str, BaseException] = {}

        def collect(request_id: str, response: Any, exception: BaseException | None) -> None:
            if exception is not None:
                failures[request_id] = exception
            else:
                found[request_id] = self._raw(response)

        batch = (
            BatchHttpRequest(callback=collect, batch_uri=self._batch_uri)
            if self._batch_uri
            else self._service.new_batch_http_request(callback=collect)
        )
        for message_id in message_ids:
            batch.add(self._users().messages().get(userId="me", id=message_id, format="raw"), request_id=message_id)
        with self._paced("messages.get", len(message_ids)):
            batch.execute()
        retry: list[str] = []
        last: ProviderError = RateLimited("messages.get: nothing failed.")
        longest: float | None = None
        for message_id, failure in failures.items():
            try:
                with google_errors("messages.get"):
                    raise failure
            except ProviderNotFound:
                continue  # deleted since it was listed
            except RateLimited as error:
                retry.append(message_id)
                last = error
                if error.retry_after is not None:
                    longest = max(longest or 0.0, error.retry_after)
            except ProviderError as error:
                if not error.retryable:
                    raise
                retry.append(message_id)
                last = error
        return retry, last, longest

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
                with self._paced("history.list"):
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
        with self._paced("messages.send"):
            answer = self._users().messages().send(userId="me", body=body).execute(num_retries=0)
        return _ref(answer)

    def watch(self, topic: str, *, label_ids: Sequence[str] = (), exclude: bool = False) -> MailWatch:
        body: dict[str, Any] = {"topicName": topic}
        if label_ids:
            body["labelIds"] = list(label_ids)
            body["labelFilterBehavior"] = "exclude" if exclude else "include"
        with self._paced("users.watch"):
            answer = self._users().watch(userId="me", body=body).execute(num_retries=0)
        return MailWatch(
            cursor=str(answer["historyId"]),
            expires_at=datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC),
        )

    def stop(self) -> None:
        with self._paced("users.stop"):
            self._users().stop(userId="me").execute(num_retries=0)
