"""CRM contacts and their conversations of logged mail (F9), read side."""

from __future__ import annotations

from dataclasses import dataclass

from crmsync.dal.contacts import ContactStore
from crmsync.dal.mail_bucket import MailBucket
from crmsync.dal.mail_log import MailLogStore
from crmsync.domain import Principal
from crmsync.domain.mail_records import Contact, LoggedMessage, Page
from crmsync.errors import NotFound


@dataclass(frozen=True)
class MessageContent:
    message: LoggedMessage
    text: str
    #: Sanitised when the message was logged (no scripts, handlers or remote resources).
    html: str


class Contacts:
    def __init__(self, *, contacts: ContactStore, log: MailLogStore, bucket: MailBucket) -> None:
        self._contacts = contacts
        self._log = log
        self._bucket = bucket

    def page(self, principal: Principal, cursor: str | None, limit: int) -> Page[Contact]:
        return self._contacts.page(principal, cursor, limit)

    def conversation(
        self, principal: Principal, contact_id: str, cursor: str | None, limit: int
    ) -> Page[LoggedMessage]:
        self._contact(principal, contact_id)
        return self._log.conversation(principal, contact_id, cursor, limit)

    def message(self, principal: Principal, contact_id: str, message_key: str) -> MessageContent:
        """One message of the contact's conversation with its bodies (read from the bucket)."""
        self._contact(principal, contact_id)
        message = self._log.get(principal, message_key) if _plausible_key(message_key) else None
        if message is None or contact_id not in message.contact_ids:
            raise NotFound("No such message in this contact's conversation.")
        text = self._bucket.read_text(message.text_key) if message.text_key else None
        html = self._bucket.read_text(message.html_key) if message.html_key else None
        return MessageContent(message, text or "", html or "")

    def _contact(self, principal: Principal, contact_id: str) -> Contact:
        contact = self._contacts.get(principal, contact_id)
        if contact is None:
            raise NotFound(f"No contact with id {contact_id!r}.")
        return contact


def _plausible_key(message_key: str) -> bool:
    return 0 < len(message_key) <= 80 and message_key.isascii() and message_key.isalnum()
