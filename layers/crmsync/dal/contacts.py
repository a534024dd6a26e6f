"""CRM contacts and the uniqueness of their email addresses, under the user's partition."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from crmsync.dal import shared_connection
from crmsync.dal.paging import decode_cursor, encode_cursor
from crmsync.domain import Principal
from crmsync.domain.mail_records import Contact, Page
from crmsync.domain.message import Address
from crmsync.errors import Conflict
from crmsync.models.keys import check_id, user_pk
from crmsync.models.mail import CONTACT_EMAIL_SK_PREFIX, CONTACT_SK_PREFIX, ContactEmailItem, ContactItem

#: Creating one contact is retried this often when it collides with a concurrent transaction.
_CREATE_ATTEMPTS = 4


#: Two-way email sync (F8) is not built yet, so no contact is synced: ``email_sync`` is
#: false for every contact. Contacts stored before this carry ``email_sync: true`` (logged
#: mail used to mark them); that flag promised a sync that never ran, so it is ignored and
#: reads as false. F8 sets the flag itself when it starts syncing a contact (and flips this).
EMAIL_SYNC_BUILT = False


def _to_domain(item: ContactItem) -> Contact:
    return Contact(
        contact_id=item.contact_id,
        email=item.email,
        name=item.name,
        source=item.source,
        email_sync=EMAIL_SYNC_BUILT and bool(item.email_sync),
        created_at=item.created_at,
    )


class ContactStore:
    def __init__(self) -> None:
        # One connection (and botocore client) for the store's life: a new one per transaction
        # costs a botocore session, ~0.1–0.4 s each.
        self._db = shared_connection()

    def get(self, principal: Principal, contact_id: str) -> Contact | None:
        try:
            check_id("contact", contact_id)
            item = ContactItem.get(
                user_pk(principal.tenant_id, principal.user_id), CONTACT_SK_PREFIX + contact_id, consistent_read=True
            )
        except (DoesNotExist, ValueError):
            return None
        return _to_domain(item)

    def page(self, principal: Principal, cursor: str | None, limit: int) -> Page[Contact]:
        """Contacts in a stable order (by id)."""
        after = decode_cursor(cursor, CONTACT_SK_PREFIX)
        pk = user_pk(principal.tenant_id, principal.user_id)
        items = list(
            ContactItem.query(
                pk,
                ContactItem.sk.startswith(CONTACT_SK_PREFIX),
                consistent_read=True,
                limit=limit + 1,
                last_evaluated_key={"pk": {"S": pk}, "sk": {"S": after}} if after else None,
            )
        )
        more = len(items) > limit
        items = items[:limit]
        return Page([_to_domain(i) for i in items], encode_cursor(items[-1].sk) if more else None)

    def match_or_create(self, principal: Principal, addresses: Iterable[Address], source: str) -> dict[str, str]:
        """The contact id of each address (by email), creating contacts for new emails, not
        marked for email sync (F8 is not built: ``EMAIL_SYNC_BUILT``). Idempotent, and safe under concurrency:
        an email's contact is created together with the item that reserves the email, on the
        condition that neither exists, so two loggings never make two contacts for one email."""
        wanted: dict[str, Address] = {}
        for address in addresses:
            wanted.setdefault(address.email, address)
        pk = user_pk(principal.tenant_id, principal.user_id)
        ids = self._ids_by_email(pk, wanted)
        for email, address in wanted.items():
            if email not in ids:
                ids[email] = self._create(principal, address, source)
        return ids

    def _ids_by_email(self, pk: str, emails: Iterable[str]) -> dict[str, str]:
        keys = [(pk, CONTACT_EMAIL_SK_PREFIX + e) for e in emails]
        return {
            item.sk[len(CONTACT_EMAIL_SK_PREFIX) :]: item.contact_id
            for item in ContactEmailItem.batch_get(keys, consistent_read=True)
        }

    def _create(self, principal: Principal, address: Address, source: str) -> str:
        pk = user_pk(principal.tenant_id, principal.user_id)
        for _ in range(_CREATE_ATTEMPTS):
            contact_id = "c" + uuid.uuid4().hex
            contact = ContactItem(
                pk,
                CONTACT_SK_PREFIX + contact_id,
                contact_id=contact_id,
                email=address.email,
                name=address.name or None,
                source=source,
                email_sync=False,
                created_at=datetime.now(UTC),
            )
            reservation = ContactEmailItem(pk, CONTACT_EMAIL_SK_PREFIX + address.email, contact_id=contact_id)
            try:
                with TransactWrite(connection=self._db) as transaction:
                    transaction.save(reservation, condition=ContactEmailItem.sk.does_not_exist())
                    transaction.save(contact, condition=ContactItem.sk.does_not_exist())
            except TransactWriteError as exc:
                if exc.cause_response_code != "TransactionCanceledException":
                    raise
            else:
                return contact_id
            # Someone else reserved the email first (or the transactions collided): theirs stands.
            existing = self._ids_by_email(pk, [address.email])
            if address.email in existing:
                return existing[address.email]
        raise Conflict("Contacts are being created too fast for this address; the message is retried.")
