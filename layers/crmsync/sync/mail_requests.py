"""Queues runs of the mail sync (F8) without importing its engine (the API's and the
webhook's side)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from crmsync.domain import Principal
from crmsync.domain.mail_sync import MailSync
from crmsync.messaging.messages import MailSyncRequest
from crmsync.security.secrets import sha256_hex
from crmsync.sync.coalesce import REQUEST_LOST_AFTER

if TYPE_CHECKING:
    from crmsync.ports.mail import MailboxNotification
    from crmsync.sync.notifications import SyncMarks

#: The coalescing mark of a mailbox (:class:`crmsync.dal.sync_requests.SyncRequestStore`
#: keys marks by connection and resource; a mailbox is one resource).
MAILBOX_RESOURCE = "mailbox"


class Queue(Protocol):
    def send(self, message: Any) -> None: ...


class SyncedMailbox(Protocol):
    def get(self, principal: Principal) -> MailSync: ...


KNOWN_FOR = timedelta(minutes=1)
#: Emails per request (a message carries at most 50).
PULL_CHUNK = 50


class Mailboxes(Protocol):
    """Who syncs a mailbox (:class:`crmsync.dal.mail_sync.MailboxDirectory`)."""

    def owners(self, email: str) -> list[tuple[Principal, str]]: ...


class MailSyncRequests:
    def __init__(self, queue: Queue, store: SyncedMailbox | None = None) -> None:
        self._queue = queue
        self._store = store
        #: The user's mailbox as last read, for a minute: a review importing thousands of
        #: contacts reads it once, not once per contact.
        self._known: dict[Principal, tuple[MailSync, datetime]] = {}

    def _mailbox(self, principal: Principal) -> MailSync | None:
        if self._store is None:
            return None
        now = datetime.now(UTC)
        known = self._known.get(principal)
        if known is None or now - known[1] > KNOWN_FOR:
            if len(self._known) > 1000:
                self._known.clear()
            known = self._known[principal] = (self._store.get(principal), now)
        return known[0]

    def pull(self, principal: Principal, emails: tuple[str, ...]) -> bool:
        """New contacts' emails: queue their past mail's pull, if the user syncs a mailbox."""
        state = self._mailbox(principal)
        if state is None or state.connection_id is None:
            return False
        wanted = tuple(sorted({e.lower() for e in emails if 3 <= len(e) <= 320}))
        for start in range(0, len(wanted), PULL_CHUNK):
            chunk = wanted[start : start + PULL_CHUNK]
            occasion = "contacts@" + sha256_hex("\n".join(chunk))[:32] + f"@{datetime.now(UTC):%Y-%m-%dT%H:%M}"
            self.request(principal, state.connection_id, "contacts", occasion, chunk)
        return bool(wanted)

    def request(
        self, principal: Principal, connection_id: str, reason: str, occasion: str, emails: tuple[str, ...] = ()
    ) -> None:
        self._queue.send(
            MailSyncRequest(
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                connection_id=connection_id,
                reason=reason,
                occasion=occasion,
                emails=emails,
            )
        )


def on_mailbox_notification(
    notification: MailboxNotification,
    mailboxes: Mailboxes,
    marks: SyncMarks,
    queue: Queue,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[int, str]:
    """An authenticated push for a mailbox: open a sync request for each user syncing it, or
    join the pending one (a burst queues one sync plus one trailing sync, as for calendars:
    :mod:`crmsync.sync.coalesce`). A mailbox nobody syncs is acknowledged: the push would
    otherwise come back for days."""
    owners = mailboxes.owners(notification.email)
    if not owners:
        return 200, "unknown mailbox"
    now = clock()
    requests = MailSyncRequests(queue)
    queued = 0
    for principal, connection_id in owners:
        if not marks.note(principal, connection_id, MAILBOX_RESOURCE, now, now - REQUEST_LOST_AFTER):
            continue
        try:
            requests.request(principal, connection_id, reason="push", occasion=now.isoformat())
        except Exception:
            # Not queued: the push comes back (Pub/Sub retries an error) and must open a request again.
            marks.withdraw(principal, connection_id, MAILBOX_RESOURCE, now)
            raise
        queued += 1
    return 200, f"enqueued {queued} of {len(owners)}" if queued else "coalesced"
