"""Pending deletions of synced resources (the mass-deletion guard), per user partition."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from crmsync.dal import condition_failed
from crmsync.domain import Principal
from crmsync.errors import Conflict
from crmsync.guard import Decision, GuardedResource, PendingDeletions
from crmsync.models.guard import PENDING_DELETIONS_SK_PREFIX, PendingDeletionsItem, pending_deletions_sk
from crmsync.models.keys import user_pk


def pending_from_item(item: PendingDeletionsItem | None) -> PendingDeletions | None:
    if item is None:
        return None
    return PendingDeletions(
        resource=GuardedResource(item.kind, item.connection_id, item.resource_id),
        deletions=int(item.deletions),
        mirrored=int(item.mirrored),
        complete=bool(item.complete),
        detected_at=item.detected_at,
        decision=Decision(item.decision) if item.decision else None,
        version=item.version,
    )


def pending_key(principal: Principal, resource: GuardedResource) -> tuple[type[PendingDeletionsItem], str, str]:
    """The record's ``(model, pk, sk)``, for a batch read beside other items."""
    return (
        PendingDeletionsItem,
        user_pk(principal.tenant_id, principal.user_id),
        pending_deletions_sk(resource.kind, resource.connection_id, resource.resource_id),
    )


class PendingDeletionsStore:
    def get(self, principal: Principal, resource: GuardedResource) -> PendingDeletions | None:
        _, pk, sk = pending_key(principal, resource)
        try:
            return pending_from_item(PendingDeletionsItem.get(pk, sk, consistent_read=True))
        except DoesNotExist:
            return None

    def of_user(self, principal: Principal, kind: str | None = None) -> list[PendingDeletions]:
        """Every pending record of the user (of one kind of resource)."""
        prefix = PENDING_DELETIONS_SK_PREFIX + (f"{kind}#" if kind else "")
        items = PendingDeletionsItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            PendingDeletionsItem.sk.startswith(prefix),
            consistent_read=True,
        )
        return [p for p in (pending_from_item(i) for i in items) if p is not None]

    def hold(self, principal: Principal, held: PendingDeletions, read: PendingDeletions | None) -> None:
        """Record (or update) held deletions, only if the record is still as ``read`` (else
        Conflict: the user answered meanwhile; the sync is retried and carries it out)."""
        _, pk, sk = pending_key(principal, held.resource)
        item = PendingDeletionsItem(
            pk,
            sk,
            kind=held.resource.kind,
            connection_id=held.resource.connection_id,
            resource_id=held.resource.resource_id,
            deletions=held.deletions,
            mirrored=held.mirrored,
            complete=held.complete,
            detected_at=held.detected_at,
        )
        try:
            if read is None:
                item.save(condition=PendingDeletionsItem.sk.does_not_exist(), add_version_condition=False)
            else:
                item.version = read.version
                item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The held deletions changed meanwhile.") from exc
            raise

    def decide(self, principal: Principal, resource: GuardedResource, decision: Decision) -> PendingDeletions | None:
        """The user's answer; ``None`` if nothing is pending for the resource."""
        _, pk, sk = pending_key(principal, resource)
        try:
            item = PendingDeletionsItem.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            return None
        item.decision = decision.value
        item.decided_at = datetime.now(UTC)
        try:
            item.save()  # conditioned on the version read, which it increments
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("The held deletions changed meanwhile; try again.") from exc
            raise
        return pending_from_item(item)

    def clear(self, principal: Principal, read: PendingDeletions) -> None:
        """Drop the record once the sync carried it out or found nothing to hold any more —
        only if it is still as ``read`` (else Conflict: a newer answer is carried out on retry)."""
        _, pk, sk = pending_key(principal, read.resource)
        item = PendingDeletionsItem(pk, sk)
        item.version = read.version
        try:
            item.delete()
        except DeleteError as exc:
            if condition_failed(exc):
                raise Conflict("The held deletions changed meanwhile.") from exc
            raise

    def forget(self, principal: Principal, resource: GuardedResource) -> None:
        """Drop the record whatever it says (the resource is no longer synced)."""
        _, pk, sk = pending_key(principal, resource)
        PendingDeletionsItem(pk, sk).delete(add_version_condition=False)
