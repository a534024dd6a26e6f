"""Graph change notifications: subscriptions, the validation handshake, webhook delivery.

``Subscriptions`` keeps the subscriptions of every mailbox under the state's lock; the
``Dispatcher`` posts notifications to the webhooks from its own thread, so no request (and no
holder of the state lock) ever waits on a webhook. Sources: learn.microsoft.com
/graph/api/resources/subscription, /graph/api/subscription-post-subscriptions,
/graph/change-notifications-delivery-webhooks, /graph/outlook-change-notifications-overview and
/graph/change-notifications-lifecycle-events; what they do not say is marked as a guess here
and in docs/GRAPH_EMULATOR.md.
"""

from __future__ import annotations

import collections
import http.client
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit
from urllib.request import ProxyHandler, Request, build_opener

log = logging.getLogger(__name__)

#: The emulator's one tenant (a fixed GUID; the identity part may name the same one).
TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
#: "Outlook message, event, personal contact: 10,080 minutes (under 7 days)" (resources/subscription).
MAX_LIFETIME = timedelta(minutes=10080)
#: "a maximum limit of 1000 active subscriptions for Outlook resources per mailbox for all
#: applications" (outlook-change-notifications-overview).
MAX_PER_MAILBOX = 1000
#: clientState: "The maximum length is 128 characters" (resources/subscription).
MAX_CLIENT_STATE = 128
#: The handshake: "respond within 10 seconds" (change-notifications-delivery-webhooks).
VALIDATION_TIMEOUT = 10.0
#: How long the dispatcher waits for a webhook's answer to a notification. Graph expects an
#: answer within 3 seconds (a guess from the delivery page's latency guidance).
DELIVERY_TIMEOUT = 3.0


@dataclass
class Subscription:
    """One subscription: ``calendar_id`` is the calendar its ``resource`` names."""

    id: str
    owner: str
    owner_id: str
    resource: str
    calendar_id: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None

    def render(self) -> dict[str, Any]:
        """The subscription resource as Graph returns it (the properties the emulator has)."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": None,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_instant(self.expiration),
            "creatorId": self.owner_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
        }


@dataclass
class Delivery:
    """One POST to a webhook: ``value`` is the body's notification list."""

    url: str
    kind: str  # "change" or "lifecycle"
    value: list[dict[str, Any]]


def graph_instant(moment: datetime) -> str:
    """Graph's instant format: seven fractional digits and ``Z``."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0Z"


def _public(url: str) -> str:
    """A URL for a log line: the query (where a validation token rides) left out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _opener() -> Any:
    # Webhooks of the local stack are on this machine: no proxy from the environment.
    return build_opener(ProxyHandler({}))


