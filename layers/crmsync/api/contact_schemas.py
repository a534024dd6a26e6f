"""Request and response bodies of /v1/contacts, /v1/contact-types and /v1/settings/contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from crmsync.domain.contacts import MAX_EMAILS, MAX_PHONES, Consent, Contact, Phone
from crmsync.logic.contacts import ContactChoices, ContactInput

Text = Annotated[str, Field(max_length=256)]
EmailText = Annotated[str, Field(min_length=3, max_length=320)]
PhoneText = Annotated[str, Field(min_length=1, max_length=64)]


class PhoneOut(BaseModel):
    number: str = Field(description="E.164 when the number could be read, else as it was given.")
    e164: str | None
    raw: str

    @classmethod
    def of(cls, p: Phone) -> PhoneOut:
        return cls(number=p.e164 or p.raw, e164=p.e164, raw=p.raw)


class GoogleLinkOut(BaseModel):
    connection_id: str
    resource_name: str


class ContactOut(BaseModel):
    id: str
    email: str = Field(description="The first of `emails` (empty for a contact without one).")
    name: str | None = Field(description="Given and family name, or the name a mail header gave.")
    given_name: str | None
    family_name: str | None
    emails: list[str]
    phones: list[PhoneOut]
    organization: str | None
    title: str | None
    contact_type: str | None
    consent: Consent
    source: str = Field(description="Where the contact was first made: crm, bcc or google.")
    google: GoogleLinkOut | None = Field(description="Its twin in the user's Google Contacts, if linked.")
    email_sync: bool = Field(
        description="Whether two-way email sync (F8) brings this contact's mail in: the user syncs a "
        "Gmail mailbox and one of the contact's emails is not on the never-log list."
    )
    created_at: datetime
    updated_at: datetime | None
    version: int

    @classmethod
    def of(cls, c: Contact, *, email_sync: bool = False) -> ContactOut:
        f = c.fields
        return cls(
            id=c.contact_id,
            email=c.email,
            name=c.name,
            given_name=f.given_name,
            family_name=f.family_name,
            emails=list(f.emails),
            phones=[PhoneOut.of(p) for p in f.phones],
            organization=f.organization,
            title=f.title,
            contact_type=f.contact_type,
            consent=f.consent,
            source=c.source,
            google=GoogleLinkOut(connection_id=c.google.connection_id, resource_name=c.google.resource_name)
            if c.google
            else None,
            email_sync=email_sync,
            created_at=c.created_at,
            updated_at=c.updated_at,
            version=c.version,
        )


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ContactIn(BaseModel):
    """A new contact: at least a name, an email or a phone."""

    model_config = ConfigDict(extra="forbid")

    given_name: Text | None = None
    family_name: Text | None = None
    emails: list[EmailText] = Field(default_factory=list, max_length=MAX_EMAILS)
    phones: list[PhoneText] = Field(
        default_factory=list,
        max_length=MAX_PHONES,
        description="Read as E.164 (with the tenant's region when a number has no country code); "
        "a number that cannot be read is kept as given.",
    )
    organization: Text | None = None
    title: Text | None = None
    contact_type: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="One of GET /v1/contact-types."
    )
    consent: Consent = Consent.NONE

    def as_input(self) -> ContactInput:
        return ContactInput(
            given_name=self.given_name,
            family_name=self.family_name,
            emails=self.emails,
            phones=self.phones,
            organization=self.organization,
            title=self.title,
            contact_type=self.contact_type,
            consent=self.consent,
        )


class ContactPatch(BaseModel):
    """The fields to change; those left out stay as they are (an empty list or string clears)."""

    model_config = ConfigDict(extra="forbid")

    given_name: Text | None = None
    family_name: Text | None = None
    emails: list[EmailText] | None = Field(default=None, max_length=MAX_EMAILS)
    phones: list[PhoneText] | None = Field(default=None, max_length=MAX_PHONES)
    organization: Text | None = None
    title: Text | None = None
    contact_type: Annotated[str, Field(max_length=64)] | None = None
    consent: Consent | None = None

    def as_input(self) -> ContactInput:
        return ContactInput(**self.model_dump(exclude_unset=True))


class ContactTypeOut(BaseModel):
    id: str
    label: str


class ConsentOut(BaseModel):
    id: Consent
    label: str


class ContactChoicesOut(BaseModel):
    contact_types: list[ContactTypeOut]
    consent: list[ConsentOut]
    default_region: str = Field(description="The region phone numbers without a country code are read in.")

    @classmethod
    def of(cls, choices: ContactChoices) -> ContactChoicesOut:
        return cls(
            contact_types=[ContactTypeOut(id=t.type_id, label=t.label) for t in choices.contact_types],
            consent=[ConsentOut(id=c, label=label) for c, label in choices.consent],
            default_region=choices.default_region,
        )


class ContactSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_region: Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")] | None = Field(
        description="ISO 3166-1 alpha-2; null: the deployment's default."
    )
