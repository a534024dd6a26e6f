"""F10, seed 004 steps 1–5: turn Google Contacts sync on for one of the user's accounts, off,
and report its state.

Enabling needs the contacts scope in the account's grant. An account without it goes through
incremental authorization (calendar + contacts, ``include_granted_scopes``, ``login_hint``
its email); the OAuth state carries the intent :data:`INTENT`, and :meth:`complete` (run by
the callback once the account is stored) makes it the contacts account — only if the scope was
really granted. One connection is the contacts account; enabling another moves it.

The linked calendar (seed 004: "appointments go to your default Google calendar"): when the
user has none, the enable step records ``link_primary`` and links the account's primary
calendar as soon as its calendar list is known — at once if it is already stored, otherwise
when the connection check after the consent has listed it (:meth:`calendars_listed`). A
linked calendar set by then is left alone.

What the page shows while enabled (syncing, complete, N contacts found, applying the review's
answer) comes from the contacts sync through :class:`SyncProgressSource`
(:class:`SyncedProgress`). Enabling
enqueues the account's first sync at once; :meth:`ContactsSyncSettings.sync_now` enqueues one
when the CRM front end reports a login or the user asks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from crmsync.dal.calendars import CalendarStore
from crmsync.dal.candidates import CandidateStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.contacts_sync import ContactsSyncStore
from crmsync.dal.gcontacts import SIDES, ContactMirrorStore, contacts_resource
from crmsync.dal.guard import PendingDeletionsStore
from crmsync.dal.review import ReviewImportStore
from crmsync.domain import CalendarRef, Connection, ConnectionStatus, Principal
from crmsync.domain.contacts import CandidateStatus
from crmsync.errors import Conflict, CrmSyncError, NotFound, ScopeNotGranted, Unprocessable
from crmsync.guard import Decision, PendingDeletions
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.integrations import AuthorizationStart, Integrations

log = logging.getLogger(__name__)

#: The OAuth intent of an "Enable Google Sync" consent.
INTENT = "contacts_sync"
#: The features the enable consent asks for (seed 004: appointments and contacts).
FEATURES = ("calendar", "contacts")
PROVIDER = "google"

State = Literal["off", "syncing", "complete", "contacts_found", "applying"]


@dataclass(frozen=True)
class SyncProgress:
    """Where the contacts sync of an enabled account stands: ``syncing`` (the first sync has
    not finished), ``complete`` (nothing to review), ``contacts_found`` (``candidates``
    Google contacts wait for the import review) or ``applying`` (the user's answer to the
    review is being carried out)."""

    state: Literal["syncing", "complete", "contacts_found", "applying"]
    candidates: int = 0
    last_synced_at: datetime | None = None
    last_error: str | None = None


class SyncProgressSource(Protocol):
    """The seam the contacts sync engine fills: its progress for the user's contacts account."""

    def progress(self, principal: Principal, connection_id: str) -> SyncProgress: ...


class SyncedProgress:
    """The contacts sync's own progress: ``syncing`` until the account's first full sync is
    stored, then ``contacts_found`` with the number of offered candidates, or ``complete``."""

    def __init__(self, mirror: ContactMirrorStore, candidates: CandidateStore, imports: ReviewImportStore) -> None:
        self._mirror = mirror
        self._candidates = candidates
        self._imports = imports

    def progress(self, principal: Principal, connection_id: str) -> SyncProgress:
        cursor = self._mirror.cursor(principal, connection_id)
        if cursor.sync_token is None:
            return SyncProgress("syncing", 0, cursor.last_success_at, cursor.last_error)
        last = self._imports.get(principal)
        if last is not None and last.state == "running":
            # The user's answer to the review is being carried out: the count is about to change.
            return SyncProgress("applying", 0, cursor.last_success_at, cursor.last_error)
        offered = self._candidates.count(principal, CandidateStatus.OFFERED)
        return SyncProgress(
            "contacts_found" if offered else "complete", offered, cursor.last_success_at, cursor.last_error
        )


class SyncTrigger(Protocol):
    """Enqueues a sync of the user's contacts account (False: contacts sync is off)."""

    def request(self, principal: Principal, *, reason: str, occasion: str) -> bool: ...


