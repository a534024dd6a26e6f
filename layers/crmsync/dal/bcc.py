"""BCC addresses (owner item + lookup item) and the user's added sender addresses."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from crmsync.dal import condition_failed, shared_connection
from crmsync.dal.transact import failed_conditions
from crmsync.domain import Principal
from crmsync.domain.mail_records import SenderAddress, SenderChallenge, SenderStatus
from crmsync.errors import Conflict
from crmsync.models.keys import user_pk
from crmsync.models.mail import (
    BCC_SK,
    SENDER_SK_PREFIX,
    BccAddressItem,
    BccLookupItem,
    SenderAddressItem,
    bcc_lookup_pk,
)


class BccAddressStore:
    """A user has one current address. Its lookup item exists exactly as long as the address is
    current: both are written (and rotated) in one transaction."""

    def __init__(self) -> None:
        # One connection (and botocore client) for the store's life: a new one per transaction
        # costs a botocore session, ~0.1–0.4 s each.
        self._db = shared_connection()

    def local_part(self, principal: Principal) -> tuple[str, datetime] | None:
        try:
            item = BccAddressItem.get(user_pk(principal.tenant_id, principal.user_id), BCC_SK, consistent_read=True)
        except DoesNotExist:
            return None
        return item.local_part, item.created_at

    def create(self, principal: Principal, local_part: str) -> bool:
        """Store the user's first address; False if the user already has one (a concurrent
        first read won: the caller reads that one)."""
        now = datetime.now(UTC)
        owner = BccAddressItem(
            user_pk(principal.tenant_id, principal.user_id),
            BCC_SK,
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            local_part=local_part,
            created_at=now,
        )
        try:
            with TransactWrite(connection=self._db) as transaction:
                transaction.save(owner, condition=BccAddressItem.pk.does_not_exist())
                transaction.save(self._lookup(principal, local_part, now), condition=BccLookupItem.pk.does_not_exist())
        except TransactWriteError as exc:
            if failed_conditions(exc):
                return False
            raise
        return True

    def rotate(self, principal: Principal, old_local_part: str, new_local_part: str) -> datetime:
        """Replace the address in one transaction: the old lookup goes, the new one comes, the
        owner item changes only if it still names the old address (else Conflict)."""
        now = datetime.now(UTC)
        owner = BccAddressItem(user_pk(principal.tenant_id, principal.user_id), BCC_SK)
        try:
            with TransactWrite(connection=self._db) as transaction:
                transaction.delete(BccLookupItem(bcc_lookup_pk(old_local_part), BCC_SK))
                transaction.save(
                    self._lookup(principal, new_local_part, now), condition=BccLookupItem.pk.does_not_exist()
                )
                transaction.update(
                    owner,
                    actions=[BccAddressItem.local_part.set(new_local_part), BccAddressItem.created_at.set(now)],
                    condition=BccAddressItem.local_part == old_local_part,
                )
        except TransactWriteError as exc:
            if failed_conditions(exc):
                raise Conflict("The BCC address changed at the same time; reload it.") from exc
            raise
        return now

    def owner_of(self, local_part: str) -> Principal | None:
        """Whose current address this is (None: never issued, or rotated away)."""
        try:
            item = BccLookupItem.get(bcc_lookup_pk(local_part), BCC_SK, consistent_read=True)
        except DoesNotExist:
            return None
        return Principal(item.tenant_id, item.user_id)

    @staticmethod
    def _lookup(principal: Principal, local_part: str, now: datetime) -> BccLookupItem:
        return BccLookupItem(
            bcc_lookup_pk(local_part),
            BCC_SK,
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            created_at=now,
        )


class SenderAddressStore:
    """Addresses the user added as their own, pending until verified by mail."""

    def list(self, principal: Principal) -> list[SenderAddress]:
        items = SenderAddressItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            SenderAddressItem.sk.startswith(SENDER_SK_PREFIX),
            consistent_read=True,
        )
        return [
            SenderAddress(
                email=i.email,
                status=SenderStatus(i.status),
                source="added",
                created_at=i.created_at,
                verified_at=i.verified_at,
            )
            for i in items
        ]

    def verified(self, principal: Principal) -> set[str]:
        return {s.email for s in self.list(principal) if s.status is SenderStatus.VERIFIED}

    def challenge(self, principal: Principal, email: str) -> SenderChallenge | None:
        item = self._get(principal, email)
        if item is None or not item.code_hash:
            return None
        return SenderChallenge(email=item.email, status=SenderStatus(item.status), code_hash=item.code_hash)

    def status(self, principal: Principal, email: str) -> SenderStatus | None:
        item = self._get(principal, email)
        return SenderStatus(item.status) if item else None

    def put_pending(self, principal: Principal, email: str, code_hash: str) -> SenderAddress:
        """Add the address (or issue a new code for a pending one); never downgrades a verified one."""
        now = datetime.now(UTC)
        item = SenderAddressItem(
            user_pk(principal.tenant_id, principal.user_id),
            SENDER_SK_PREFIX + email,
            email=email,
            status=SenderStatus.PENDING.value,
            code_hash=code_hash,
            created_at=now,
        )
        try:
            item.save(
                condition=SenderAddressItem.sk.does_not_exist()
                | (SenderAddressItem.status == SenderStatus.PENDING.value)
            )
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict(f"{email} is already verified as one of your addresses.") from exc
            raise
        return SenderAddress(email=email, status=SenderStatus.PENDING, source="added", created_at=now)

    def mark_verified(self, principal: Principal, email: str, code_hash: str) -> bool:
        """Verify the pending address whose code this is. False if it is no longer pending with
        that code (removed, re-issued, or already verified by an earlier delivery)."""
        item = SenderAddressItem(user_pk(principal.tenant_id, principal.user_id), SENDER_SK_PREFIX + email)
        try:
            item.update(
                actions=[
                    SenderAddressItem.status.set(SenderStatus.VERIFIED.value),
                    SenderAddressItem.verified_at.set(datetime.now(UTC)),
                ],
                condition=(SenderAddressItem.status == SenderStatus.PENDING.value)
                & (SenderAddressItem.code_hash == code_hash),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def delete(self, principal: Principal, email: str) -> bool:
        item = SenderAddressItem(user_pk(principal.tenant_id, principal.user_id), SENDER_SK_PREFIX + email)
        try:
            item.delete(condition=SenderAddressItem.sk.exists())
        except DeleteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def _get(self, principal: Principal, email: str) -> SenderAddressItem | None:
        try:
            return SenderAddressItem.get(
                user_pk(principal.tenant_id, principal.user_id), SENDER_SK_PREFIX + email, consistent_read=True
            )
        except DoesNotExist:
            return None
