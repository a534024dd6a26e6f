"""F8, seed 000 "Email (2-way sync)": turn two-way Gmail sync on for one of the user's Google
accounts, off, and report its state.

Enabling needs Gmail's read and send scopes in the account's grant. An account without them
goes through incremental authorization (``include_granted_scopes``, ``login_hint`` its
email); the OAuth state carries the intent :data:`INTENT`, and :meth:`complete` (run by the
callback once the account is stored) makes it the mail account — only if the scopes were
really granted. One mailbox per user: enabling another moves sync there (the first mailbox's
watch stops, and its synced-only mail is forgotten).

Disable (and disconnecting the account) stops the watch and forgets what only the sync logged:
messages it logged first, with their bodies and conversation entries. Messages logged by BCC or
sent from the CRM stay, without their Gmail ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mail_sync import MailboxDirectory, MailSyncStore
from crmsync.domain import Connection, ConnectionStatus, Principal
from crmsync.domain.mail_sync import MailSync
from crmsync.errors import NotFound, ScopeNotGranted, Unprocessable
from crmsync.logic.integrations import AuthorizationStart, Integrations

log = logging.getLogger(__name__)

#: The OAuth intent of an "Email (2-way sync)" consent.
INTENT = "mail_sync"
#: What that consent asks for: the account's calendar (as every sign-in) and its mail.
FEATURES = ("calendar", "email")
FEATURE = "email"
PROVIDER = "google"

State = Literal["off", "backfilling", "live", "needs_reauthorization", "error"]


class MailSyncRequests(Protocol):
    """Queues runs of the mail sync (the engine's :meth:`request`)."""

    def request(self, principal: Principal, connection_id: str, reason: str, occasion: str) -> None: ...


class MailboxStopper(Protocol):
    """Stops a mailbox's watch (best effort: Google stops notifying within minutes anyway)."""

    def stop_watch(self, principal: Principal, connection_id: str) -> None: ...


@dataclass(frozen=True)
class BackfillProgress:
    #: Messages checked and logged so far; ``percent``: how much of the window is behind it
    #: (the listing is newest first, so the oldest date reached tells it).
    checked: int
    logged: int
    percent: int


@dataclass(frozen=True)
class MailSyncStatus:
    state: State
    connection: Connection | None = None
    enabled_at: datetime | None = None
    window_days: int = 0
    backfill: BackfillProgress | None = None
    last_synced_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class EnableOutcome:
    status: MailSyncStatus
    authorization: AuthorizationStart | None = None


class MailSyncSettings:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        store: MailSyncStore,
        directory: MailboxDirectory,
        integrations: Integrations,
        requests: MailSyncRequests,
        stopper: MailboxStopper | None = None,
    ) -> None:
        self._connections = connections
        self._store = store
        self._directory = directory
        self._integrations = integrations
        self._requests = requests
        self._stopper = stopper

    # ------------------------------------------------------------------ status
    def status(self, principal: Principal) -> MailSyncStatus:
        current = self._store.get(principal)
        if current.connection_id is None:
            return MailSyncStatus("off", window_days=current.window_days)
        connection = self._connections.get(principal, current.connection_id)
        if connection is None:
            return MailSyncStatus("off", window_days=current.window_days)
        state: State
        if connection.status is not ConnectionStatus.CONNECTED or not self._integrations.feature_granted(
            connection, FEATURE
        ):
            state = "needs_reauthorization"
        elif current.last_error is not None:
            state = "error"
        elif not current.live:
            state = "backfilling"
        else:
            state = "live"
        return MailSyncStatus(
            state,
            connection,
            current.enabled_at,
            current.window_days,
            _progress(current),
            current.last_synced_at,
            current.last_error,
        )

    # ------------------------------------------------------------------ enable / disable
    def enable(
        self, principal: Principal, connection_id: str | None, window_days: int, *, binding: str | None = None
    ) -> EnableOutcome:
        """Enable on ``connection_id`` (at once if its grant has Gmail's scopes, else through
        incremental authorization), or with ``None`` connect a new account for it."""
        if connection_id is None:
            self._store.set_window(principal, window_days)
            start = self._integrations.start_connect(
                PROVIDER, principal, features=FEATURES, binding=binding, intent=INTENT
            )
            return EnableOutcome(self.status(principal), start)
        connection = self._connections.get(principal, connection_id)
        if connection is None:
            raise NotFound(f"No integration with id {connection_id!r}.")
        if connection.provider != PROVIDER:
            raise Unprocessable(f"Two-way email sync is offered for Gmail; {connection.email} is not a Google account.")
        self._store.set_window(principal, window_days)
        # A connection Google no longer accepts goes through the consent again (reconnecting it).
        if connection.status is ConnectionStatus.CONNECTED and self._integrations.feature_granted(connection, FEATURE):
            self.complete(principal, connection)
            return EnableOutcome(self.status(principal))
        start = self._integrations.start_connect(
            PROVIDER, principal, features=FEATURES, binding=binding, login_hint=connection.email, intent=INTENT
        )
        return EnableOutcome(self.status(principal), start)

    def complete(self, principal: Principal, connection: Connection) -> None:
        """Make ``connection`` the mail account (the callback's step for :data:`INTENT`, or at
        once when the grant has the scopes). Refused, with nothing changed, if Google did not
        grant them (the user unticked them)."""
        if not self._integrations.feature_granted(connection, FEATURE):
            log.warning("gmail scopes not granted", extra={"connection_id": connection.connection_id})
            raise ScopeNotGranted(
                f"Google did not grant access to the mail of {connection.email}; email sync stays off.", FEATURE
            )
        before = self._store.get(principal)
        if before.connection_id is not None and before.connection_id != connection.connection_id:
            self._leave(principal, before)
        enabled = self._store.enable(principal, connection.connection_id, connection.email, before.window_days)
        self._directory.register(principal, connection.connection_id, connection.email)
        log.info("mail sync enabled", extra={"connection_id": connection.connection_id})
        occasion = f"enabled@{enabled.enabled_at.isoformat() if enabled.enabled_at else ''}"
        self._request(principal, connection.connection_id, "enabled", occasion)

    def sign_in_features(self, principal: Principal, login_hint: str | None) -> tuple[str, ...]:
        """What a plain sign-in adds to its default features: ``email`` when it names the mail
        account (the Integrations page's Reconnect passes its email), so reconnecting it keeps
        Gmail's scopes — a revoked grant loses every scope."""
        if not login_hint:
            return ()
        current = self._store.get(principal)
        if current.account_email is None or current.account_email.lower() != login_hint.strip().lower():
            return ()
        return (FEATURE,)

    def disable(self, principal: Principal) -> None:
        before = self._store.get(principal)
        if before.connection_id is None:
            return
        self._leave(principal, before)
        self._store.disable(principal)
        log.info("mail sync disabled", extra={"connection_id": before.connection_id})

    def forget_connection(self, principal: Principal, connection_id: str) -> None:
        """A disconnected account is no longer the mail account; its synced-only mail goes.
        (Its watch was stopped before the grant was revoked: the engine's ``before_revoke``.)"""
        current = self._store.get(principal)
        if current.connection_id == connection_id:
            self._leave(principal, current, stop_watch=False)
            self._store.disable(principal)
            log.info("mail sync off: its account was disconnected", extra={"connection_id": connection_id})

    def sync_now(self, principal: Principal) -> bool:
        """A sync now ("Sync now"). A double click (the same second) is one sync; a click
        after that is another, even one minute later: SQS drops a repeated deduplication id
        for five minutes, so a coarser occasion would drop the click that follows a change."""
        current = self._store.get(principal)
        if current.connection_id is None:
            return False
        second = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self._request(principal, current.connection_id, "manual", f"manual@{second}")
        return True

    def _leave(self, principal: Principal, before: MailSync, *, stop_watch: bool = True) -> None:
        """Stop syncing ``before``'s mailbox: no more pushes, its watch stopped, its
        synced-only mail forgotten (by the worker: it may be much)."""
        assert before.connection_id is not None
        if before.account_email:
            self._directory.unregister(principal, before.account_email)
        if stop_watch and self._stopper is not None:
            try:
                self._stopper.stop_watch(principal, before.connection_id)
            except Exception:  # noqa: BLE001 - best effort: Google stops pushing within minutes,
                # and a push for a mailbox nobody syncs is acknowledged and dropped
                log.warning("gmail watch not stopped", extra={"connection_id": before.connection_id})
        self._request(principal, before.connection_id, "forget", f"forget@{datetime.now(UTC).isoformat()}")

    def _request(self, principal: Principal, connection_id: str, reason: str, occasion: str) -> None:
        try:
            self._requests.request(principal, connection_id, reason, occasion)
        except Exception:  # the schedule's safety net runs it (forget: the next disable or disconnect)
            log.exception("could not enqueue a mail sync", extra={"reason": reason})


def _progress(state: MailSync) -> BackfillProgress | None:
    backfill = state.backfill
    if backfill is None:
        return None
    percent = 0
    if backfill.reached is not None and state.window_days > 0:
        behind = (backfill.started_at - backfill.reached).total_seconds() / (state.window_days * 86400)
        percent = max(0, min(99, int(behind * 100)))
    return BackfillProgress(backfill.checked, backfill.logged, percent)