@dataclass(frozen=True)
class ContactsSyncStatus:
    state: State
    connection: Connection | None = None
    enabled_at: datetime | None = None
    candidates: int = 0
    last_synced_at: datetime | None = None
    last_error: str | None = None
    #: Deletions the sync held back for the user's confirmation (the mass-deletion guard).
    pending_deletions: tuple[PendingDeletions, ...] = ()


@dataclass(frozen=True)
class EnableOutcome:
    """Either enabled at once (``authorization`` is None) or the consent to go through."""

    status: ContactsSyncStatus
    authorization: AuthorizationStart | None = None


class ContactsSyncSettings:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        store: ContactsSyncStore,
        integrations: Integrations,
        calendars: CalendarStore,
        calendar_settings: CalendarSettingsService,
        progress: SyncProgressSource,
        trigger: SyncTrigger | None = None,
        held: PendingDeletionsStore | None = None,
    ) -> None:
        """``trigger``: enqueues the account's first sync once enabled, and the syncs asked
        for (a reported login, "Sync now")."""
        self._connections = connections
        self._store = store
        self._integrations = integrations
        self._calendars = calendars
        self._calendar_settings = calendar_settings
        self._progress = progress
        self._trigger = trigger
        self._held = held or PendingDeletionsStore()

    # ------------------------------------------------------------------ status
    def status(self, principal: Principal) -> ContactsSyncStatus:
        current = self._store.get(principal)
        if current.connection_id is None:
            return ContactsSyncStatus("off")
        connection = self._connections.get(principal, current.connection_id)
        if connection is None:  # disconnected meanwhile: nothing syncs
            return ContactsSyncStatus("off")
        progress = self._progress.progress(principal, current.connection_id)
        return ContactsSyncStatus(
            progress.state,
            connection,
            current.enabled_at,
            progress.candidates,
            progress.last_synced_at,
            progress.last_error,
            tuple(
                p
                for p in self._held.of_user(principal, "contacts")
                if p.resource.connection_id == current.connection_id
            ),
        )

    def sign_in_features(self, principal: Principal, login_hint: str | None) -> tuple[str, ...]:
        """What a plain sign-in adds to its default features: ``contacts`` when it names the
        contacts account (the Integrations page's Reconnect passes its email), so reconnecting
        it keeps asking for contacts — a revoked grant loses every scope, and
        ``include_granted_scopes`` only keeps scopes of a grant that is still alive."""
        if not login_hint:
            return ()
        current = self._store.get(principal)
        if current.connection_id is None:
            return ()
        connection = self._connections.get(principal, current.connection_id)
        if connection is None or connection.email.lower() != login_hint.strip().lower():
            return ()
        return ("contacts",)

    # ------------------------------------------------------------------ held deletions
    def decide_deletions(self, principal: Principal, decision: Decision) -> ContactsSyncStatus:
        """The user's answer to the deletions the contacts sync held back (every side of the
        contacts account): :attr:`Decision.APPLY` (carry them out as usual) or
        :attr:`Decision.IGNORE` (keep the other side). Recorded here, carried out by the next
        sync, requested at once; answering again before it ran replaces the answer. NotFound
        if nothing is held."""
        current = self._store.get(principal)
        decided: list[PendingDeletions] = []
        if current.connection_id is not None:
            for side in SIDES:
                answer = self._held.decide(principal, contacts_resource(current.connection_id, side), decision)
                if answer is not None:
                    decided.append(answer)
        if not decided:
            raise NotFound("No contact deletions are waiting for confirmation.")
        log.info("held contact deletions answered", extra={"decision": decision.value})
        occasion = f"{decision.value}@" + ",".join(f"{p.resource.resource_id}{p.version}" for p in decided)
        self._request(principal, "deletions", occasion)
        return self.status(principal)

    # ------------------------------------------------------------------ enable / disable
    def enable(self, principal: Principal, connection_id: str | None, *, binding: str | None = None) -> EnableOutcome:
        """Enable on ``connection_id`` (at once if its grant has the contacts scope, else
        through incremental authorization), or with ``None`` connect a new account for
        calendar and contacts."""
        if connection_id is None:
            start = self._integrations.start_connect(
                PROVIDER, principal, features=FEATURES, binding=binding, intent=INTENT
            )
            return EnableOutcome(self.status(principal), start)
        connection = self._connections.get(principal, connection_id)
        if connection is None:
            raise NotFound(f"No integration with id {connection_id!r}.")
        if connection.provider != PROVIDER:
            raise Unprocessable(f"Contacts sync is offered for Google accounts; {connection.email} is not one.")
        if connection.status is not ConnectionStatus.CONNECTED:
            raise Conflict(f"The account {connection.email} must be connected again before contacts sync can start.")
        if self._integrations.feature_granted(connection, "contacts"):
            self.complete(principal, connection)
            return EnableOutcome(self.status(principal))
        start = self._integrations.start_connect(
            PROVIDER, principal, features=FEATURES, binding=binding, login_hint=connection.email, intent=INTENT
        )
        return EnableOutcome(self.status(principal), start)

    def complete(self, principal: Principal, connection: Connection) -> None:
        """Make ``connection`` the contacts account (the callback's step for :data:`INTENT`,
        or at once when the grant already has the scope). Refused, with nothing changed, if
        the grant lacks the contacts scope (the user unticked it at Google)."""
        if not self._integrations.feature_granted(connection, "contacts"):
            log.warning("contacts scope not granted", extra={"connection_id": connection.connection_id})
            raise ScopeNotGranted(
                f"Google did not grant access to the contacts of {connection.email}; contacts sync stays off.",
                "contacts",
            )
        no_link = self._calendar_settings.view(principal).settings.linked is None
        enabled = self._store.set(principal, connection.connection_id, link_primary=no_link)
        log.info("contacts sync enabled", extra={"connection_id": connection.connection_id})
        if no_link:
            self.calendars_listed(principal, connection.connection_id)
        occasion = f"enabled@{enabled.enabled_at.isoformat() if enabled.enabled_at else ''}"
        self._request(principal, "enabled", occasion)

    def sync_now(self, principal: Principal, reason: str) -> bool:
        """A sync of the contacts account now (``login``: the CRM front end reports one;
        ``manual``: the user asks). A burst of logins within a minute is one sync; a manual
        request is one per second (a double click), so the click that follows a change is
        never dropped (SQS drops a repeated deduplication id for five minutes).
        False when contacts sync is off."""
        stamp = "%Y-%m-%dT%H:%M" if reason == "login" else "%Y-%m-%dT%H:%M:%S"
        return self._request(principal, reason, f"{reason}@{datetime.now(UTC).strftime(stamp)}")

    def _request(self, principal: Principal, reason: str, occasion: str) -> bool:
        if self._trigger is None:
            return False
        try:
            return self._trigger.request(principal, reason=reason, occasion=occasion)
        except Exception:  # enabled regardless: the 15-minute schedule syncs it
            log.exception("could not enqueue a contacts sync")
            return False

    def disable(self, principal: Principal) -> None:
        self._store.set(principal, None)
        log.info("contacts sync disabled")

    def forget_connection(self, principal: Principal, connection_id: str) -> None:
        """A disconnected account is no longer the contacts account."""
        if self._store.get(principal).connection_id == connection_id:
            self._store.set(principal, None)

    # ------------------------------------------------------------------ the linked calendar
    def calendars_listed(self, principal: Principal, connection_id: str) -> bool:
        """The account's calendar list is (maybe) known: carry out a pending primary link.
        True when nothing remains pending."""
        current = self._store.get(principal)
        if not current.link_primary or current.connection_id != connection_id:
            return True
        if self._calendar_settings.view(principal).settings.linked is None:
            primary = next(
                (c for c in self._calendars.of_user(principal) if c.connection_id == connection_id and c.primary),
                None,
            )
            if primary is None:
                return False  # not listed yet: the connection check will call again
            try:
                self._calendar_settings.link(principal, CalendarRef(connection_id, primary.calendar_id))
                log.info("primary calendar linked for contacts sync", extra={"connection_id": connection_id})
            except CrmSyncError as exc:  # e.g. read-only: the user picks one on Calendar Settings
                log.warning("primary calendar not linked", extra={"connection_id": connection_id, "detail": exc.detail})
        self._store.linked_primary(principal)
        return True
