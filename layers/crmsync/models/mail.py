"""The BCC logging address (F9): addresses, sender addresses, contacts and logged mail.

Everything lives in the connections table, in the user's partition, except the address
lookup (see :class:`BccLookupItem`). Logged messages keep only metadata here; bodies and
attachments are in the mail bucket (DynamoDB items are limited to 400 KB).
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)

from crmsync.models.base import ConnectionsTableItem, OwnedItem
from crmsync.security.secrets import sha256_hex

BCC_SK = "BCC#address"
SENDER_SK_PREFIX = "SENDER#"
CONTACT_SK_PREFIX = "CONTACT#"
CONTACT_EMAIL_SK_PREFIX = "CONTACTEMAIL#"
MAIL_SK_PREFIX = "MAIL#"
CONVERSATION_SK_PREFIX = "CONV#"


def bcc_lookup_pk(local_part: str) -> str:
    """The lookup key of an address: the hash of its (lower-case) local part, never the value."""
    return "BCCADDR#" + sha256_hex(local_part.lower())


def conversation_prefix(contact_id: str) -> str:
    return f"{CONVERSATION_SK_PREFIX}{contact_id}#"


def conversation_sk(contact_id: str, date_iso: str, message_key: str) -> str:
    """Sorted by date within a contact; the message key makes two messages of one second distinct."""
    return f"{conversation_prefix(contact_id)}{date_iso}#{message_key}"


class BccAddressItem(OwnedItem):
    """The user's current BCC address (sk ``BCC#address``). Only the local part is stored:
    the address is shown with the deployment's logging domain."""

    local_part = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class BccLookupItem(OwnedItem):
    """Finds the owner of an address from the address alone, which is all an inbound mail
    names. Like the OAuth state and the push channel, the key does not start with a tenant:
    it is the hash of an unguessable value, and the item names its owner inside."""

    created_at = UTCDateTimeAttribute()


class SenderAddressItem(ConnectionsTableItem):
    """An address the user added as one of their own (sk ``SENDER#<email>``): ``pending``
    until a mail from it with the code in its subject reaches the BCC address."""

    email = UnicodeAttribute()
    status = UnicodeAttribute()
    #: sha256 of the verification code (the code is shown to the user once).
    code_hash = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    verified_at = UTCDateTimeAttribute(null=True)


class ContactItem(ConnectionsTableItem):
    """A CRM contact (sk ``CONTACT#<id>``)."""

    contact_id = UnicodeAttribute()
    email = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    source = UnicodeAttribute()
    #: Marked for two-way email sync (F8).
    email_sync = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute()


class ContactEmailItem(ConnectionsTableItem):
    """Makes an email belong to one contact (sk ``CONTACTEMAIL#<email>``): written in the same
    transaction as the contact, on the condition that it does not exist yet."""

    contact_id = UnicodeAttribute()


class AddressMap(MapAttribute):
    email = UnicodeAttribute()
    name = UnicodeAttribute(null=True)


class AttachmentMap(MapAttribute):
    filename = UnicodeAttribute()
    content_type = UnicodeAttribute()
    size = NumberAttribute()
    sha256 = UnicodeAttribute()
    #: Absent when the attachment was dropped (a note on the message says why).
    s3_key = UnicodeAttribute(null=True)


class LoggedMailItem(ConnectionsTableItem):
    """One logged message (sk ``MAIL#<message key>``), written once: its conditional put
    is what makes a message logged exactly once however often it arrives."""

    message_key = UnicodeAttribute()
    direction = UnicodeAttribute()
    subject = UnicodeAttribute(null=True)
    date = UTCDateTimeAttribute()
    sender = AddressMap(null=True)
    to: ListAttribute[AddressMap] = ListAttribute(of=AddressMap, null=True)
    cc: ListAttribute[AddressMap] = ListAttribute(of=AddressMap, null=True)
    message_id = UnicodeAttribute(null=True)
    in_reply_to = UnicodeAttribute(null=True)
    references: ListAttribute[str] = ListAttribute(null=True)
    preview = UnicodeAttribute(null=True)
    text_key = UnicodeAttribute(null=True)
    html_key = UnicodeAttribute(null=True)
    attachments: ListAttribute[AttachmentMap] = ListAttribute(of=AttachmentMap, null=True)
    notes: ListAttribute[str] = ListAttribute(null=True)
    contact_ids: ListAttribute[str] = ListAttribute()
    logged_at = UTCDateTimeAttribute()
    #: Set once EmailLogged went out, so a retry after a crash between commit and publish
    #: publishes it (and a duplicate delivery does not publish it again).
    event_published = BooleanAttribute(default=False)
    #: sha256 of the logged content: tells a redelivery (same digest) from another message that
    #: reuses the Message-ID. Absent on messages logged before it was recorded.
    content_digest = UnicodeAttribute(null=True)


class ConversationItem(ConnectionsTableItem):
    """A message's place in one contact's conversation
    (sk ``CONV#<contact id>#<date>#<message key>``); the message itself is the MAIL# item."""

    message_key = UnicodeAttribute()
