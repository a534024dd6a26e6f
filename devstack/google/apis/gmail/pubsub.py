"""Gmail push notifications through an emulated Cloud Pub/Sub push subscription.

Real Gmail publishes ``{"emailAddress", "historyId"}`` to the watched topic; Pub/Sub then
POSTs it to every push subscription of the topic with an OIDC token in
``Authorization: Bearer``. Here a "subscription" is registered through the control API
(``POST /_emulator/gmail/subscriptions``) the way one creates a push subscription in Cloud.

The token is an RS256 JWT signed with the emulator's keys (its ``kid`` is in the emulator's
``/oauth2/v1/certs`` and ``/oauth2/v3/certs``). Its ``iss`` is ``https://accounts.google.com``,
as Pub/Sub's tokens have — not the emulator's base URL — so the product's check of ``iss``
is the one it will run against Google; only the certs URL differs.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devstack.google.apis.gmail.store import GmailError, Mailbox, Watch
from devstack.google.apis.push import Notification
from devstack.google.state import subject_for

if TYPE_CHECKING:
    from devstack.google.server import EmulatorContext

PUBSUB_ISSUER = "https://accounts.google.com"
DEFAULT_PUSH_SERVICE_ACCOUNT = "gmail-api-push@system.gserviceaccount.com"
SUBSCRIPTION_PROJECT = "emulator"
#: "You must re-call watch at least every 7 days or else you will stop receiving updates."
WATCH_LIFETIME_SECONDS = 7 * 86400
#: "Each Gmail user being watched has a maximum notification rate of 1 event/sec."
MIN_SECONDS_BETWEEN_NOTIFICATIONS = 1.0
TOKEN_LIFETIME_SECONDS = 3600
TOPIC_PATTERN = re.compile(r"^projects/[^/]+/topics/[^/]+$")


@dataclass
class Subscription:
    """A Pub/Sub push subscription of a topic."""

    name: str
    topic: str
    push_endpoint: str
    audience: str
    service_account_email: str

    def as_dict(self) -> dict[str, str]:
        """JSON shape for the control API."""
        return {
            "name": self.name,
            "topic": self.topic,
            "pushEndpoint": self.push_endpoint,
            "audience": self.audience,
            "serviceAccountEmail": self.service_account_email,
        }


def _rfc3339(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class PubSub:
    """Topics, push subscriptions and the per-user notification rule of Gmail's watch."""

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.topics: set[str] = set()
        self.subscriptions: dict[str, Subscription] = {}
        self._message_counter = 0

    # ------------------------------------------------------------------ control
    def reset(self) -> None:
        """Forget all topics and subscriptions."""
        with self.ctx.state.lock:
            self.topics.clear()
            self.subscriptions.clear()

    def subscribe(
        self,
        topic: str,
        push_endpoint: str,
        *,
        name: str = "",
        audience: str = "",
        service_account_email: str = "",
    ) -> Subscription:
        """Create (or replace) a push subscription; the topic comes into existence with it."""
        if not TOPIC_PATTERN.match(topic):
            raise ValueError("topicName must look like projects/<project>/topics/<topic>")
        if not push_endpoint.startswith(("http://", "https://")):
            raise ValueError("pushEndpoint must be an http(s) URL")
        short = name or topic.rsplit("/", 1)[1] + "-push"
        full = short if short.startswith("projects/") else f"projects/{SUBSCRIPTION_PROJECT}/subscriptions/{short}"
        subscription = Subscription(
            name=full,
            topic=topic,
            push_endpoint=push_endpoint,
            audience=audience or push_endpoint,
            service_account_email=service_account_email or DEFAULT_PUSH_SERVICE_ACCOUNT,
        )
        with self.ctx.state.lock:
            self.topics.add(topic)
            self.subscriptions[full] = subscription
        return subscription

    def unsubscribe(self, name: str) -> bool:
        """Delete a subscription by short or full name."""
        with self.ctx.state.lock:
            for full in list(self.subscriptions):
                if full == name or full.endswith("/" + name):
                    del self.subscriptions[full]
                    return True
            return False

    # ------------------------------------------------------------------ watch
    def watch(self, box: Mailbox, body: dict[str, Any]) -> dict[str, str]:
        """users.watch: register and send the one immediate notification."""
        topic = body.get("topicName")
        if not isinstance(topic, str) or not topic:
            raise GmailError(400, "Invalid topicName does not match projects/SOME_PROJECT/topics/*", "invalidArgument")
        if not TOPIC_PATTERN.match(topic):
            raise GmailError(400, "Invalid topicName does not match projects/SOME_PROJECT/topics/*", "invalidArgument")
        label_ids = body.get("labelIds") or []
        if not isinstance(label_ids, list) or not all(isinstance(x, str) for x in label_ids):
            raise GmailError(400, "Invalid labelIds", "invalidArgument")
        behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include").lower()
        if behavior not in ("include", "exclude"):
            raise GmailError(400, "Invalid labelFilterBehavior", "invalidArgument")
        with self.ctx.state.lock:
            if topic not in self.topics:
                raise GmailError(
                    404,
                    f"Error sending test message to Cloud PubSub {topic} : Resource not found "
                    f"(resource={topic.rsplit('/', 1)[1]}).",
                    "notFound",
                )
            unknown = [label for label in label_ids if label not in box.labels]
            if unknown:
                raise GmailError(400, f"Invalid label: {unknown[0]}", "invalidArgument")
            expiration = int((self.ctx.state.now() + WATCH_LIFETIME_SECONDS) * 1000)
            box.watch = Watch(topic, frozenset(label_ids), behavior, expiration)
            self._publish(box)
            return {"historyId": str(box.history_id), "expiration": str(expiration)}

    def stop(self, box: Mailbox) -> None:
        """users.stop: no more notifications for this mailbox."""
        with self.ctx.state.lock:
            box.watch = None

    def on_change(self, box: Mailbox, labels: set[str]) -> None:
        """Store listener: notify if a live watch's label filter selects this change."""
        with self.ctx.state.lock:
            watch = box.watch
            if watch is None:
                return
            if self.ctx.state.now() * 1000 >= watch.expiration_ms:
                box.watch = None  # lapsed: Gmail stops sending without telling anyone
                return
            if watch.label_ids:
                relevant = bool(watch.label_ids & labels)
                if relevant != (watch.behavior == "include"):
                    return
            self._publish(box)

    # ------------------------------------------------------------------ delivery
    def _publish(self, box: Mailbox) -> None:
        assert box.watch is not None
        now = self.ctx.state.now()
        if box.last_push_at is not None and now - box.last_push_at < MIN_SECONDS_BETWEEN_NOTIFICATIONS:
            # "Any user notifications above that rate will be dropped."
            box.pushes_dropped_by_rate += 1
            return
        box.last_push_at = now
        self._message_counter += 1
        # Pub/Sub message ids are decimal strings, unique per published message.
        message_id = str(2_070_443_601_311_540 + self._message_counter)
        # The Gmail guide's example has historyId as a string; observed payloads have also had a
        # number, so consumers should accept both.
        data = json.dumps({"emailAddress": box.email, "historyId": str(box.history_id)}).encode()
        for subscription in self.subscriptions.values():
            if subscription.topic != box.watch.topic:
                continue
            body = {
                "message": {
                    # Pub/Sub sends standard base64 (padded); urlsafe decoders accept it too.
                    "data": base64.b64encode(data).decode("ascii"),
                    "messageId": message_id,
                    "message_id": message_id,
                    "publishTime": _rfc3339(now),
                    "publish_time": _rfc3339(now),
                },
                "subscription": subscription.name,
            }
            headers = {
                "Content-Type": "application/json",
                "Authorization": "Bearer " + self._oidc_token(subscription, now),
                "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
            }
            self.ctx.push.send(
                Notification(
                    kind="gmail",
                    url=subscription.push_endpoint,
                    headers=headers,
                    body=json.dumps(body).encode(),
                    meta={"email": box.email, "historyId": str(box.history_id), "subscription": subscription.name},
                )
            )

    def _oidc_token(self, subscription: Subscription, now: float) -> str:
        sub = subject_for(subscription.service_account_email)
        claims = {
            "iss": PUBSUB_ISSUER,
            "aud": subscription.audience,
            "azp": sub,
            "sub": sub,
            "email": subscription.service_account_email,
            "email_verified": True,
            "iat": int(now),
            "exp": int(now) + TOKEN_LIFETIME_SECONDS,
        }
        return str(self.ctx.keys.sign(claims))
