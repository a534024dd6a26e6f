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
    VersionAttribute,
)

from crmsync.models.base import ConnectionsTableItem, OwnedItem
from crmsync.security.secrets import sha256_hex

BCC_SK = "BCC#address"
SENDER_SK_PREFIX = "SENDER#"
CONTACT_SK_PREFIX = "CONTACT#"
CONTACT_EMAIL_SK_PREFIX = "CONTACTEMAIL#"
CONTACT_PHONE_SK_PREFIX = "CONTACTPHONE#"
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


class PhoneMap(MapAttribute):
    raw = UnicodeAttribute()
    e164 = UnicodeAttribute(null=True)


class GoogleLinkMap(MapAttribute):
    connection_id = UnicodeAttribute()
    resource_name = UnicodeAttribute()
    etag = UnicodeAttribute(null=True)
    ours = BooleanAttribute(default=False)


class ContactItem(ConnectionsTableItem):
    """A CRM contact (sk ``CONTACT#<id>``).

    Contacts logged before F10 hold only ``email``, ``name``, ``source``, ``email_sync`` and
    ``created_at``: they read as a contact with that one email and ``name`` as its display
    name (no migration runs); their first update writes the rest."""

    contact_id = UnicodeAttribute()
    #: The first of ``emails`` (absent for a contact without one).
    email = UnicodeAttribute(null=True)
    #: The display name (a mail header's), for a contact without given/family names.
    name = UnicodeAttribute(null=True)
    given_name = UnicodeAttribute(null=True)
    family_name = UnicodeAttribute(null=True)
    emails = ListAttribute(of=UnicodeAttribute, null=True)
    phones = ListAttribute(of=PhoneMap, null=True)
    organization = UnicodeAttribute(null=True)
    title = UnicodeAttribute(null=True)
    contact_type = UnicodeAttribute(null=True)
    consent = UnicodeAttribute(null=True)
    source = UnicodeAttribute()
    #: Marked for two-way email sync (F8).
    email_sync = BooleanAttribute(default=False)
    google = GoogleLinkMap(null=True)
    #: JSON: synced field name -> when it last changed in the CRM (ISO 8601, UTC).
    changed_at = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()


class ContactEmailItem(ConnectionsTableItem):
    """Makes an email belong to one contact (sk ``CONTACTEMAIL#<email>``): written in the same
    transaction as the contact, on the condition that it does not exist yet."""

    contact_id = UnicodeAttribute()


class ContactPhoneItem(ConnectionsTableItem):
    """Makes a phone number belong to one contact (sk ``CONTACTPHONE#<Phone.key>``), like
    :class:`ContactEmailItem` does an email."""

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
    #: How it was logged first: ``bcc`` (absent on older items), ``gmail`` (two-way sync) or
    #: ``crm`` (sent from the CRM).
    source = UnicodeAttribute(null=True)
    #: The Gmail message once the two-way sync saw it (F8): the connection, Gmail's ids, and
    #: its state there (``live``, ``trashed``, ``spam``, ``deleted``).
    gmail_connection_id = UnicodeAttribute(null=True)
    gmail_id = UnicodeAttribute(null=True)
    thread_id = UnicodeAttribute(null=True)
    internal_date = UTCDateTimeAttribute(null=True)
    gmail_state = UnicodeAttribute(null=True)


class ConversationItem(ConnectionsTableItem):
    """A message's place in one contact's conversation
    (sk ``CONV#<contact id>#<date>#<message key>``); the message itself is the MAIL# item."""

    message_key = UnicodeAttribute()
