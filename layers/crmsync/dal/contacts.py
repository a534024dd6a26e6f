"""CRM contacts and the uniqueness of their emails and phones, under the user's partition.

Each email (``CONTACTEMAIL#<email>``) and phone (``CONTACTPHONE#<key>``) of a contact is
reserved by an item written in the same transaction as the contact, on the condition that
it does not exist yet: two writers can never give one email or phone to two contacts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from crmsync.dal import shared_connection
from crmsync.dal.paging import decode_cursor, encode_cursor
from crmsync.dal.transact import failed_conditions
from crmsync.domain import Principal
from crmsync.domain.contacts import Consent, Contact, ContactFields, GoogleLink, Phone
from crmsync.domain.mail_records import Page
from crmsync.domain.message import Address
from crmsync.errors import Conflict, DuplicateContact
from crmsync.models.gcontacts import CPENDING_SK_PREFIX, ContactPendingItem
from crmsync.models.keys import check_id, user_pk
from crmsync.models.mail import (
    CONTACT_EMAIL_SK_PREFIX,
    CONTACT_PHONE_SK_PREFIX,
    CONTACT_SK_PREFIX,
    ContactEmailItem,
    ContactItem,
    ContactPhoneItem,
    GoogleLinkMap,
    PhoneMap,
)

#: Creating one contact is retried this often when it collides with a concurrent transaction.
_CREATE_ATTEMPTS = 4

#: The stored ``email_sync`` flag is not read: two-way email sync (F8) brings in the mail of
#: every contact of a user who syncs a mailbox (unless never-logged), so the API computes it
#: per request (``crmsync.api.contacts.shown``). Contacts stored by early versions carry
#: ``email_sync: true`` (logged mail used to mark them); it is ignored.
EMAIL_SYNC_BUILT = False

#: Keep the link as it is (:meth:`ContactStore.update`).
KEEP: Any = object()


def _to_domain(item: ContactItem) -> Contact:
    emails = tuple(str(e) for e in item.emails) if item.emails is not None else ((item.email,) if item.email else ())
    google = item.google
    return Contact(
        contact_id=item.contact_id,
        source=item.source,
        created_at=item.created_at,
        fields=ContactFields(
            given_name=item.given_name,
            family_name=item.family_name,
            display_name=item.name,
            emails=emails,
            phones=tuple(Phone(raw=p.raw, e164=p.e164) for p in item.phones or ()),
            organization=item.organization,
            title=item.title,
            contact_type=item.contact_type,
            consent=Consent(item.consent) if item.consent else Consent.NONE,
        ),
        google=GoogleLink(google.connection_id, google.resource_name, google.etag, bool(google.ours))
        if google is not None
        else None,
        email_sync=EMAIL_SYNC_BUILT and bool(item.email_sync),
        updated_at=item.updated_at,
        version=int(item.version or 0),
        changed_at={k: datetime.fromisoformat(v) for k, v in json.loads(item.changed_at).items()}
        if item.changed_at
        else {},
    )


def _fill(item: ContactItem, fields: ContactFields) -> None:
    item.email = fields.emails[0] if fields.emails else None
    item.name = fields.display_name
    item.given_name = fields.given_name
    item.family_name = fields.family_name
    item.emails = list(fields.emails)  # type: ignore[arg-type]
    item.phones = [PhoneMap(raw=p.raw, e164=p.e164) for p in fields.phones]
    item.organization = fields.organization
    item.title = fields.title
    item.contact_type = fields.contact_type
    item.consent = fields.consent.value


def _times(changed_at: Mapping[str, datetime] | None) -> str | None:
    return json.dumps({k: v.isoformat() for k, v in sorted(changed_at.items())}) if changed_at else None


def _link(google: GoogleLink | None) -> GoogleLinkMap | None:
    if google is None:
        return None
    return GoogleLinkMap(
        connection_id=google.connection_id, resource_name=google.resource_name, etag=google.etag, ours=google.ours
    )


#: Above this many emails (or phones) to look up, :meth:`ContactStore.owners` first tries
#: reading the user's reservations whole.
_READ_ALL_ABOVE = 300


def _reservations(fields: ContactFields) -> list[str]:
    """The sort keys of the items that reserve the contact's emails and phones."""
    keys = [CONTACT_EMAIL_SK_PREFIX + e for e in fields.emails]
    keys += [CONTACT_PHONE_SK_PREFIX + p.key for p in fields.phones]
    return list(dict.fromkeys(keys))


