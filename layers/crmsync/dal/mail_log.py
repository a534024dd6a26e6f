"""Logged messages and the conversations they belong to, under the user's partition."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from crmsync.dal import shared_connection
from crmsync.dal.paging import decode_cursor, encode_cursor
from crmsync.dal.transact import failed_conditions
from crmsync.domain import Principal
from crmsync.domain.mail_records import LoggedMessage, Page, StoredAttachment
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
        )
        date = sortable_date(message.date)
        try:
            with TransactWrite(connection=self._db) as transaction:
                # First in the transaction (puts keep their order): position 0 below.
                transaction.save(item, condition=LoggedMailItem.sk.does_not_exist())
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
