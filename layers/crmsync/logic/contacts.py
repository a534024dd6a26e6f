"""CRM contacts (F9 logging, F10): create, change and delete them, read their conversations
of logged mail. BCC logging, the import review and the API all make contacts through this
use case, so each publishes its domain event and none makes a second contact for one person
(each email and phone belongs to one contact)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from crmsync.dal.contacts import ContactStore
from crmsync.dal.mail_bucket import MailBucket
from crmsync.dal.mail_log import MailLogStore
from crmsync.dal.tenants import TenantSettingsStore
from crmsync.domain import Principal
from crmsync.domain.contacts import (
    CONSENT_LABELS,
    DEFAULT_CONTACT_TYPES,
    SYNCED_FIELDS,
    Consent,
    Contact,
    ContactFields,
    ContactSource,
    ContactType,
    GoogleLink,
)
from crmsync.domain.mail_records import LoggedMessage, Page
from crmsync.domain.message import Address
from crmsync.errors import DuplicateContact, NotFound, Unprocessable
from crmsync.logic import contact_fields
from crmsync.messaging.events import (
    ContactChanged,
    ContactCreated,
    ContactEvent,
    ContactImported,
    EventPublisher,
    Origin,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessageContent:
    message: LoggedMessage
    text: str
    #: Sanitised when the message was logged (no scripts, handlers or remote resources).
    html: str


@dataclass(frozen=True)
class ContactInput:
    """A contact as a user types it: emails and phones as text (read and checked here).
    ``None`` on a change means "leave as it is"."""

    given_name: str | None = None
    family_name: str | None = None
    emails: Sequence[str] | None = None
    phones: Sequence[str] | None = None
    organization: str | None = None
    title: str | None = None
    contact_type: str | None = None
    consent: Consent | None = None


@dataclass(frozen=True)
class ContactChoices:
    """What a contact's type and consent may be, and the region phones are read in."""

    contact_types: tuple[ContactType, ...]
    consent: tuple[tuple[Consent, str], ...]
    default_region: str