def validate_endpoint(url: str, timeout: float) -> str | None:
    """The validation handshake: POST ``{url}?validationToken=<url-encoded token>`` with a
    text/plain body; the endpoint must answer 200, Content-Type text/plain, with the token
    (decoded) as the body within ``timeout`` seconds. Returns None when it did, else Graph's error message."""
    # Graph's tokens are opaque text with spaces and ':' (users quote "Validation: Testing client
    # application reachability for subscription Request-Id: …"; the exact text is a guess);
    # '+/=' are added so that a receiver echoing the raw query value, not the decoded one, fails.
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()} +/="
    separator = "&" if urlsplit(url).query else "?"
    request = Request(  # noqa: S310 (the notification URL is the subscriber's, http or https)
        f"{url}{separator}validationToken={quote(token, safe='')}",
        data=b"",
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    plain = False
    try:
        with _opener().open(request, timeout=timeout) as answer:
            status, body = answer.status, answer.read()
            plain = answer.headers.get_content_type() == "text/plain"
    except HTTPError as exc:
        status, body = exc.code, b""
    except TimeoutError:
        return "Subscription validation request timed out."
    except URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return "Subscription validation request timed out."
        status, body = 0, b""
    except (OSError, ValueError, http.client.HTTPException):
        # Refused, reset, a malformed answer or an unusable URL: the handshake failed.
        status, body = 0, b""
    log.info("validation of %s answered %s", _public(url), status)
    if status != 200 or not plain or body.decode("utf-8", "replace") != token:
        return (
            "Subscription validation request failed. "
            "Notification endpoint must respond with 200 OK to validation request."
        )
    return None


class Dispatcher:
    """Posts deliveries to webhooks from one background thread, in the order they came.

    Faults (Python API, and the control routes under ``/_microsoft/graph/notifications``):
    ``drop(n)`` loses the next n deliveries, ``duplicate(n)`` sends each of the next n twice,
    ``delay(n)`` holds the next n until :meth:`flush` (which sends what it holds, several
    notifications for one URL batched into one POST's ``value``), ``retry(times)`` makes a
    delivery the webhook answers with a non-2xx (or does not answer) be sent again up to
    ``times`` more times, at once. Without it a failed delivery is given up (logged).
    """

    def __init__(self, timeout: float = DELIVERY_TIMEOUT) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._queue: collections.deque[Delivery] = collections.deque()
        self._held: list[Delivery] = []
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.drop_next = 0
        self.duplicate_next = 0
        self.delay_next = 0
        self.retries = 0
        #: What happened to each delivery: url (no query), kind, count, attempts, status.
        self.log: list[dict[str, Any]] = []

    # ----- faults
    def drop(self, count: int) -> None:
        self._set("drop_next", count)

    def duplicate(self, count: int) -> None:
        self._set("duplicate_next", count)

    def delay(self, count: int) -> None:
        self._set("delay_next", count)

    def retry(self, times: int) -> None:
        self._set("retries", times)

    def _set(self, name: str, count: int) -> None:
        if count < 0:
            raise ValueError(f"{name} must not be negative")
        with self._cond:
            setattr(self, name, count)

    def clear(self) -> None:
        """No faults (held deliveries stay held until flushed)."""
        with self._cond:
            self.drop_next = self.duplicate_next = self.delay_next = self.retries = 0

    def deliveries(self) -> list[dict[str, Any]]:
        """A copy of the delivery log."""
        with self._cond:
            return [dict(entry) for entry in self.log]

    def faults(self) -> dict[str, int]:
        with self._cond:
            return {
                "drop": self.drop_next,
                "duplicate": self.duplicate_next,
                "delay": self.delay_next,
                "retries": self.retries,
                "held": len(self._held),
            }

    def flush(self) -> int:
        """Send what ``delay`` holds, batched per URL and kind; returns how many notifications."""
        with self._cond:
            batches: dict[tuple[str, str], Delivery] = {}
            for held in self._held:
                key = (held.url, held.kind)
                if key in batches:
                    batches[key].value.extend(held.value)
                else:
                    batches[key] = Delivery(held.url, held.kind, list(held.value))
            count = sum(len(h.value) for h in self._held)
            self._held.clear()
            self._queue.extend(batches.values())
            self._start()
            self._cond.notify_all()
            return count

    # ----- delivery
    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery (never blocks on the network; safe under the state's lock)."""
        with self._cond:
            if self.drop_next:
                self.drop_next -= 1
                self.log.append(self._entry(delivery, 0, "dropped"))
                return
            if self.delay_next:
                self.delay_next -= 1
                self._held.append(delivery)
                return
            self._queue.append(delivery)
            if self.duplicate_next:
                self.duplicate_next -= 1
                self._queue.append(Delivery(delivery.url, delivery.kind, list(delivery.value)))
            self._start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued delivery was sent (held ones do not count); False when
        ``timeout`` seconds pass first. Lets tests assert that nothing was sent."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout * (self.retries + 2))

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="graph-notifications", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                delivery = self._queue.popleft()
                self._busy = True
                retries = self.retries
            attempts, status = 0, 0
            while attempts <= retries:
                attempts += 1
                status = self._post(delivery)
                if 200 <= status < 300:
                    break
            with self._cond:
                self.log.append(self._entry(delivery, attempts, status))
                self._busy = False
                self._cond.notify_all()
            if not 200 <= status < 300:
                log.warning(
                    "%s notification to %s failed after %d attempts", delivery.kind, _public(delivery.url), attempts
                )

    def _post(self, delivery: Delivery) -> int:
        request = Request(  # noqa: S310 (the notification URL is the subscriber's)
            delivery.url,
            data=json.dumps({"value": delivery.value}).encode(),
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        try:
            with _opener().open(request, timeout=self.timeout) as answer:
                answer.read()
                return int(answer.status)
        except HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError, http.client.HTTPException):
            # Refused, reset, timed out or a malformed answer: a failed delivery (the thread
            # must live on for the next one).
            return 0

    @staticmethod
    def _entry(delivery: Delivery, attempts: int, status: int | str) -> dict[str, Any]:
        return {
            "url": _public(delivery.url),
            "kind": delivery.kind,
            "count": len(delivery.value),
            "attempts": attempts,
            "status": status,
        }


class Subscriptions:
    """The subscriptions of all mailboxes. Methods that read or write take ``lock`` (the
    state's); :meth:`create` releases it while the handshake runs."""

    def __init__(
        self,
        lock: threading.RLock,
        clock: Callable[[], datetime],
        dispatcher: Dispatcher,
        validation_timeout: float = VALIDATION_TIMEOUT,
    ) -> None:
        self.lock = lock
        self.clock = clock
        self.dispatcher = dispatcher
        self.validation_timeout = validation_timeout
        self.items: dict[str, Subscription] = {}

    def active(self, owner: str | None = None) -> list[Subscription]:
        """Unexpired subscriptions (of one mailbox, or all). Expired ones are gone, as Graph
        deletes them (when exactly Graph does is a guess: at once here)."""
        with self.lock:
            now = self.clock()
            for sub_id in [s.id for s in self.items.values() if s.expiration <= now]:
                del self.items[sub_id]
            return [s for s in self.items.values() if owner is None or s.owner == owner]

    def find(self, owner: str, subscription_id: str) -> Subscription | None:
        with self.lock:
            return next((s for s in self.active(owner) if s.id == subscription_id), None)

    def check_expiration(self, value: Any) -> datetime:
        """expirationDateTime: an ISO instant after now and at most 10,080 minutes ahead."""
        from devstack.microsoft.graph.state import bad_request

        if not isinstance(value, str) or not value:
            raise bad_request("expirationDateTime is required")
        text = value.replace("Z", "+00:00")
        if "." in text:
            head, _, tail = text.partition(".")
            digits = "".join(c for c in tail if c.isdigit())
            text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits) :]}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise bad_request(f"expirationDateTime {value!r} is not an ISO date-time") from exc
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        now = self.clock()
        if moment <= now:
            raise _invalid("Subscription expiration time must be in the future.")
        if moment - now > MAX_LIFETIME:
            raise _invalid(
                f"Subscription expiration can only be {int(MAX_LIFETIME.total_seconds() // 60)} minutes in the future."
            )
        return moment

    def register(self, subscription: Subscription) -> Subscription:
        """Add a validated subscription, unless the mailbox has its 1,000 already."""
        with self.lock:
            if len(self.active(subscription.owner)) >= MAX_PER_MAILBOX:
                raise too_many()
            self.items[subscription.id] = subscription
            return subscription

    def remove(self, owner: str, subscription_id: str) -> bool:
        with self.lock:
            if self.find(owner, subscription_id) is None:
                return False
            del self.items[subscription_id]
            return True

    def changed(self, owner: str, owner_id: str, calendar_id: str, event_id: str, etag: str, change: str) -> None:
        """An event of ``calendar_id`` was created, updated or deleted: queue one notification
        per unexpired subscription of that calendar asking for this change type."""
        with self.lock:
            for sub in self.active(owner):
                if sub.calendar_id != calendar_id or change not in sub.change_types:
                    continue
                path = f"Users/{owner_id}/Events/{event_id}"
                item = {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": graph_instant(sub.expiration),
                    "changeType": change,
                    "resource": path,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": path,
                        "@odata.etag": etag,
                        "id": event_id,
                    },
                    "clientState": sub.client_state,
                    "tenantId": TENANT_ID,
                }
                self.dispatcher.submit(Delivery(sub.notification_url, "change", [item]))

    def lifecycle(self, subscription_id: str, event: str) -> bool:
        """Send lifecycle ``event`` for a subscription to its lifecycleNotificationUrl; False
        when it has none. ``subscriptionRemoved`` also removes the subscription."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"lifecycleEvent must be one of {', '.join(LIFECYCLE_EVENTS)}")
        with self.lock:
            sub = next((s for s in self.active() if s.id == subscription_id), None)
            if sub is None:
                raise KeyError(subscription_id)
            if event == "subscriptionRemoved":
                del self.items[sub.id]
            if sub.lifecycle_url is None:
                return False
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_instant(sub.expiration),
                "clientState": sub.client_state,
                "tenantId": TENANT_ID,
                "lifecycleEvent": event,
            }
            self.dispatcher.submit(Delivery(sub.lifecycle_url, "lifecycle", [item]))
            return True

    def revoke(self, owner: str) -> int:
        """The user's grant is gone: remove every subscription of the mailbox, each with a
        ``subscriptionRemoved`` lifecycle notification. Returns how many were removed."""
        with self.lock:
            subs = self.active(owner)
            for sub in subs:
                self.lifecycle(sub.id, "subscriptionRemoved")
            return len(subs)


def _invalid(message: str) -> Exception:
    from devstack.microsoft.graph.state import GraphError

    # A guess: Graph's code for a refused expirationDateTime or clientState.
    return GraphError(400, "InvalidRequest", message)


def too_many() -> Exception:
    from devstack.microsoft.graph.state import GraphError

    # A guess: the documented limit is 1,000 per mailbox; the answer above it is not documented.
    # Graph users report 403 ExtensionError for Outlook subscription failures.
    return GraphError(
        403,
        "ExtensionError",
        "Operation: Create; Exception: [Status Code: Forbidden; Reason: The maximum number of "
        "subscriptions for this mailbox has been reached.]",
    )
