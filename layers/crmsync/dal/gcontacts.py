"""The Google Contacts sync's mirror (``GCONTACT#``), its cursor (``CSYNC#``) and the CRM
contact changes still to push (``CPENDING#``), under the user's partition (docs/DATA.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError
from pynamodb.expressions.condition import Condition

from crmsync.dal import condition_failed, get_many
from crmsync.dal.connections import StoredConnection, stored_from_item
from crmsync.dal.guard import pending_from_item, pending_key
from crmsync.dal.versioned import update_unread
from crmsync.domain import Principal
from crmsync.domain.contacts import Phone
from crmsync.errors import Conflict
from crmsync.guard import GuardedResource, PendingDeletions
from crmsync.models.connection import CONNECTION_SK_PREFIX, ConnectionItem
from crmsync.models.gcontacts import (
    CINTENT_SK_PREFIX,
    CPENDING_SK_PREFIX,
    GCONTACT_SK_PREFIX,
    ContactPendingItem,
    ContactSyncStateItem,
    CreateIntentItem,
    GoogleContactItem,
    csync_sk,
    gcontact_prefix,
    gcontact_sk,
)
from crmsync.models.guard import PendingDeletionsItem
from crmsync.models.keys import check_id, user_pk
from crmsync.models.mail import PhoneMap
from crmsync.models.settings import CONTACTS_SYNC_SK, ContactsSyncItem

#: The longest sync error kept.
MAX_ERROR = 500

#: Where the deletions a contacts sync held back happened (the mass-deletion guard): in
#: Google (they would unlink CRM contacts) or in the CRM (they would delete Google contacts).
GOOGLE_SIDE, CRM_SIDE = "google", "crm"
SIDES = (GOOGLE_SIDE, CRM_SIDE)


def contacts_resource(connection_id: str, side: str) -> GuardedResource:
    """The contacts account's deletions on one side, as the mass-deletion guard names them."""
    return GuardedResource("contacts", connection_id, side)


@dataclass(frozen=True)
class MirroredContact:
    """A Google contact as last seen (emails normalised, phones read)."""

    resource_name: str
    etag: str | None
    updated_at: datetime | None = None
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[Phone, ...] = ()
    organization: str | None = None
    title: str | None = None
    key: str | None = None
    contact_id: str | None = None
    unlinked_by_crm: bool = False


@dataclass(frozen=True)
class ContactCursor:
    sync_token: str | None = None
    group: str | None = None
    version: int | None = None
    full_syncs: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    contacts_so_far: int | None = None


@dataclass(frozen=True)
class PendingChange:
    """A CRM contact changed (``deleted``: deleted, with its former Google link) since the
    sync last pushed it; ``mark`` guards its removal."""

    contact_id: str
    mark: str
    deleted: bool = False
    connection_id: str | None = None
    resource_name: str | None = None
    ours: bool = False


@dataclass(frozen=True)
class ContactSyncInputs:
    stored: StoredConnection | None
    cursor: ContactCursor
    #: The user's contacts account (None: contacts sync off).
    contacts_account: str | None
    pending: list[PendingChange] = field(default_factory=list)
    #: Deletions earlier syncs held back (the mass-deletion guard), by side.
    held: dict[str, PendingDeletions] = field(default_factory=dict)


def _mirrored(item: GoogleContactItem) -> MirroredContact:
    return MirroredContact(
        resource_name=item.resource_name,
        etag=item.etag,
        updated_at=item.updated_at,
        given_name=item.given_name,
        family_name=item.family_name,
        display_name=item.display_name,
        emails=tuple(str(e) for e in item.emails or ()),
        phones=tuple(Phone(raw=p.raw, e164=p.e164) for p in item.phones or ()),
        organization=item.organization,
        title=item.title,
        key=item.key,
        contact_id=item.contact_id,
        unlinked_by_crm=bool(item.unlinked_by_crm),
    )


def _cursor(item: ContactSyncStateItem | None) -> ContactCursor:
    if item is None:
        return ContactCursor()
    return ContactCursor(
        sync_token=item.sync_token,
        group=item.group_resource_name,
        version=item.version,
        full_syncs=int(item.full_syncs or 0),
        last_success_at=item.last_success_at,
        last_error=item.last_error,
        last_error_at=item.last_error_at,
        contacts_so_far=None if item.contacts_so_far is None else int(item.contacts_so_far),
    )


