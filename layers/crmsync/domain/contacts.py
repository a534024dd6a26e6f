"""CRM contacts (F9 logging, F10 sync and import): plain data and the rules on it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "CONSENT_LABELS",
    "DEFAULT_CONTACT_TYPES",
    "MAX_EMAILS",
    "MAX_PHONES",
    "SYNCED_FIELDS",
    "Candidate",
    "CandidateStatus",
    "Consent",
    "Contact",
    "ContactFields",
    "ContactSource",
    "ContactType",
    "ContactsSync",
    "GoogleLink",
    "Phone",
    "ReviewAction",
    "ReviewImport",
    "normalise_email",
]

#: At most this many emails and phones a contact (each is reserved in the same transaction
#: as the contact: DynamoDB's 100 items a transaction bound the sum).
MAX_EMAILS = 20
MAX_PHONES = 20
_FIELD_MAX = 256
#: Local part, one ``@``, a domain with a dot or ``localhost``-like label; no spaces or
#: control characters; RFC 5321's 254-octet path limit.
_EMAIL = re.compile(
    r"^[^\s@<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+$"
)


class ContactSource(StrEnum):
    """Where a contact was first made."""

    CRM = "crm"
    BCC = "bcc"
    GOOGLE = "google"


class Consent(StrEnum):
    """The consent to contact a person (e.g. CASL/GDPR-style): given expressly, implied by
    a relationship, or none recorded."""

    EXPRESS = "express"
    IMPLIED = "implied"
    NONE = "none"


CONSENT_LABELS: Mapping[Consent, str] = {
    Consent.EXPRESS: "Express consent",
    Consent.IMPLIED: "Implied consent",
    Consent.NONE: "No consent",
}


@dataclass(frozen=True)
class ContactType:
    type_id: str
    label: str


#: Every tenant's contact types until it configures its own.
DEFAULT_CONTACT_TYPES: tuple[ContactType, ...] = (
    ContactType("lead", "Lead"),
    ContactType("client", "Client"),
    ContactType("vendor", "Vendor"),
    ContactType("partner", "Partner"),
    ContactType("other", "Other"),
)


@dataclass(frozen=True)
class Phone:
    """A phone number: ``e164`` when it could be read as a number (with the tenant's default
    region for a number without a country code), else ``None`` and the number is kept as
    typed (``raw``)."""

    raw: str
    e164: str | None = None

    @property
    def key(self) -> str:
        """What makes two phones the same person's: the E.164 form, or the raw digits and
        letters of one that could not be read."""
        return self.e164 or "raw:" + "".join(ch for ch in self.raw.lower() if ch.isalnum())


@dataclass(frozen=True)
class GoogleLink:
    """A contact's twin in the user's Google Contacts."""

    connection_id: str
    resource_name: str
    etag: str | None
    #: We created it in Google (a CRM deletion then deletes it there too).
    ours: bool


#: The fields two-way sync carries, each merged on its own (the later change wins).
SYNCED_FIELDS = ("given_name", "family_name", "emails", "phones", "organization", "title")


@dataclass(frozen=True)
class ContactFields:
    """What a user (or an import) sets on a contact."""

    given_name: str | None = None
    family_name: str | None = None
    #: The name as a mail header gave it (BCC logging), when no given/family name is known.
    display_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[Phone, ...] = ()
    organization: str | None = None
    title: str | None = None
    contact_type: str | None = None
    consent: Consent = Consent.NONE

    def problems(self) -> list[str]:
        """What makes these fields unacceptable (empty when they are fine)."""
        found: list[str] = []
        if not (self.given_name or self.family_name or self.display_name or self.emails or self.phones):
            found.append("a contact needs a name, an email or a phone")
        if len(self.emails) > MAX_EMAILS:
            found.append(f"at most {MAX_EMAILS} emails")
        if len(self.phones) > MAX_PHONES:
            found.append(f"at most {MAX_PHONES} phones")
        for name in ("given_name", "family_name", "display_name", "organization", "title"):
            value = getattr(self, name)
            if value is not None and len(value) > _FIELD_MAX:
                found.append(f"{name} is longer than {_FIELD_MAX} characters")
        for phone in self.phones:
            if not phone.raw.strip() or len(phone.raw) > 64:
                found.append("a phone number is empty or longer than 64 characters")
        return found


@dataclass(frozen=True)
class Contact:
    contact_id: str
    source: str
    created_at: datetime
    fields: ContactFields = field(default_factory=ContactFields)
    google: GoogleLink | None = None
    #: Two-way email sync (F8) syncs this contact.
    email_sync: bool = False
    updated_at: datetime | None = None
    version: int = 0
    #: When each synced field last changed in the CRM (the merge compares it with Google's
    #: change time); absent for a field never changed since the contact was made.
    changed_at: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def email(self) -> str:
        """The first email (what BCC logging knew the contact by), or ``""``."""
        return self.fields.emails[0] if self.fields.emails else ""

    @property
    def name(self) -> str | None:
        f = self.fields
        joined = " ".join(part for part in (f.given_name, f.family_name) if part)
        return joined or f.display_name or None


def normalise_email(value: str) -> str:
    """An address as contacts key it: trimmed and lower-cased. ``ValueError`` for anything
    that is not one plain address."""
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValueError(f"not an email address: {value[:80]!r}")
    return email


@dataclass(frozen=True)
class ContactsSync:
    """The user's Google Contacts sync (F10): the one connection that is their contacts
    account (``None``: off), and since when."""

    connection_id: str | None = None
    enabled_at: datetime | None = None
    version: int = 0
    #: The primary calendar of the contacts account is to become the linked calendar once
    #: the account's calendar list is known (set by the enable step, cleared when done).
    link_primary: bool = False

    @property
    def enabled(self) -> bool:
        return self.connection_id is not None


class CandidateStatus(StrEnum):
    """Where a Google contact offered for import stands: ``offered`` (shown by the review),
    ``declined`` (not shown again unless brought back), ``imported`` (a CRM contact was made
    from it; the next sync links the Google contact and the candidate goes)."""

    OFFERED = "offered"
    DECLINED = "declined"
    IMPORTED = "imported"


@dataclass(frozen=True)
class Candidate:
    """One import candidate (F10): a Google contact that matches no CRM contact and that we
    did not push, or several such sharing an email (one candidate). Only what the review
    shows; ``members`` are the ``(connection_id, resource_name)`` it stands for; ``selected``,
    ``contact_type`` and ``consent`` are the user's choices on its row, kept server-side."""

    candidate_id: str
    status: CandidateStatus
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    organization: str | None = None
    members: tuple[tuple[str, str], ...] = ()
    selected: bool = False
    contact_type: str | None = None
    consent: Consent | None = None
    updated_at: datetime | None = None
    version: int = 0

    @property
    def name(self) -> str | None:
        joined = " ".join(part for part in (self.given_name, self.family_name) if part)
        return joined or self.display_name or None


class ReviewAction(StrEnum):
    """The three answers of the import review (seed 004)."""

    #: Imports nothing; every candidate offered now is declined (contacts new to Google later
    #: are offered).
    NO_IMPORT = "no-import"
    #: Imports the selected rows; every other candidate is declined, never offered again.
    IMPORT_DONE = "import-done"
    #: Imports the selected rows; the rest stay offered, for next time.
    IMPORT_LATER = "import-later"


@dataclass(frozen=True)
class ReviewImport:
    """The user's last answer to the review and how far its import is."""

    action: ReviewAction
    total: int
    done: int
    failed: int
    #: ``running`` until the answer's declines and imports are done, then ``done``.
    state: str
    started_at: datetime
    finished_at: datetime | None = None
    #: Offered rows the answer declined; None until its job has declined them (always 0 for
    #: "Import – Revisit Later", which declines nothing).
    declined: int | None = None
