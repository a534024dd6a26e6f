"""Google People v1 behind the contacts port, through google-api-python-client.

The draft key rides in the contact's ``clientData`` (visible only to our OAuth project), so
a listing tells our contacts apart. The etag of the port is the ``CONTACT`` source's etag,
which ``updateContact`` checks (``person.metadata.sources.etag``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from crmsync.config import GoogleSettings
from crmsync.ports.contacts import (
    BATCH_CREATE_LIMIT,
    BATCH_DELETE_LIMIT,
    BATCH_UPDATE_LIMIT,
    ContactDraft,
    ContactGroup,
    ContactPage,
    ContactUpdate,
    ProviderContact,
    UpdateOutcome,
)
from crmsync.ports.errors import PreconditionFailed, ProviderDuplicate, ProviderError, ProviderNotFound
from crmsync.providers.google.api import build_service, google_errors

__all__ = ["GooglePeople"]

#: ``personFields`` of every read: connections.list requires one, and a sync token is bound
#: to it ("all other request parameters must match the first call").
PERSON_FIELDS = "names,emailAddresses,phoneNumbers,organizations,memberships,clientData,metadata"
#: The fields a draft replaces on update (memberships are left alone).
UPDATE_FIELDS = "names,emailAddresses,phoneNumbers,organizations,clientData"
#: The ``clientData`` key our draft key is stored under.
KEY = "crmsync.contact"
#: updateContact's stale etag: 400 with reason ``failedPrecondition``, or only the
#: ``google.rpc.Code`` ``FAILED_PRECONDITION`` when Google sends no ``errors`` list.
_STALE = frozenset({"failedPrecondition", "FAILED_PRECONDITION"})
#: contactGroups.members.modify takes at most 1000 resource names to add.
MEMBERS_LIMIT = 1000
#: Resource names per people.getBatchGet (Google takes 200): 40 keep the GET URL under
#: google-api-python-client's 2048 characters, past which it re-sends the call as a POST
#: with ``X-HTTP-Method-Override`` (which the emulator does not implement).
BATCH_GET_LIMIT = 40
#: The ``@type`` of the error detail naming the contacts that failed a batchUpdateContacts.
_BATCH_UPDATE_ERRORS = "type.googleapis.com/google.people.v1.BatchUpdateContactsErrorDetails"
#: ``google.rpc.Code`` numbers of a contact's failure in ``contactErrors``.
_CODE_NOT_FOUND, _CODE_FAILED_PRECONDITION = 5, 9


def _first(items: Any) -> dict[str, Any]:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return {}


def _values(items: Any) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(str(i["value"]) for i in items if isinstance(i, dict) and i.get("value"))


def _contact_source(person: dict[str, Any]) -> dict[str, Any]:
    sources = (person.get("metadata") or {}).get("sources") or []
    return next((s for s in sources if isinstance(s, dict) and s.get("type") == "CONTACT"), {})


def parse_person(person: dict[str, Any]) -> ProviderContact:
    """A People ``Person`` as a :class:`ProviderContact`."""
    source = _contact_source(person)
    etag = source.get("etag") or person.get("etag")
    if (person.get("metadata") or {}).get("deleted"):
        return ProviderContact(resource_name=person["resourceName"], etag=etag, deleted=True)
    name, org = _first(person.get("names")), _first(person.get("organizations"))
    groups = tuple(
        str(m["contactGroupMembership"]["contactGroupResourceName"])
        for m in person.get("memberships") or []
        if isinstance(m, dict) and (m.get("contactGroupMembership") or {}).get("contactGroupResourceName")
    )
    key = next((str(d.get("value")) for d in person.get("clientData") or [] if d.get("key") == KEY), None)
    updated = source.get("updateTime")
    return ProviderContact(
        resource_name=person["resourceName"],
        etag=etag,
        given_name=name.get("givenName"),
        family_name=name.get("familyName"),
        display_name=name.get("displayName"),
        emails=_values(person.get("emailAddresses")),
        phones=_values(person.get("phoneNumbers")),
        organization=org.get("name"),
        title=org.get("title"),
        groups=groups,
        key=key,
        updated_at=datetime.fromisoformat(updated) if updated else None,
    )


def contact_errors(error: Any) -> dict[str, int]:
    """Resource name → ``google.rpc.Code`` of each contact a failed batchUpdateContacts names
    (``BatchUpdateContactsErrorDetails.contactErrors``); empty if the answer names none."""
    import json

    try:
        body = json.loads(error.content or b"{}").get("error", {})
    except (ValueError, AttributeError):
        return {}
    details = body.get("details") if isinstance(body, dict) else None
    found: dict[str, int] = {}
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == _BATCH_UPDATE_ERRORS:
            for name, status in (detail.get("contactErrors") or {}).items():
                code = status.get("code") if isinstance(status, dict) else None
                found[str(name)] = int(code) if isinstance(code, int) else 0
    return found


def person_body(draft: ContactDraft) -> dict[str, Any]:
    """The People ``Person`` a draft writes (every field present, empty ones as [])."""
    name = {k: v for k, v in (("givenName", draft.given_name), ("familyName", draft.family_name)) if v}
    org = {k: v for k, v in (("name", draft.organization), ("title", draft.title)) if v}
    return {
        "names": [name] if name else [],
        "emailAddresses": [{"value": e} for e in draft.emails],
        "phoneNumbers": [{"value": p} for p in draft.phones],
        "organizations": [org] if org else [],
        "clientData": [{"key": KEY, "value": draft.key}] if draft.key else [],
    }


class GooglePeople:
    """The "My Contacts" of one connected Google account."""

    def __init__(
        self,
        settings: GoogleSettings,
        refresh_token: str,
        client_secret: Callable[[], str],
        *,
        page_size: int = 1000,
    ) -> None:
        """``page_size``: ``pageSize`` of ``connections.list`` (Google's largest, 1000; smaller
        only to see paging at work). A cursor is bound to it: keep it between listings."""
        self._service: Any = build_service("people", settings, refresh_token, client_secret)
        self._page_size = page_size

    def contact_pages(self, *, cursor: str | None) -> Iterator[ContactPage]:
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {
                "resourceName": "people/me",
                "personFields": PERSON_FIELDS,
                "pageSize": self._page_size,
                "requestSyncToken": True,
            }
            if cursor:
                params["syncToken"] = cursor
            if page_token:
                params["pageToken"] = page_token
            with google_errors("people.connections.list"):
                page = self._service.people().connections().list(**params).execute(num_retries=0)
            contacts = [parse_person(p) for p in page.get("connections", [])]
            page_token = page.get("nextPageToken")
            if not page_token:
                yield ContactPage(contacts, page.get("nextSyncToken"))
                return
            yield ContactPage(contacts, None)

    def get(self, resource_name: str) -> ProviderContact:
        with google_errors("people.get"):
            person = (
                self._service.people()
                .get(resourceName=resource_name, personFields=PERSON_FIELDS)
                .execute(num_retries=0)
            )
        return parse_person(person)

    def create(self, drafts: Sequence[ContactDraft]) -> list[ProviderContact]:
        created: list[ProviderContact] = []
        for start in range(0, len(drafts), BATCH_CREATE_LIMIT):
            chunk = drafts[start : start + BATCH_CREATE_LIMIT]
            body = {"contacts": [{"contactPerson": person_body(d)} for d in chunk], "readMask": PERSON_FIELDS}
            with google_errors("people.batchCreateContacts"):
                answer = self._service.people().batchCreateContacts(body=body).execute(num_retries=0)
            responses = answer.get("createdPeople", [])
            if len(responses) != len(chunk) or any(r.get("httpStatusCode", 200) != 200 for r in responses):
                raise ProviderError("people.batchCreateContacts: Google did not create every contact.", retryable=False)
            created += [parse_person(r["person"]) for r in responses]
        return created

    def update(self, resource_name: str, etag: str, draft: ContactDraft) -> ProviderContact:
        body = person_body(draft)
        fields = UPDATE_FIELDS
        if draft.key is None:
            del body["clientData"]  # keep the key the contact has
            fields = fields.replace(",clientData", "")
        body["metadata"] = {"sources": [{"type": "CONTACT", "etag": etag}]}
        with google_errors("people.updateContact", stale_reasons=_STALE):
            person = (
                self._service.people()
                .updateContact(
                    resourceName=resource_name, updatePersonFields=fields, personFields=PERSON_FIELDS, body=body
                )
                .execute(num_retries=0)
            )
        return parse_person(person)

    def update_many(self, updates: Sequence[ContactUpdate]) -> list[UpdateOutcome]:
        names = [u.resource_name for u in updates]
        if len(set(names)) != len(names):
            raise ProviderError("people.batchUpdateContacts: a contact is named twice in one batch.", retryable=False)
        outcomes: dict[int, UpdateOutcome] = {}
        # One updateMask per call: drafts without a key leave clientData (our key) alone.
        for keyed in (True, False):
            indexes = [i for i, u in enumerate(updates) if (u.draft.key is not None) == keyed]
            for start in range(0, len(indexes), BATCH_UPDATE_LIMIT):
                self._update_batch(updates, indexes[start : start + BATCH_UPDATE_LIMIT], keyed, outcomes)
        return [outcomes[i] for i in range(len(updates))]

    def _update_batch(
        self, updates: Sequence[ContactUpdate], indexes: list[int], keyed: bool, outcomes: dict[int, UpdateOutcome]
    ) -> None:
        """One batchUpdateContacts of ``indexes``; Google applies all or none, naming the
        contacts that failed, so those get their outcome and the rest are sent again."""
        from googleapiclient.errors import HttpError

        fields = UPDATE_FIELDS if keyed else UPDATE_FIELDS.replace(",clientData", "")
        pending = list(indexes)
        failed: dict[str, int] = {}
        while pending:
            contacts: dict[str, Any] = {}
            for i in pending:
                body = person_body(updates[i].draft)
                if not keyed:
                    del body["clientData"]
                body["metadata"] = {"sources": [{"type": "CONTACT", "etag": updates[i].etag}]}
                contacts[updates[i].resource_name] = body
            request = {"contacts": contacts, "updateMask": fields, "readMask": PERSON_FIELDS}
            with google_errors("people.batchUpdateContacts", stale_reasons=_STALE):
                try:
                    answer = self._service.people().batchUpdateContacts(body=request).execute(num_retries=0)
                except HttpError as error:
                    failed = contact_errors(error)
                    if not failed or not set(failed) <= set(contacts):
                        raise
                    answer = None
            if answer is not None:
                results = answer.get("updateResult") or {}
                for i in pending:
                    result = results.get(updates[i].resource_name) or {}
                    if "person" not in result:
                        raise ProviderError(
                            "people.batchUpdateContacts: Google did not answer every contact.", retryable=False
                        )
                    outcomes[i] = parse_person(result["person"])
                return
            for i in pending:
                code = failed.get(updates[i].resource_name)
                if code == _CODE_FAILED_PRECONDITION:
                    outcomes[i] = PreconditionFailed("people.batchUpdateContacts: the contact changed at Google.")
                elif code == _CODE_NOT_FOUND:
                    outcomes[i] = ProviderNotFound("people.batchUpdateContacts: not found at Google.")
                elif code is not None:
                    raise ProviderError(
                        f"people.batchUpdateContacts: Google refused a contact (code {code}).", retryable=False
                    )
            pending = [i for i in pending if i not in outcomes]

    def delete(self, resource_name: str) -> None:
        with google_errors("people.deleteContact"):
            self._service.people().deleteContact(resourceName=resource_name).execute(num_retries=0)

    def delete_many(self, resource_names: Sequence[str]) -> list[str]:
        names = list(dict.fromkeys(resource_names))
        gone: set[str] = set()
        for start in range(0, len(names), BATCH_DELETE_LIMIT):
            chunk = names[start : start + BATCH_DELETE_LIMIT]
            try:
                self._delete_batch(chunk)
            except ProviderNotFound:
                # One is gone, and the call deleted none (Google names none of them): ask
                # which still exist, and delete those.
                live = self._existing(chunk)
                gone |= set(chunk) - live
                if live:
                    self._delete_batch([n for n in chunk if n in live])
        return [n for n in names if n in gone]

    def _delete_batch(self, names: list[str]) -> None:
        with google_errors("people.batchDeleteContacts"):
            self._service.people().batchDeleteContacts(body={"resourceNames": names}).execute(num_retries=0)

    def _existing(self, names: list[str]) -> set[str]:
        """Which of ``names`` are live contacts (people.getBatchGet)."""
        live: set[str] = set()
        for start in range(0, len(names), BATCH_GET_LIMIT):
            with google_errors("people.getBatchGet"):
                answer = (
                    self._service.people()
                    .getBatchGet(resourceNames=names[start : start + BATCH_GET_LIMIT], personFields="metadata")
                    .execute(num_retries=0)
                )
            live |= {
                str(r["requestedResourceName"])
                for r in answer.get("responses", [])
                if r.get("httpStatusCode", 200) == 200 and "person" in r
            }
        return live

    # ------------------------------------------------------------------ groups
    def _find_group(self, name: str) -> ContactGroup | None:
        page_token: str | None = None
        while True:
            with google_errors("contactGroups.list"):
                page = (
                    self._service.contactGroups()
                    .list(pageSize=1000, pageToken=page_token, groupFields="name,groupType")
                    .execute(num_retries=0)
                )
            for group in page.get("contactGroups", []):
                if group.get("groupType") == "USER_CONTACT_GROUP" and group.get("name") == name:
                    return ContactGroup(group["resourceName"], name)
            page_token = page.get("nextPageToken")
            if not page_token:
                return None

    def ensure_group(self, name: str) -> ContactGroup:
        if not name.strip():
            raise ProviderError("contactGroups.create: a group needs a name.", retryable=False)
        found = self._find_group(name)
        if found is not None:
            return found
        try:
            with google_errors("contactGroups.create"):
                group = (
                    self._service.contactGroups().create(body={"contactGroup": {"name": name}}).execute(num_retries=0)
                )
        except ProviderDuplicate:
            found = self._find_group(name)  # made meanwhile (another sync of this user)
            if found is None:
                raise
            return found
        return ContactGroup(group["resourceName"], name)

    def add_members(self, group: ContactGroup, resource_names: Sequence[str]) -> None:
        missing: list[str] = []
        for start in range(0, len(resource_names), MEMBERS_LIMIT):
            body = {"resourceNamesToAdd": list(resource_names[start : start + MEMBERS_LIMIT])}
            with google_errors("contactGroups.members.modify"):
                answer = (
                    self._service.contactGroups()
                    .members()
                    .modify(resourceName=group.resource_name, body=body)
                    .execute(num_retries=0)
                )
            missing += answer.get("notFoundResourceNames", [])
        if missing:
            raise ProviderNotFound(f"contactGroups.members.modify: {len(missing)} contact(s) not found at Google.")
