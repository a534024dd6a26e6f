"""Logged messages and the conversations they belong to, under the user's partition."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from crmsync.dal import condition_failed, shared_connection
from crmsync.dal.paging import decode_cursor, encode_cursor
from crmsync.dal.transact import failed_conditions
from crmsync.domain import Principal
from crmsync.domain.mail_records import GmailRef, GmailState, LoggedMessage, Page, StoredAttachment
from crmsync.domain.message import Address
from crmsync.models.keys import user_pk
from crmsync.models.mail import (
    MAIL_SK_PREFIX,
    AddressMap,
    AttachmentMap,
    ConversationItem,
    LoggedMailItem,
    conversation_prefix,
    conversation_sk,
)
from crmsync.models.mail_sync import GmailIndexItem, gmail_index_sk

#: DynamoDB's limit of actions per transaction; the MAIL# item takes one.
TRANSACTION_LIMIT = 100


def _address(value: AddressMap | None) -> Address | None:
    return Address(value.email, value.name or "") if value is not None else None


def _addresses(values: list[AddressMap] | None) -> tuple[Address, ...]:
    return tuple(Address(v.email, v.name or "") for v in values or ())


def _map(address: Address) -> AddressMap:
    return AddressMap(email=address.email, name=address.name or None)


def _to_domain(item: LoggedMailItem) -> LoggedMessage:
    return LoggedMessage(
        message_key=item.message_key,
        direction="inbound" if item.direction == "inbound" else "outbound",
        subject=item.subject or "",
        date=item.date,
        sender=_address(item.sender),
        to=_addresses(item.to),
        cc=_addresses(item.cc),
        message_id=item.message_id or "",
        in_reply_to=item.in_reply_to or "",
        references=tuple(item.references or ()),
        preview=item.preview or "",
        text_key=item.text_key,
        html_key=item.html_key,
        attachments=tuple(
            StoredAttachment(a.filename, a.content_type, int(a.size), a.sha256, a.s3_key)
            for a in item.attachments or ()
        ),
        notes=tuple(item.notes or ()),
        contact_ids=tuple(item.contact_ids or ()),
        logged_at=item.logged_at,
        event_published=bool(item.event_published),
        content_digest=item.content_digest,
        source="gmail" if item.source == "gmail" else "crm" if item.source == "crm" else "bcc",
        gmail=_gmail(item),
    )


def _gmail(item: LoggedMailItem) -> GmailRef | None:
    if not (item.gmail_connection_id and item.gmail_id):
        return None
    state: GmailState = "live"
    if item.gmail_state in ("trashed", "spam", "deleted"):
        state = item.gmail_state  # type: ignore[assignment]
    return GmailRef(
        item.gmail_connection_id, item.gmail_id, item.thread_id or "", item.internal_date or item.date, state
    )


def sortable_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MailLogStore:
    def __init__(self) -> None:
        # One connection (and botocore client) for the store's life: a new one per transaction
        # costs a botocore session, ~0.1–0.4 s each.
        self._db = shared_connection()

    def get(self, principal: Principal, message_key: str) -> LoggedMessage | None:
        try:
            item = LoggedMailItem.get(
                user_pk(principal.tenant_id, principal.user_id), MAIL_SK_PREFIX + message_key, consistent_read=True
            )
        except DoesNotExist:
            return None
        return _to_domain(item)

    def commit(self, principal: Principal, message: LoggedMessage) -> bool:
        """Write the message and its place in every contact's conversation, all or nothing.
        False when the message was logged before (its MAIL# item exists): nothing changes."""
        if len(message.contact_ids) + 1 > TRANSACTION_LIMIT:
            raise ValueError("too many contacts for one transaction")
        pk = user_pk(principal.tenant_id, principal.user_id)
        item = LoggedMailItem(
            pk,
            MAIL_SK_PREFIX + message.message_key,
            message_key=message.message_key,
            direction=message.direction,
            subject=message.subject or None,
            date=message.date,
            sender=_map(message.sender) if message.sender else None,
            to=[_map(a) for a in message.to] or None,
            cc=[_map(a) for a in message.cc] or None,
            message_id=message.message_id or None,
            in_reply_to=message.in_reply_to or None,
            references=list(message.references) or None,
            preview=message.preview or None,
            text_key=message.text_key,
            html_key=message.html_key,
            attachments=[
                AttachmentMap(
                    filename=a.filename, content_type=a.content_type, size=a.size, sha256=a.sha256, s3_key=a.s3_key
                )
                for a in message.attachments
            ]
            or None,
            notes=list(message.notes) or None,
            contact_ids=list(message.contact_ids),
            logged_at=message.logged_at,
            event_published=False,
            content_digest=message.content_digest,
            source=None if message.source == "bcc" else message.source,
        )
        gmail = message.gmail
        if gmail is not None:
            item.gmail_connection_id = gmail.connection_id
            item.gmail_id = gmail.message_id
            item.thread_id = gmail.thread_id or None
            item.internal_date = gmail.internal_date
            item.gmail_state = gmail.state
        date = sortable_date(self.sort_date(message))
        try:
            with TransactWrite(connection=self._db) as transaction:
                # First in the transaction (puts keep their order): position 0 below.
                transaction.save(item, condition=LoggedMailItem.sk.does_not_exist())
                if gmail is not None:
                    transaction.save(self._index(pk, gmail, message.message_key))
                for contact_id in message.contact_ids:
                    transaction.save(
                        ConversationItem(
                            pk, conversation_sk(contact_id, date, message.message_key), message_key=message.message_key
                        )
                    )
        except TransactWriteError as exc:
            if 0 in failed_conditions(exc):
                return False
            raise
        return True

    @staticmethod
    def sort_date(message: LoggedMessage) -> datetime:
        """Where a message sits in a conversation: Gmail's ``internalDate`` for mail the sync
        logged first (Gmail orders its threads by it), else the message's Date."""
        if message.source == "gmail" and message.gmail is not None:
            return message.gmail.internal_date
        return message.date

    @staticmethod
    def _index(pk: str, gmail: GmailRef, message_key: str) -> GmailIndexItem:
        return GmailIndexItem(
            pk,
            gmail_index_sk(gmail.connection_id, gmail.message_id),
            message_key=message_key,
            thread_id=gmail.thread_id or None,
        )

    def attach_gmail(self, principal: Principal, message_key: str, gmail: GmailRef) -> bool:
        """Record that a message logged before (by BCC, or sent from the CRM) is this Gmail
        message: its ids and state on the MAIL# item, and the index entry. False when no
        message is logged under ``message_key``."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        item = LoggedMailItem(pk, MAIL_SK_PREFIX + message_key)
        try:
            with TransactWrite(connection=self._db) as transaction:
                transaction.update(
                    item,
                    actions=[
                        LoggedMailItem.gmail_connection_id.set(gmail.connection_id),
                        LoggedMailItem.gmail_id.set(gmail.message_id),
                        LoggedMailItem.thread_id.set(gmail.thread_id)
                        if gmail.thread_id
                        else LoggedMailItem.thread_id.remove(),
                        LoggedMailItem.internal_date.set(gmail.internal_date),
                        LoggedMailItem.gmail_state.set(gmail.state),
                    ],
                    condition=LoggedMailItem.sk.exists(),
                )
                transaction.save(self._index(pk, gmail, message_key))
        except TransactWriteError as exc:
            if 0 in failed_conditions(exc):
                return False
            raise
        return True

    def gmail_keys(self, principal: Principal, connection_id: str, gmail_ids: list[str]) -> dict[str, str]:
        """The logged message key of each of these Gmail messages (those not logged are left out)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(gmail_ids))
        prefix_len = len(gmail_index_sk(connection_id, ""))
        for start in range(0, len(unique), 100):
            keys = [(pk, gmail_index_sk(connection_id, g)) for g in unique[start : start + 100]]
            for entry in GmailIndexItem.batch_get(keys, consistent_read=True):
                found[entry.sk[prefix_len:]] = entry.message_key
        return found

    def add_contacts(self, principal: Principal, message: LoggedMessage, contact_ids: list[str]) -> bool:
        """Put a logged message into more contacts' conversations too (a contact created after
        it was logged), all or nothing. False when the message changed meanwhile (its
        contacts are not the ones read) or is gone: the caller reads it again."""
        new = [c for c in dict.fromkeys(contact_ids) if c not in message.contact_ids]
        if not new:
            return True
        if len(new) + 1 > TRANSACTION_LIMIT:
            raise ValueError("too many contacts for one transaction")
        pk = user_pk(principal.tenant_id, principal.user_id)
        date = sortable_date(self.sort_date(message))
        try:
            with TransactWrite(connection=self._db) as transaction:
                transaction.update(
                    LoggedMailItem(pk, MAIL_SK_PREFIX + message.message_key),
                    actions=[LoggedMailItem.contact_ids.set([*message.contact_ids, *new])],
                    condition=LoggedMailItem.contact_ids == list(message.contact_ids),
                )
                for contact_id in new:
                    transaction.save(
                        ConversationItem(
                            pk, conversation_sk(contact_id, date, message.message_key), message_key=message.message_key
                        )
                    )
        except TransactWriteError as exc:
            if 0 in failed_conditions(exc):
                return False
            raise
        return True

    def gmail_logged(
        self, principal: Principal, connection_id: str, after: str | None = None, limit: int = 100
    ) -> tuple[list[tuple[str, str, GmailState]], str | None]:
        """One page of the mailbox's logged Gmail messages, as (Gmail id, message key, state
        as marked), in Gmail id order from after ``after``; and the Gmail id to continue after
        (None: that was the last page)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        prefix = gmail_index_sk(connection_id, "")
        entries = list(
            GmailIndexItem.query(
                pk,
                GmailIndexItem.sk.startswith(prefix),
                consistent_read=True,
                limit=limit,
                last_evaluated_key={"pk": {"S": pk}, "sk": {"S": prefix + after}} if after else None,
            )
        )
        keys = [(pk, MAIL_SK_PREFIX + e.message_key) for e in entries]
        states = {i.message_key: _gmail(i) for i in LoggedMailItem.batch_get(keys, consistent_read=True) if i.gmail_id}
        out = [
            (e.sk[len(prefix) :], e.message_key, ref.state)
            for e in entries
            if (ref := states.get(e.message_key)) is not None
        ]
        more = entries[-1].sk[len(prefix) :] if len(entries) == limit else None
        return out, more

    def set_gmail_state(self, principal: Principal, message_key: str, state: GmailState) -> bool:
        """Mark what became of the message in Gmail (kept in the CRM either way). False when it
        is not logged, or not as a Gmail message."""
        try:
            LoggedMailItem(user_pk(principal.tenant_id, principal.user_id), MAIL_SK_PREFIX + message_key).update(
                actions=[LoggedMailItem.gmail_state.set(state)], condition=LoggedMailItem.gmail_id.exists()
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def forget_gmail(self, principal: Principal, connection_id: str, limit: int = 200) -> tuple[int, list[str]]:
        """Forget up to ``limit`` messages of a mailbox no longer synced: a message the sync
        logged first goes with its conversation entries (its bucket objects are returned for
        the caller to delete); one logged by BCC or sent from the CRM stays, without its Gmail
        ids. Returns how many index entries were handled (fewer than ``limit``: done)."""
        pk = user_pk(principal.tenant_id, principal.user_id)
        entries = list(
            GmailIndexItem.query(
                pk, GmailIndexItem.sk.startswith(gmail_index_sk(connection_id, "")), consistent_read=True, limit=limit
            )
        )
        objects: list[str] = []
        for entry in entries:
            message = self.get(principal, entry.message_key)
            with TransactWrite(connection=self._db) as transaction:
                transaction.delete(entry)
                if message is not None and message.gmail is not None and message.gmail.connection_id == connection_id:
                    mail = LoggedMailItem(pk, MAIL_SK_PREFIX + message.message_key)
                    if message.source == "gmail":
                        transaction.delete(mail)
                        date = sortable_date(self.sort_date(message))
                        for contact_id in message.contact_ids:
                            transaction.delete(
                                ConversationItem(pk, conversation_sk(contact_id, date, message.message_key))
                            )
                        objects += [k for k in (message.text_key, message.html_key) if k]
                        objects += [a.s3_key for a in message.attachments if a.s3_key]
                    else:
                        transaction.update(
                            mail,
                            actions=[
                                LoggedMailItem.gmail_connection_id.remove(),
                                LoggedMailItem.gmail_id.remove(),
                                LoggedMailItem.thread_id.remove(),
                                LoggedMailItem.internal_date.remove(),
                                LoggedMailItem.gmail_state.remove(),
                            ],
                        )
        return len(entries), objects

    def mark_published(self, principal: Principal, message_key: str) -> None:
        LoggedMailItem(user_pk(principal.tenant_id, principal.user_id), MAIL_SK_PREFIX + message_key).update(
            actions=[LoggedMailItem.event_published.set(True)], condition=LoggedMailItem.sk.exists()
        )

    def conversation(
        self, principal: Principal, contact_id: str, cursor: str | None, limit: int
    ) -> Page[LoggedMessage]:
        """A contact's messages, newest first."""
        prefix = conversation_prefix(contact_id)
        after = decode_cursor(cursor, prefix)
        pk = user_pk(principal.tenant_id, principal.user_id)
        entries = list(
            ConversationItem.query(
                pk,
                ConversationItem.sk.startswith(prefix),
                consistent_read=True,
                scan_index_forward=False,
                limit=limit + 1,
                last_evaluated_key={"pk": {"S": pk}, "sk": {"S": after}} if after else None,
            )
        )
        more = len(entries) > limit
        entries = entries[:limit]
        keys = [(pk, MAIL_SK_PREFIX + e.message_key) for e in entries]
        found = {i.message_key: _to_domain(i) for i in LoggedMailItem.batch_get(keys, consistent_read=True)}
        messages = [found[e.message_key] for e in entries if e.message_key in found]
        return Page(messages, encode_cursor(entries[-1].sk) if more else None)
