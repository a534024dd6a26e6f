"""People v1: connections, contacts and other contacts, with Google's sync-token rules.

Implemented: people.connections.list, people.get, people.getBatchGet,
people.createContact, people.batchCreateContacts, people.updateContact,
people.batchUpdateContacts, people.deleteContact, people.batchDeleteContacts,
otherContacts.list, and contactGroups.list, contactGroups.create and contactGroups.members.modify
(user groups; the system groups "myContacts" and "starred").
The People API sends no push notifications, so changes only move the sync state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.google.apis.discovery import ApiError
from devstack.google.apis.people.control import PeopleControl
from devstack.google.apis.people.fields import (
    OTHER_CONTACT_FIELDS,
    READ_FIELDS,
    WRITE_FIELDS,
    bad_request,
    clean_person,
    parse_mask,
    render,
    sort_key_first_name,
    sort_key_last_name,
)
from devstack.google.apis.people.store import (
    CONNECTIONS,
    OTHER_CONTACTS,
    Contact,
    Group,
    ListSession,
    PageCursor,
    PeopleStore,
    SyncCursor,
    group_names,
    membership,
    rfc3339,
)
from devstack.google.apis.service import ApiCall, ApiService, implements
from devstack.google.server import EmulatorContext, Route
from devstack.google.state import Account

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_BATCH_GET = 200
#: batchCreateContacts: "The request is limited to 200 contacts."
MAX_BATCH_CREATE = 200
#: batchUpdateContacts: "Allows up to 200 contacts in a single request."
MAX_BATCH_UPDATE = 200
#: batchDeleteContacts: "Allows up to 500 resource names in a single request."
MAX_BATCH_DELETE = 500
_BATCH_UPDATE_ERRORS = "type.googleapis.com/google.people.v1.BatchUpdateContactsErrorDetails"
_READ_SOURCES = frozenset(
    {
        "READ_SOURCE_TYPE_UNSPECIFIED",
        "READ_SOURCE_TYPE_PROFILE",
        "READ_SOURCE_TYPE_CONTACT",
        "READ_SOURCE_TYPE_DOMAIN_CONTACT",
        "READ_SOURCE_TYPE_OTHER_CONTACT",
    }
)
#: contactGroups.members.modify: at most 1000 resource names to add (and to remove).
MAX_MEMBERS_MODIFY = 1000
DEFAULT_GROUP_PAGE_SIZE = 30
MAX_GROUP_NAME = 50  # the emulator's guess; Google documents none
#: System groups every account has (a subset of Google's: the two a contact shows).
SYSTEM_GROUPS = {"contactGroups/myContacts": "myContacts", "contactGroups/starred": "starred"}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
#: ``google.rpc.Code`` numbers of the statuses a contact's update can fail with.
_RPC_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "FAILED_PRECONDITION": 9}
_NOT_FOUND = "Requested entity was not found."
_MISMATCH = (
    "Request parameters must match the first call when a page token or sync token is specified "
    "(only pageToken and syncToken may differ)."
)


def _people_id_as_resource_name(handler: Callable[..., Response]) -> Callable[..., Response]:
    """The core routes People's ``flatPath`` (``v1/people/{peopleId}:updateContact``), whose
    variable is not the method's parameter; the parameter is ``resourceName`` =
    ``people/{peopleId}`` (``path``: ``v1/{+resourceName}:updateContact``)."""

    def handle(request: Request, peopleId: str, **values: str) -> Response:
        return handler(request, resourceName=f"people/{peopleId}", **values)

    return handle


def _group_id_as_resource_name(handler: Callable[..., Response]) -> Callable[..., Response]:
    """As :func:`_people_id_as_resource_name`, for ``v1/contactGroups/{contactGroupsId}...``."""

    def handle(request: Request, contactGroupsId: str, **values: str) -> Response:
        return handler(request, resourceName=f"contactGroups/{contactGroupsId}", **values)

    return handle


def _fingerprint(
    params: dict[str, Any], mask_name: str, page_size: int, ignore: set[str]
) -> tuple[tuple[str, str], ...]:
    """The request parameters a page or sync token is bound to, normalized so that equivalent
    spellings (mask order, a missing default) compare equal."""
    normalized: dict[str, str] = {}
    for name, value in params.items():
        if name in ignore or name in ("pageSize", "requestSyncToken", "sortOrder"):
            continue
        if name in (mask_name, "requestMask.includeField"):
            value = ",".join(sorted(p.strip().removeprefix("person.") for p in str(value).split(",")))
        elif isinstance(value, list):
            value = ",".join(sorted(str(v) for v in value))
        normalized[name] = str(value)
    normalized["pageSize"] = str(page_size)
    normalized["requestSyncToken"] = str(bool(params.get("requestSyncToken", False)))
    normalized["sortOrder"] = str(params.get("sortOrder", "LAST_MODIFIED_ASCENDING"))
    return tuple(sorted(normalized.items()))


class PeopleService(ApiService):
    """People v1 over :class:`PeopleStore` (``ctx.stores["people"]``)."""

    api_name = "people"
    api_version = "v1"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.store: PeopleStore = ctx.stores.setdefault("people", PeopleStore(ctx.state))

    def routes(self) -> list[Route]:
        """The API's routes (with ``peopleId`` mapped to ``resourceName``) and the control routes."""
        routes: list[Route] = []
        for route in super().routes():
            if "<peopleId>" in route.rule:
                route = Route(route.rule, route.methods, _people_id_as_resource_name(route.handler))
            elif "<contactGroupsId>" in route.rule:
                route = Route(route.rule, route.methods, _group_id_as_resource_name(route.handler))
            routes.append(route)
        return routes + PeopleControl(self.ctx, self.store).routes()

    # ------------------------------------------------------------------ reads

    @implements("people.people.connections.list")
    def list_connections(self, call: ApiCall) -> Any:
        """The user's contacts ("My Contacts" and other groups), paged, optionally as a sync."""
        if call.param("resourceName") != "people/me":
            raise bad_request('resourceName must be "people/me".')
        fields = parse_mask(
            call.param("personFields") or call.param("requestMask.includeField"),
            READ_FIELDS,
            "personFields",
            "people.connections/list",
        )
        return self._list(call, CONNECTIONS, fields, "personFields")

    @implements("people.otherContacts.list")
    def list_other_contacts(self, call: ApiCall) -> Any:
        """The user's other contacts (auto-created from interactions), with the same sync semantics."""
        sources = call.param("sources") or []
        sources = sources if isinstance(sources, list) else [sources]
        valid = READ_FIELDS if "READ_SOURCE_TYPE_PROFILE" in sources else OTHER_CONTACT_FIELDS
        fields = parse_mask(call.param("readMask"), valid, "readMask", "otherContacts/list")
        return self._list(call, OTHER_CONTACTS, fields, "readMask")

    @implements("people.people.get")
    def get_person(self, call: ApiCall) -> Any:
        """One person: ``people/me`` (the user's profile) or a contact."""
        fields = parse_mask(
            call.param("personFields") or call.param("requestMask.includeField"),
            READ_FIELDS,
            "personFields",
            "people/get",
        )
        return self._person(call.account, str(call.param("resourceName")), fields)

    @implements("people.people.getBatchGet")
    def batch_get(self, call: ApiCall) -> Any:
        """Up to 200 people in one call; a missing one is a 404 entry, not a failed call."""
        fields = parse_mask(
            call.param("personFields") or call.param("requestMask.includeField"),
            READ_FIELDS,
            "personFields",
            "people/getBatchGet",
        )
        names = call.param("resourceNames") or []
        if not names:
            raise bad_request("resourceNames must contain at least one resource name.")
        if len(names) > MAX_BATCH_GET:
            raise bad_request(f"resourceNames can contain at most {MAX_BATCH_GET} resource names.")
        responses: list[dict[str, Any]] = []
        for name in names:
            try:
                person = self._person(call.account, name, fields)
            except ApiError as error:
                code = {404: 5, 400: 3}.get(error.status, 2)
                responses.append(
                    {
                        "httpStatusCode": error.status,
                        "requestedResourceName": name,
                        "status": {"code": code, "message": error.message},
                    }
                )
                continue
            responses.append({"httpStatusCode": 200, "person": person, "requestedResourceName": name})
        return {"responses": responses}

    # ------------------------------------------------------------------ writes

    @implements("people.people.createContact")
    def create_contact(self, call: ApiCall) -> Any:
        """A new contact in "My Contacts"; answers the person (``personFields``, default all)."""
        fields = self._response_fields(call)
        contact = self.store.create(call.account.sub, CONNECTIONS, clean_person(call.body or {}))
        return self._render(contact, fields)

    @implements("people.people.batchCreateContacts")
    def batch_create_contacts(self, call: ApiCall) -> Any:
        """Up to 200 contacts in one call; ``readMask`` is required. All or nothing: an
        invalid person fails the whole request with 400."""
        body = call.body if isinstance(call.body, dict) else {}
        fields = parse_mask(body.get("readMask"), READ_FIELDS, "readMask", "people/batchCreateContacts")
        entries = body.get("contacts") or []
        if not isinstance(entries, list) or not entries:
            raise bad_request("contacts must contain at least one contact.")
        if len(entries) > MAX_BATCH_CREATE:
            raise bad_request(f"contacts can contain at most {MAX_BATCH_CREATE} contacts.")
        people = []
        for entry in entries:
            person = entry.get("contactPerson") if isinstance(entry, dict) else None
            if not isinstance(person, dict):
                raise bad_request("Each contact must have a contactPerson.")
            people.append(clean_person(person))
        with self.state.lock:
            created = [self.store.create(call.account.sub, CONNECTIONS, data) for data in people]
            return {
                "createdPeople": [
                    {"httpStatusCode": 200, "person": self._render(c, fields), "requestedResourceName": c.resource_name}
                    for c in created
                ]
            }

    @implements("people.people.updateContact")
    def update_contact(self, call: ApiCall) -> Any:
        """Replace the ``updatePersonFields`` of a contact, guarded by its source etag."""
        update_fields = parse_mask(
            call.param("updatePersonFields"), WRITE_FIELDS, "updatePersonFields", "people/updateContact"
        )
        fields = self._response_fields(call)
        body = call.body if isinstance(call.body, dict) else {}
        with self.state.lock:
            contact = self._contact(call.account, str(call.param("resourceName")))
            self._check_precondition(contact, body)
            changes = clean_person(body, update_fields)
            self.store.update(call.account.sub, contact, changes, update_fields)
            return self._render(contact, fields)

    @implements("people.people.batchUpdateContacts")
    def batch_update_contacts(self, call: ApiCall) -> Any:
        """Up to 200 contacts (``contacts``: resource name → Person with its CONTACT source
        etag), each replacing the ``updateMask`` fields. All or nothing: if any contact
        cannot be updated (stale etag, gone, no etag) nothing is, and the error carries a
        ``BatchUpdateContactsErrorDetails`` whose ``contactErrors`` names each of them."""
        body = call.body if isinstance(call.body, dict) else {}
        update_fields = parse_mask(body.get("updateMask"), WRITE_FIELDS, "updateMask", "people/batchUpdateContacts")
        # "If read mask is left empty, the post-mutate-get is skipped and no data will be returned."
        raw_read = body.get("readMask")
        read_fields = parse_mask(raw_read, READ_FIELDS, "readMask", "people/batchUpdateContacts") if raw_read else None
        sources = body.get("sources", [])
        if not isinstance(sources, list) or any(s not in _READ_SOURCES for s in sources):
            raise bad_request(f"sources must be a list of {', '.join(sorted(_READ_SOURCES))}.")
        entries = body.get("contacts")
        if not isinstance(entries, dict) or not entries:
            raise bad_request("contacts must map at least one resource name to a person.")
        if len(entries) > MAX_BATCH_UPDATE:
            raise bad_request(f"contacts can contain at most {MAX_BATCH_UPDATE} contacts.")
        changes: dict[str, dict[str, Any]] = {}
        for name, person in entries.items():
            if not str(name).startswith("people/") or str(name).count("/") != 1:
                raise bad_request(f'Resource name "{name}" is not a valid person resource name.')
            if not isinstance(person, dict):
                raise bad_request(f"contacts[{name}] must be a person.")
            changes[str(name)] = clean_person(person, update_fields)
        sub = call.account.sub
        with self.state.lock:
            contacts: dict[str, Contact] = {}
            failed: dict[str, dict[str, Any]] = {}
            for name, person in entries.items():
                try:
                    contact = self._contact(call.account, name)
                    self._check_precondition(contact, person)
                except ApiError as error:
                    rpc = error.rpc_status or ("NOT_FOUND" if error.status == 404 else "INVALID_ARGUMENT")
                    failed[name] = {"code": _RPC_CODES.get(rpc, 3), "message": error.message}
                    continue
                contacts[name] = contact
            if failed:
                codes = {f["code"] for f in failed.values()}
                status, reason, rpc = (
                    (400, "failedPrecondition", "FAILED_PRECONDITION")
                    if 9 in codes
                    else (404, "notFound", "NOT_FOUND")
                    if 5 in codes
                    else (400, "badRequest", "INVALID_ARGUMENT")
                )
                raise ApiError(
                    status,
                    f"{len(failed)} of the {len(entries)} contacts could not be updated; none was.",
                    reason,
                    rpc_status=rpc,
                    details=[{"@type": _BATCH_UPDATE_ERRORS, "contactErrors": failed}],
                )
            for name, contact in contacts.items():
                self.store.update(sub, contact, changes[name], update_fields)
            if read_fields is None:
                return {}
            return {
                "updateResult": {
                    name: {"httpStatusCode": 200, "person": self._render(c, read_fields), "requestedResourceName": name}
                    for name, c in contacts.items()
                }
            }

    @implements("people.people.batchDeleteContacts")
    def batch_delete_contacts(self, call: ApiCall) -> Any:
        """Delete up to 500 contacts; each shows in the next incremental sync as
        ``metadata.deleted``. All or nothing: if one is not a live contact, none is deleted
        (404)."""
        body = call.body if isinstance(call.body, dict) else {}
        names = body.get("resourceNames")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise bad_request("resourceNames must contain at least one resource name.")
        if len(names) > MAX_BATCH_DELETE:
            raise bad_request(f"resourceNames can contain at most {MAX_BATCH_DELETE} resource names.")
        for name in names:
            if not name.startswith("people/") or name.count("/") != 1:
                raise bad_request(f'Resource name "{name}" is not a valid person resource name.')
        with self.state.lock:
            contacts = {name: self._contact(call.account, name) for name in names}
            for contact in contacts.values():
                self.store.delete(call.account.sub, contact)
        return {}

    @implements("people.people.deleteContact")
    def delete_contact(self, call: ApiCall) -> Any:
        """Delete a contact; it shows up in the next incremental sync as ``metadata.deleted``."""
        with self.state.lock:
            contact = self._contact(call.account, str(call.param("resourceName")))
            self.store.delete(call.account.sub, contact)
        return {}

    # ------------------------------------------------------------------ contact groups

    @implements("people.contactGroups.list")
    def list_groups(self, call: ApiCall) -> Any:
        """The system groups, then the user's groups (oldest first), paged."""
        page_size = int(call.param("pageSize") or DEFAULT_GROUP_PAGE_SIZE)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise bad_request(f"pageSize must be between 1 and {MAX_PAGE_SIZE}.")
        token = str(call.param("pageToken") or "0")
        if not token.isdigit():
            raise bad_request("The page token is not valid.")
        offset = int(token)
        with self.state.lock:
            groups = [self._system_group(call.account, name) for name in SYSTEM_GROUPS]
            groups += [self._group(call.account, g) for g in self.store.book(call.account.sub).groups.values()]
        result: dict[str, Any] = {"contactGroups": groups[offset : offset + page_size], "totalItems": len(groups)}
        if offset + page_size < len(groups):
            result["nextPageToken"] = str(offset + page_size)
        return result

    @implements("people.contactGroups.create")
    def create_group(self, call: ApiCall) -> Any:
        """A new user group; its name must be unique among the user's groups (409 otherwise)."""
        body = call.body if isinstance(call.body, dict) else {}
        group = body.get("contactGroup")
        name = group.get("name") if isinstance(group, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise bad_request("contactGroup.name must be set.")
        if len(name) > MAX_GROUP_NAME:
            raise bad_request(f"contactGroup.name can have at most {MAX_GROUP_NAME} characters.")
        with self.state.lock:
            created = self.store.create_group(call.account.sub, name.strip())
            if created is None:
                raise ApiError(409, "Contact group name already exists.", "alreadyExists", rpc_status="ALREADY_EXISTS")
            return self._group(call.account, created)

    @implements("people.contactGroups.members.modify")
    def modify_members(self, call: ApiCall) -> Any:
        """Add contacts to (and remove them from) a user group or "starred"; each changed
        contact gets a new etag and shows in the next incremental sync."""
        group_name = str(call.param("resourceName"))
        body = call.body if isinstance(call.body, dict) else {}
        to_add = body.get("resourceNamesToAdd") or []
        to_remove = body.get("resourceNamesToRemove") or []
        if not isinstance(to_add, list) or not isinstance(to_remove, list):
            raise bad_request("resourceNamesToAdd and resourceNamesToRemove must be lists.")
        if len(to_add) > MAX_MEMBERS_MODIFY or len(to_remove) > MAX_MEMBERS_MODIFY:
            raise bad_request(f"At most {MAX_MEMBERS_MODIFY} resource names can be added or removed.")
        sub = call.account.sub
        with self.state.lock:
            if group_name == "contactGroups/myContacts" and to_remove:
                raise bad_request("Contacts cannot be removed from myContacts.")
            if group_name not in SYSTEM_GROUPS and group_name not in self.store.book(sub).groups:
                raise ApiError(404, _NOT_FOUND, "notFound")
            not_found: list[str] = []
            for names, adding in ((to_add, True), (to_remove, False)):
                for resource_name in names:
                    contact = self.store.get(sub, str(resource_name), CONNECTIONS)
                    if contact is None:
                        not_found.append(str(resource_name))
                        continue
                    present = group_name in group_names(contact.data)
                    if present == adding:
                        continue
                    items = [
                        m
                        for m in contact.data.get("memberships", [])
                        if group_name not in group_names({"memberships": [m]})
                    ]
                    if adding:
                        items.append(membership(group_name))
                    self.store.update(sub, contact, {"memberships": items}, frozenset({"memberships"}))
        return {"notFoundResourceNames": not_found} if not_found else {}

    def _group(self, account: Account, group: Group) -> dict[str, Any]:
        return {
            "resourceName": group.resource_name,
            "etag": group.etag,
            "metadata": {"updateTime": rfc3339(group.updated_at)},
            "groupType": "USER_CONTACT_GROUP",
            "name": group.name,
            "formattedName": group.name,
            "memberCount": len(self.store.members(account.sub, group.resource_name)),
        }

    def _system_group(self, account: Account, resource_name: str) -> dict[str, Any]:
        name = SYSTEM_GROUPS[resource_name]
        return {
            "resourceName": resource_name,
            "etag": "#" + hashlib.sha256(f"{account.sub}:{resource_name}".encode()).hexdigest()[:12],
            "groupType": "SYSTEM_CONTACT_GROUP",
            "name": name,
            "formattedName": {"myContacts": "My Contacts", "starred": "Starred"}[name],
            "memberCount": len(self.store.members(account.sub, resource_name)),
        }

    # ------------------------------------------------------------------ helpers

    def _response_fields(self, call: ApiCall) -> frozenset[str]:
        raw = call.param("personFields")
        return READ_FIELDS if not raw else parse_mask(raw, READ_FIELDS, "personFields", "people/updateContact")

    def _contact(self, account: Account, resource_name: str) -> Contact:
        contact = self.store.get(account.sub, resource_name, CONNECTIONS)
        if contact is None:
            raise ApiError(404, _NOT_FOUND, "notFound")
        return contact

    @staticmethod
    def _check_precondition(contact: Contact, body: dict[str, Any]) -> None:
        metadata = body.get("metadata")
        sources = metadata.get("sources") if isinstance(metadata, dict) else None
        if not isinstance(sources, list) or not sources:
            raise bad_request("person.metadata.sources must be set for the contact to be updated.")
        source = next((s for s in sources if isinstance(s, dict) and s.get("type") == "CONTACT"), None)
        if source is None or not source.get("etag"):
            raise bad_request("person.metadata.sources must contain the CONTACT source with its etag.")
        stale_top = body.get("etag") not in (None, contact.etag)
        if source["etag"] != contact.source_etag or stale_top:
            raise ApiError(
                400,
                "Request person.metadata.sources.etag is different than the current contact's etag. "
                "Clients should get the latest person and merge their updates into the latest person.",
                "failedPrecondition",
                rpc_status="FAILED_PRECONDITION",
            )

    @staticmethod
    def _render(contact: Contact, fields: frozenset[str]) -> dict[str, Any]:
        return render(contact.resource_name, contact.etag, contact.data, contact.metadata(), fields)

    def _person(self, account: Account, resource_name: str, fields: frozenset[str]) -> dict[str, Any]:
        if resource_name in ("people/me", f"people/{account.sub}"):
            return self._profile(account, fields)
        if not resource_name.startswith("people/") or resource_name.count("/") != 1:
            raise bad_request(f'Resource name "{resource_name}" is not a valid person resource name.')
        contact = self.store.get(account.sub, resource_name, CONNECTIONS)
        if contact is None:
            raise ApiError(404, _NOT_FOUND, "notFound")
        return self._render(contact, fields)

    @staticmethod
    def _profile(account: Account, fields: frozenset[str]) -> dict[str, Any]:
        given, _, family = account.name.partition(" ")
        name: dict[str, Any] = {"givenName": given, "displayName": account.name}
        if family:
            name["familyName"] = family
        data = {"names": [name], "emailAddresses": [{"value": account.email}]}
        etag = "%" + hashlib.sha256(f"{account.sub}:{account.name}".encode()).hexdigest()[:28]
        metadata = {
            "sources": [
                {
                    "type": "PROFILE",
                    "id": account.sub,
                    "etag": "#" + etag[1:13],
                    "profileMetadata": {"objectType": "PERSON", "userTypes": ["GOOGLE_USER"]},
                }
            ],
            "objectType": "PERSON",
        }
        return render(f"people/{account.sub}", etag, data, metadata, fields)

    def _list(self, call: ApiCall, collection: str, fields: frozenset[str], mask_name: str) -> dict[str, Any]:
        page_size = int(call.param("pageSize") or DEFAULT_PAGE_SIZE)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise bad_request(f"pageSize must be between 1 and {MAX_PAGE_SIZE}.")
        sub, params = call.account.sub, call.params
        page_fp = _fingerprint(params, mask_name, page_size, {"pageToken"})
        sync_fp = _fingerprint(params, mask_name, page_size, {"pageToken", "syncToken"})
        with self.state.lock:
            book = self.store.book(sub)
            offset = 0
            if params.get("pageToken"):
                cursor = self.store.page_cursor(str(params["pageToken"]))
                if cursor is None or cursor.session.sub != sub or cursor.session.collection != collection:
                    raise bad_request("The page token is not valid.")
                if cursor.fingerprint != page_fp:
                    raise bad_request(_MISMATCH)
                session, offset = cursor.session, cursor.offset
            elif params.get("syncToken"):
                session = self._incremental(call, collection, sync_fp)
            else:
                if not self.store.take_full_sync_quota(sub, call.account.email):
                    raise ApiError(
                        429,
                        "Quota exceeded for the first page of a full sync request. "
                        "This quota is fixed and can not be increased.",
                        "rateLimitExceeded",
                        rpc_status="RESOURCE_EXHAUSTED",
                        details=[
                            {
                                "@type": _ERROR_INFO,
                                "reason": "RATE_LIMIT_EXCEEDED",
                                "domain": "googleapis.com",
                                "metadata": {"service": "people.googleapis.com", "quota_limit": "FullSyncFirstPage"},
                            }
                        ],
                    )
                session = ListSession(
                    sub, collection, self._sorted(sub, collection, params), False, book.seq, self.state.now()
                )
            end = offset + page_size
            items: list[dict[str, Any]] = []
            for name in session.names[offset:end]:
                contact = book.contacts.get(name)
                if contact is None or (contact.deleted and not session.incremental):
                    # Deleted while a full listing was being paged: the next sync reports it.
                    continue
                if contact.deleted:
                    items.append({"resourceName": name, "etag": contact.etag, "metadata": contact.metadata()})
                else:
                    items.append(self._render(contact, fields))
            result: dict[str, Any] = {}
            if items:
                result[CONNECTIONS if collection == CONNECTIONS else OTHER_CONTACTS] = items
            if end < len(session.names):
                result["nextPageToken"] = self.store.issue_page_token(PageCursor(session, end, page_fp))
            elif params.get("requestSyncToken"):
                # Only the last page carries it, and it stands for the state the listing started
                # from: whatever changed while the pages were fetched comes in the next sync.
                result["nextSyncToken"] = self.store.issue_sync_token(
                    SyncCursor(sub, collection, session.snapshot_seq, session.full_sync_at, sync_fp)
                )
            if collection == CONNECTIONS:
                result["totalPeople"] = result["totalItems"] = len(session.names)
            else:
                result["totalSize"] = len(session.names)
            return result

    def _incremental(self, call: ApiCall, collection: str, sync_fp: tuple[tuple[str, str], ...]) -> ListSession:
        sub = call.account.sub
        cursor = self.store.sync_cursor(str(call.param("syncToken")))
        if cursor is None or cursor.sub != sub or cursor.collection != collection:
            raise bad_request("The sync token is not valid.")
        if self.store.sync_expired(cursor):
            raise ApiError(
                400,
                "Sync token is expired. Clear local cache and retry call without the sync token.",
                "failedPrecondition",
                rpc_status="FAILED_PRECONDITION",
                details=[{"@type": _ERROR_INFO, "reason": "EXPIRED_SYNC_TOKEN", "domain": "people.googleapis.com"}],
            )
        if cursor.fingerprint != sync_fp:
            raise bad_request(_MISMATCH)
        changed = self.store.changed_since(sub, collection, cursor.seq)
        # "Writes may have a propagation delay of several minutes for sync requests": this sync
        # ends before the first write still under way, and its token starts there, so that
        # write and every later one come in a later sync (once each; with one delay per
        # account, later writes are under way too).
        pending = [c.seq for c in changed if not self.store.propagated(c, call.account.email)]
        snapshot = min(pending) - 1 if pending else self.store.book(sub).seq
        visible = [c.resource_name for c in changed if c.seq <= snapshot]
        return ListSession(sub, collection, visible, True, snapshot, cursor.full_sync_at)

    def _sorted(self, sub: str, collection: str, params: dict[str, Any]) -> list[str]:
        people = self.store.live(sub, collection)  # oldest change first
        order = params.get("sortOrder", "LAST_MODIFIED_ASCENDING")
        if order == "LAST_MODIFIED_DESCENDING":
            people.reverse()
        elif order == "FIRST_NAME_ASCENDING":
            people.sort(key=lambda c: sort_key_first_name(c.data))
        elif order == "LAST_NAME_ASCENDING":
            people.sort(key=lambda c: sort_key_last_name(c.data))
        return [c.resource_name for c in people]