def _pending(pk: str, contact: Contact | None, contact_id: str) -> ContactPendingItem:
    """The mark that tells the contacts sync this contact changed (``contact`` None: it was
    deleted, and the mark keeps its Google link)."""
    item = ContactPendingItem(pk, CPENDING_SK_PREFIX + contact_id, mark=uuid.uuid4().hex, deleted=contact is None)
    return item


def _reservation(pk: str, sk: str, contact_id: str) -> ContactEmailItem | ContactPhoneItem:
    model = ContactEmailItem if sk.startswith(CONTACT_EMAIL_SK_PREFIX) else ContactPhoneItem
    return model(pk, sk, contact_id=contact_id)


class ContactStore:
    def __init__(self) -> None:
        # One connection (and botocore client) for the store's life: a new one per transaction
        # costs a botocore session, ~0.1–0.4 s each.
        self._db = shared_connection()

    def get(self, principal: Principal, contact_id: str) -> Contact | None:
        item = self._item(principal, contact_id)
        return _to_domain(item) if item is not None else None

    def _item(self, principal: Principal, contact_id: str) -> ContactItem | None:
        try:
            check_id("contact", contact_id)
            return ContactItem.get(
                user_pk(principal.tenant_id, principal.user_id), CONTACT_SK_PREFIX + contact_id, consistent_read=True
            )
        except (DoesNotExist, ValueError):
            return None

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

    def owners(self, principal: Principal, emails: Iterable[str] = (), phones: Iterable[Phone] = ()) -> dict[str, str]:
        """Which contact each of these emails and phones belongs to, keyed by the email and by
        :attr:`Phone.key` (those that belong to none are left out)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        return self._owners(pk, _reservations(ContactFields(emails=tuple(emails), phones=tuple(phones))))

    def _owners(self, pk: str, sks: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for model, prefix in ((ContactEmailItem, CONTACT_EMAIL_SK_PREFIX), (ContactPhoneItem, CONTACT_PHONE_SK_PREFIX)):
            keys = [(pk, sk) for sk in sks if sk.startswith(prefix)]
            if len(keys) > _READ_ALL_ABOVE:
                # Many to look up (a full sync of a large address book): when the user holds
                # fewer of these than were asked for, reading them all is cheaper than a
                # BatchGetItem per 100 keys (a new user's first sync: one Query).
                every = self._every_reservation(model, pk, prefix, len(keys))
                if every is not None:
                    wanted = {sk for _, sk in keys}
                    found.update({k[len(prefix) :]: v for k, v in every.items() if k in wanted})
                    continue
            for start in range(0, len(keys), 100):
                for item in model.batch_get(keys[start : start + 100], consistent_read=True):
                    found[item.sk[len(prefix) :]] = item.contact_id
        return found

    @staticmethod
    def _every_reservation(
        model: type[ContactEmailItem] | type[ContactPhoneItem], pk: str, prefix: str, fewer_than: int
    ) -> dict[str, str] | None:
        """Every email (or phone) reservation of the user by sort key, or None when there are
        ``fewer_than`` or more (then looking up the keys one batch at a time is cheaper)."""
        every: dict[str, str] = {}
        for item in model.query(pk, model.sk.startswith(prefix), consistent_read=True):
            every[item.sk] = item.contact_id
            if len(every) >= fewer_than:
                return None
        return every

    def create(
        self,
        principal: Principal,
        fields: ContactFields,
        source: str,
        *,
        contact_id: str | None = None,
        google: GoogleLink | None = None,
        changed_at: Mapping[str, datetime] | None = None,
        pending: bool = True,
    ) -> Contact:
        """A new contact with its emails and phones reserved. ``DuplicateContact`` when one of
        them belongs to another contact; ``Conflict`` when ``contact_id`` is taken. ``pending``:
        mark it for the contacts sync to push (``CPENDING#``; the sync's own writes do not)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        now = datetime.now(UTC)
        contact_id = contact_id or "c" + uuid.uuid4().hex
        item = ContactItem(
            pk,
            CONTACT_SK_PREFIX + contact_id,
            contact_id=contact_id,
            source=source,
            email_sync=False,
            created_at=now,
            updated_at=now,
            google=_link(google),
            changed_at=_times(changed_at),
        )
        _fill(item, fields)
        self._write(pk, item, add=_reservations(fields), drop=[], pending=pending)
        return _to_domain(item)

    def update(
        self,
        principal: Principal,
        current: Contact,
        fields: ContactFields,
        *,
        google: GoogleLink | None = KEEP,
        changed_at: Mapping[str, datetime] | None = None,
        pending: bool = True,
    ) -> Contact:
        """Replace the contact's fields (and its link, unless ``KEEP``) if it is still at the
        version read; ``Conflict`` when it changed meanwhile or is gone, ``DuplicateContact``
        when a new email or phone belongs to another contact. ``pending``: see :meth:`create`."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        item = self._item(principal, current.contact_id)
        if item is None or int(item.version or 0) != current.version:
            raise Conflict("The contact changed meanwhile; read it again.")
        _fill(item, fields)
        item.updated_at = datetime.now(UTC)
        if google is not KEEP:
            item.google = _link(google)
        if changed_at is not None:
            item.changed_at = _times(changed_at)
        before, after = _reservations(current.fields), _reservations(fields)
        self._write(
            pk,
            item,
            add=[k for k in after if k not in before],
            drop=[k for k in before if k not in after],
            pending=pending,
        )
        return _to_domain(item)

    def delete(self, principal: Principal, current: Contact) -> bool:
        """Delete the contact and free its emails and phones; False when it was gone. It leaves
        a deletion mark (``CPENDING#``, with its Google link if any) in the same transaction:
        the contacts sync deletes its Google twin if we created it, else unlinks; without a link,
        a Google contact we made for it whose answer was lost is deleted when the sync meets it."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        item = self._item(principal, current.contact_id)
        if item is None:
            return False
        google = _to_domain(item).google
        try:
            with TransactWrite(connection=self._db) as transaction:
                for sk in _reservations(_to_domain(item).fields):
                    reservation = _reservation(pk, sk, current.contact_id)
                    transaction.delete(reservation, condition=type(reservation).contact_id == current.contact_id)
                mark = _pending(pk, None, current.contact_id)
                if google is not None:
                    mark.connection_id = google.connection_id
                    mark.resource_name = google.resource_name
                    mark.ours = google.ours
                transaction.save(mark)
                transaction.delete(item)
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                raise
            raise Conflict("The contact changed meanwhile; try again.") from None
        return True

    def _write(self, pk: str, item: ContactItem, *, add: list[str], drop: list[str], pending: bool = True) -> None:
        contact_id = item.contact_id
        try:
            with TransactWrite(connection=self._db) as transaction:
                for sk in drop:
                    reservation = _reservation(pk, sk, contact_id)
                    transaction.delete(reservation, condition=type(reservation).contact_id == contact_id)
                for sk in add:
                    reservation = _reservation(pk, sk, contact_id)
                    transaction.save(reservation, condition=type(reservation).sk.does_not_exist())
                transaction.save(item)  # conditioned on its version
                if pending:
                    transaction.save(_pending(pk, _to_domain(item), contact_id))
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                raise
            failed = failed_conditions(exc)
            taken = [sk for position, sk in enumerate(add, start=len(drop)) if position in failed]
            owners = self._owners(pk, taken)
            others = {k: v for k, v in owners.items() if v != contact_id}
            if others:
                what, owner = next(iter(others.items()))
                raise DuplicateContact(
                    f"{what.removeprefix('raw:')} already belongs to another contact.", owner
                ) from None
            raise Conflict("The contact changed meanwhile; read it again.") from None
        item.version = int(item.version or 0)

    def match_or_create(self, principal: Principal, addresses: Iterable[Address], source: str) -> dict[str, str]:
        """The contact id of each address (by email), creating contacts for new emails.
        Idempotent, and safe under concurrency: an email's contact is created together with
        the item that reserves the email, so two loggings never make two contacts for one
        email. :meth:`crmsync.logic.contacts.Contacts.match_or_create` is the use case."""
        return dict(self.match_or_create_new(principal, addresses, source)[0])

    def match_or_create_new(
        self, principal: Principal, addresses: Iterable[Address], source: str
    ) -> tuple[dict[str, str], list[Contact]]:
        """:meth:`match_or_create`, and the contacts it created."""
        wanted: dict[str, Address] = {}
        for address in addresses:
            wanted.setdefault(address.email, address)
        ids = self.owners(principal, emails=wanted)
        created: list[Contact] = []
        for email, address in wanted.items():
            if email in ids:
                continue
            for _ in range(_CREATE_ATTEMPTS):
                try:
                    contact = self.create(
                        principal, ContactFields(display_name=address.name or None, emails=(email,)), source
                    )
                except DuplicateContact as exc:  # someone else reserved it first: theirs stands
                    ids[email] = exc.contact_id
                    break
                except Conflict:  # the transactions collided: look again
                    again = self.owners(principal, emails=[email])
                    if email in again:
                        ids[email] = again[email]
                        break
                    continue
                ids[email] = contact.contact_id
                created.append(contact)
                break
            else:
                raise Conflict("Contacts are being created too fast for this address; the message is retried.")
        return ids, created