class ContactMirrorStore:
    def inputs(self, principal: Principal, connection_id: str) -> ContactSyncInputs:
        """What a sync run needs in two requests: the connection, the cursor, the contacts
        sync settings and any held deletions (one BatchGetItem), and the pending CRM changes
        (one Query)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        try:
            check_id("connection", connection_id)
        except ValueError:
            return ContactSyncInputs(None, ContactCursor(), None)
        connection, state, settings, *held_items = get_many(
            [
                (ConnectionItem, pk, CONNECTION_SK_PREFIX + connection_id),
                (ContactSyncStateItem, pk, csync_sk(connection_id)),
                (ContactsSyncItem, pk, CONTACTS_SYNC_SK),
                *(pending_key(principal, contacts_resource(connection_id, side)) for side in SIDES),
            ]
        )
        held = {
            side: p
            for side, item in zip(SIDES, held_items, strict=True)
            if (p := pending_from_item(item if isinstance(item, PendingDeletionsItem) else None)) is not None
        }
        return ContactSyncInputs(
            stored_from_item(connection) if isinstance(connection, ConnectionItem) else None,
            _cursor(state if isinstance(state, ContactSyncStateItem) else None),
            settings.connection_id if isinstance(settings, ContactsSyncItem) else None,
            self.pending(principal),
            held,
        )

    def cursor(self, principal: Principal, connection_id: str) -> ContactCursor:
        try:
            return _cursor(
                ContactSyncStateItem.get(
                    user_pk(principal.tenant_id, principal.user_id), csync_sk(connection_id), consistent_read=True
                )
            )
        except DoesNotExist:
            return ContactCursor()

    # ------------------------------------------------------------------ pending CRM changes
    def pending(self, principal: Principal) -> list[PendingChange]:
        items = ContactPendingItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            ContactPendingItem.sk.startswith(CPENDING_SK_PREFIX),
            consistent_read=True,
        )
        return [
            PendingChange(
                contact_id=i.sk[len(CPENDING_SK_PREFIX) :],
                mark=i.mark,
                deleted=bool(i.deleted),
                connection_id=i.connection_id,
                resource_name=i.resource_name,
                ours=bool(i.ours),
            )
            for i in items
        ]

    def clear_pending(self, principal: Principal, done: Iterable[PendingChange]) -> None:
        """Remove the marks that were pushed, each only if nobody marked the contact again since
        it was read (then the next sync pushes it again)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        for change in done:
            try:
                ContactPendingItem(pk, CPENDING_SK_PREFIX + change.contact_id).delete(
                    condition=ContactPendingItem.mark == change.mark
                )
            except DeleteError as exc:
                if not condition_failed(exc):
                    raise

    # ------------------------------------------------------------------ create intents
    def note_intents(self, principal: Principal, contact_ids: Iterable[str], at: datetime) -> None:
        """Google may have created these contacts though the sync did not hear it."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        with CreateIntentItem.batch_write() as batch:
            for contact_id in dict.fromkeys(contact_ids):
                batch.save(CreateIntentItem(pk, CINTENT_SK_PREFIX + contact_id, at=at))

    def intents(self, principal: Principal) -> dict[str, datetime]:
        """The contact ids whose create in Google may have gone unheard, and since when."""
        items = CreateIntentItem.query(
            user_pk(principal.tenant_id, principal.user_id),
            CreateIntentItem.sk.startswith(CINTENT_SK_PREFIX),
            consistent_read=True,
        )
        return {i.sk[len(CINTENT_SK_PREFIX) :]: i.at for i in items}

    def drop_intents(self, principal: Principal, contact_ids: Iterable[str]) -> None:
        pk = user_pk(principal.tenant_id, principal.user_id)
        with CreateIntentItem.batch_write() as batch:
            for contact_id in dict.fromkeys(contact_ids):
                batch.delete(CreateIntentItem(pk, CINTENT_SK_PREFIX + contact_id))

    # ------------------------------------------------------------------ mirror
    def contacts(
        self, principal: Principal, connection_id: str | None = None, *, besides: str | None = None
    ) -> dict[tuple[str, str], MirroredContact]:
        """Every mirrored contact (of one connection; or of every connection ``besides`` one,
        which the caller holds already), keyed by (connection, resource name)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        if besides is not None:
            # The keys sort by connection: the ranges before and after the one left out.
            skipped = gcontact_prefix(besides)
            ranges: list[Condition] = [
                GoogleContactItem.sk.between(GCONTACT_SK_PREFIX, skipped),
                GoogleContactItem.sk.between(skipped[:-1] + chr(ord("#") + 1), GCONTACT_SK_PREFIX[:-1] + "$"),
            ]
        else:
            prefix = gcontact_prefix(connection_id) if connection_id else GCONTACT_SK_PREFIX
            ranges = [GoogleContactItem.sk.startswith(prefix)]
        return {
            (i.connection_id, i.resource_name): _mirrored(i)
            for condition in ranges
            for i in GoogleContactItem.query(pk, condition, consistent_read=True)
        }

    def contact(self, principal: Principal, connection_id: str, resource_name: str) -> MirroredContact | None:
        """One mirrored contact (None: not mirrored)."""
        try:
            item = GoogleContactItem.get(
                user_pk(principal.tenant_id, principal.user_id),
                gcontact_sk(connection_id, resource_name),
                consistent_read=True,
            )
        except DoesNotExist:
            return None
        return _mirrored(item)

    def save(self, principal: Principal, connection_id: str, contacts: Iterable[MirroredContact]) -> int:
        pk = user_pk(principal.tenant_id, principal.user_id)
        count = 0
        with GoogleContactItem.batch_write() as batch:
            for c in contacts:
                count += 1
                batch.save(
                    GoogleContactItem(
                        pk,
                        gcontact_sk(connection_id, c.resource_name),
                        connection_id=connection_id,
                        resource_name=c.resource_name,
                        etag=c.etag,
                        updated_at=c.updated_at,
                        given_name=c.given_name,
                        family_name=c.family_name,
                        display_name=c.display_name,
                        emails=list(c.emails) or None,
                        phones=[PhoneMap(raw=p.raw, e164=p.e164) for p in c.phones] or None,
                        organization=c.organization,
                        title=c.title,
                        key=c.key,
                        contact_id=c.contact_id,
                        unlinked_by_crm=c.unlinked_by_crm,
                    )
                )
        return count

    def remove(self, principal: Principal, connection_id: str, resource_names: Iterable[str]) -> int:
        pk = user_pk(principal.tenant_id, principal.user_id)
        count = 0
        with GoogleContactItem.batch_write() as batch:
            for name in resource_names:
                count += 1
                batch.delete(GoogleContactItem(pk, gcontact_sk(connection_id, name)))
        return count

    # ------------------------------------------------------------------ cursor
    def advance(
        self,
        principal: Principal,
        connection_id: str,
        read: ContactCursor,
        sync_token: str,
        group: str | None,
        full: bool,
    ) -> None:
        """Store the new cursor, only if nobody advanced it since ``read`` (else Conflict)."""
        item = ContactSyncStateItem(
            user_pk(principal.tenant_id, principal.user_id),
            csync_sk(connection_id),
            connection_id=connection_id,
            sync_token=sync_token,
            group_resource_name=group,
            last_success_at=datetime.now(UTC),
            full_syncs=read.full_syncs + (1 if full else 0),
        )
        if read.version is not None:
            item.version = read.version
        try:
            item.save()
        except PutError as exc:
            if condition_failed(exc):
                raise Conflict("Another sync advanced this contacts account's cursor.") from exc
            raise

    def record_failure(self, principal: Principal, connection_id: str, error: str) -> None:
        update_unread(
            ContactSyncStateItem,
            user_pk(principal.tenant_id, principal.user_id),
            csync_sk(connection_id),
            [
                ContactSyncStateItem.connection_id.set(connection_id),
                ContactSyncStateItem.last_error.set(error[:MAX_ERROR]),
                ContactSyncStateItem.last_error_at.set(datetime.now(UTC)),
                ContactSyncStateItem.contacts_so_far.remove(),
            ],
        )

    def record_progress(self, principal: Principal, connection_id: str, so_far: int) -> None:
        """A full sync under way has mirrored ``so_far`` contacts (the version is left alone:
        the sync's own :meth:`advance` still holds; its save removes the count)."""
        ContactSyncStateItem._get_connection().update_item(
            user_pk(principal.tenant_id, principal.user_id),
            csync_sk(connection_id),
            actions=[
                ContactSyncStateItem.connection_id.set(connection_id),
                ContactSyncStateItem.contacts_so_far.set(so_far),
            ],
        )

    def forget(self, principal: Principal, connection_id: str) -> None:
        """Delete the connection's mirror and cursor (disconnect); CRM contacts stay."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        self.remove(principal, connection_id, [name for _, name in self.contacts(principal, connection_id)])
        ContactSyncStateItem(pk, csync_sk(connection_id)).delete(add_version_condition=False)
        self.drop_intents(principal, self.intents(principal))