class Contacts:
    def __init__(
        self,
        *,
        contacts: ContactStore,
        log: MailLogStore,
        bucket: MailBucket,
        tenants: TenantSettingsStore | None = None,
        events: EventPublisher | None = None,
        default_region: str = contact_fields.FALLBACK_REGION,
        mail_pull: Callable[[Principal, tuple[str, ...]], object] | None = None,
    ) -> None:
        """``default_region``: the deployment's region for phone numbers without a country
        code, for tenants that set none. ``mail_pull``: asks two-way mail sync (F8) for the
        past mail of a contact's new emails (a contact created, imported, or given an email)."""
        self._contacts = contacts
        self._log = log
        self._bucket = bucket
        self._tenants = tenants
        self._events = events
        self._default_region = default_region
        self._mail_pull = mail_pull

    # ------------------------------------------------------------------ choices
    def choices(self, principal: Principal) -> ContactChoices:
        return ContactChoices(
            contact_types=DEFAULT_CONTACT_TYPES,
            consent=tuple(CONSENT_LABELS.items()),
            default_region=self.region(principal.tenant_id),
        )

    def region(self, tenant_id: str) -> str:
        found = self._tenants.default_region(tenant_id) if self._tenants is not None else None
        return found or self._default_region

    def set_region(self, tenant_id: str, region: str | None) -> str:
        """The tenant's region for phones without a country code (None: the deployment's)."""
        if region is not None and not contact_fields.known_region(region):
            raise Unprocessable(f"Unknown region {region[:8]!r}: use an ISO 3166 code such as US, GB or DE.")
        if self._tenants is None:
            raise RuntimeError("Contacts was built without tenant settings")
        self._tenants.set_default_region(tenant_id, region.upper() if region else None)
        return self.region(tenant_id)

    # ------------------------------------------------------------------ reads
    def page(self, principal: Principal, cursor: str | None, limit: int) -> Page[Contact]:
        return self._contacts.page(principal, cursor, limit)

    def get(self, principal: Principal, contact_id: str) -> Contact:
        return self._contact(principal, contact_id)

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

    # ------------------------------------------------------------------ writes
    def create(self, principal: Principal, given: ContactInput, *, origin: Origin = "crm") -> Contact:
        """A new contact (source ``crm``). DuplicateContact (409) when one of its emails or
        phones belongs to another contact; Unprocessable for fields that cannot be."""
        fields_ = self._read(principal, given, ContactFields())
        contact = self._contacts.create(principal, fields_, ContactSource.CRM.value, changed_at=_all_now())
        self._publish(ContactCreated, principal, contact, origin)
        return contact

    def import_(
        self,
        principal: Principal,
        given: ContactInput,
        *,
        contact_id: str,
        google: GoogleLink,
        dated: datetime | None = None,
    ) -> tuple[Contact, bool]:
        """A Google contact the user chose in the import review, as a CRM contact linked to it
        (source ``google``; nothing to push back). Idempotent by ``contact_id``: imported
        again, the contact made the first time is returned. A contact that already has one of
        its emails or phones is linked instead. ``(contact, made)``; ContactImported either way.
        ``dated``: when Google last changed what the row shows (its fields are Google's as of
        then, not a CRM edit: a later change at Google wins over them); now when unknown."""
        existing = self._contacts.get(principal, contact_id)
        if existing is not None:
            return existing, False
        fields_ = self._read(principal, given, ContactFields())
        try:
            contact = self._contacts.create(
                principal,
                fields_,
                ContactSource.GOOGLE.value,
                contact_id=contact_id,
                google=google,
                changed_at=dict.fromkeys(SYNCED_FIELDS, dated) if dated else _all_now(),
                pending=False,
            )
        except DuplicateContact as exc:
            matched = self._contacts.get(principal, exc.contact_id)
            if matched is None:
                raise
            if matched.google is None:
                matched = self._contacts.update(principal, matched, matched.fields, google=google, pending=False)
            self._publish(ContactImported, principal, matched, "import", connection_id=google.connection_id)
            return matched, False
        self._publish(ContactImported, principal, contact, "import", connection_id=google.connection_id)
        return contact, True

    def change(self, principal: Principal, contact_id: str, given: ContactInput, *, origin: Origin = "crm") -> Contact:
        """Change the fields ``given`` names; each synced field that changes records when."""
        current = self._contact(principal, contact_id)
        changed = self._read(principal, given, current.fields)
        if changed == current.fields:
            return current
        now = datetime.now(UTC)
        times = dict(current.changed_at)
        for name in SYNCED_FIELDS:
            if getattr(changed, name) != getattr(current.fields, name):
                times[name] = now
        contact = self._contacts.update(principal, current, changed, changed_at=times)
        self._publish(ContactChanged, principal, contact, origin)
        self._pull_mail(principal, tuple(e for e in contact.fields.emails if e not in current.fields.emails))
        return contact

    def delete(self, principal: Principal, contact_id: str) -> None:
        current = self._contact(principal, contact_id)
        if not self._contacts.delete(principal, current):
            raise NotFound(f"No contact with id {contact_id!r}.")

    def match_or_create(self, principal: Principal, addresses: Iterable[Address], source: str) -> dict[str, str]:
        """The contact id of each address (by email), creating contacts for the new ones (BCC
        logging). Idempotent, and safe under concurrency."""
        ids, created = self._contacts.match_or_create_new(principal, addresses, source)
        for contact in created:
            self._publish(ContactCreated, principal, contact, "bcc" if source == ContactSource.BCC.value else "crm")
        return ids

    # ------------------------------------------------------------------ helpers
    def _read(self, principal: Principal, given: ContactInput, base: ContactFields) -> ContactFields:
        """``base`` with what ``given`` sets, read and checked."""
        updates: dict[str, object] = {}
        for f in fields(ContactInput):
            value = getattr(given, f.name)
            if value is None:
                continue
            if f.name == "emails":
                value = contact_fields.emails(value)
            elif f.name == "phones":
                value = contact_fields.phones(value, self.region(principal.tenant_id))
            elif f.name == "consent":
                value = Consent(value)
            elif isinstance(value, str):
                value = value.strip() or None
            updates[f.name] = value
        result = replace(base, **updates)  # type: ignore[arg-type]
        if result.contact_type is not None and result.contact_type not in {t.type_id for t in DEFAULT_CONTACT_TYPES}:
            known = ", ".join(t.type_id for t in DEFAULT_CONTACT_TYPES)
            raise Unprocessable(f"Unknown contact type {result.contact_type[:40]!r}; one of: {known}.")
        problems = result.problems()
        if problems:
            raise Unprocessable("The contact cannot be saved: " + "; ".join(problems) + ".")
        return result

    def _contact(self, principal: Principal, contact_id: str) -> Contact:
        contact = self._contacts.get(principal, contact_id)
        if contact is None:
            raise NotFound(f"No contact with id {contact_id!r}.")
        return contact

    def _publish(
        self, kind: type[ContactEvent], principal: Principal, contact: Contact, origin: Origin, **extra: str
    ) -> None:
        if kind is not ContactChanged:
            self._pull_mail(principal, contact.fields.emails)
        if self._events is None:
            return
        fields: dict[str, Any] = {
            "event_id": f"{kind.detail_type}:{contact.contact_id}:{contact.version}",
            "tenant_id": principal.tenant_id,
            "user_id": principal.user_id,
            "origin": origin,
            "contact_id": contact.contact_id,
            "version": contact.version,
            "name": contact.name,
            "emails": list(contact.fields.emails),
            "source": contact.source,
            **extra,
        }
        self._events.publish([kind(**fields)])

    def _pull_mail(self, principal: Principal, emails: tuple[str, ...]) -> None:
        """Best effort: a contact is made whether or not its past mail can be asked for now."""
        if not emails or self._mail_pull is None:
            return
        try:
            self._mail_pull(principal, emails)
        except Exception:
            log.warning("past mail of a new contact not requested", exc_info=True)


def _all_now() -> dict[str, datetime]:
    now = datetime.now(UTC)
    return dict.fromkeys(SYNCED_FIELDS, now)


def _plausible_key(message_key: str) -> bool:
    return 0 < len(message_key) <= 80 and message_key.isascii() and message_key.isalnum()
