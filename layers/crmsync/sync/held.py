"""The mass-deletion guard as the syncs apply it (:mod:`crmsync.guard` holds the rules): what a
sync does with its deletions, and holding them for the user with one alarm."""

from __future__ import annotations

import logging
from datetime import datetime

from crmsync.dal.guard import PendingDeletionsStore
from crmsync.domain import Counter, Principal
from crmsync.guard import Decision, DeletionThreshold, GuardedResource, PendingDeletions
from crmsync.messaging.events import DeletionsHeld, EventPublisher

log = logging.getLogger(__name__)

#: What a sync does with its deletions (see :func:`verdict`).
APPLY, HOLD, KEEP = "apply", "hold", "keep"


def verdict(
    threshold: DeletionThreshold, held: PendingDeletions | None, deletions: int, mirrored: int, *, complete: bool
) -> str:
    """Apply the deletions, hold them for the user, or keep the CRM side (the user's Ignore).
    The user's answer is carried out only by a sync that judges the whole resource afresh
    (``complete``)."""
    if held is not None and held.decision is not None and complete:
        if held.decision is Decision.IGNORE:
            return KEEP
        if held.authorizes(deletions):
            return APPLY
    if threshold.holds(deletions, mirrored, complete=complete):
        return HOLD
    return APPLY


def hold(
    store: PendingDeletionsStore,
    principal: Principal,
    resource: GuardedResource,
    held: PendingDeletions | None,
    counts: tuple[int, int],
    *,
    complete: bool,
    now: datetime,
    event_id: str,
    events: EventPublisher | None,
    counter: Counter | None,
) -> None:
    """Record deletions held for the user (``counts``: how many of how many mirrored); the
    alarm (log, metric, DeletionsHeld) only when the user is not being asked already."""
    deletions, mirrored = counts
    if held is not None and held.decision is None and (held.deletions, held.mirrored) == counts:
        return  # already waiting for the user, with these numbers
    store.hold(principal, PendingDeletions(resource, deletions, mirrored, complete, now), held)
    if held is not None and held.decision is None:
        return  # the user is already being asked: new numbers, not a new alarm
    log.warning(
        "mass deletion held for confirmation",
        extra={
            "connection_id": resource.connection_id,
            "kind": resource.kind,
            "deletions": deletions,
            "mirrored": mirrored,
            "full": complete,
        },
    )
    if counter is not None:
        counter.count("MassDeletionHeld")
    if events is not None:
        events.publish(
            [
                DeletionsHeld(
                    event_id=event_id,
                    tenant_id=principal.tenant_id,
                    user_id=principal.user_id,
                    resource_kind=resource.kind,
                    connection_id=resource.connection_id,
                    resource_id=resource.resource_id,
                    deletions=deletions,
                    mirrored=mirrored,
                    complete=complete,
                )
            ]
        )
