"""Person resources: field masks, input cleaning and rendering in the shape Google returns.

The People API has no fixed response shape: every read names the fields it wants with a
field mask (``personFields`` / ``readMask``) and only those fields come back, plus
``resourceName`` and ``etag``. Writes name the fields they replace (``updatePersonFields``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from devstack.google.apis.discovery import ApiError

#: Every path ``personFields`` accepts on reads (people.get, connections.list, ...).
READ_FIELDS = frozenset(
    {
        "addresses",
        "ageRanges",
        "biographies",
        "birthdays",
        "calendarUrls",
        "clientData",
        "coverPhotos",
        "emailAddresses",
        "events",
        "externalIds",
        "genders",
        "imClients",
        "interests",
        "locales",
        "locations",
        "memberships",
        "metadata",
        "miscKeywords",
        "names",
        "nicknames",
        "occupations",
        "organizations",
        "phoneNumbers",
        "photos",
        "relations",
        "sipAddresses",
        "skills",
        "urls",
        "userDefined",
    }
)

#: The paths ``updatePersonFields`` accepts, which are also the fields createContact stores.
WRITE_FIELDS = frozenset(
    {
        "addresses",
        "biographies",
        "birthdays",
        "calendarUrls",
        "clientData",
        "emailAddresses",
        "events",
        "externalIds",
        "genders",
        "imClients",
        "interests",
        "locales",
        "locations",
        "memberships",
        "miscKeywords",
        "names",
        "nicknames",
        "occupations",
        "organizations",
        "phoneNumbers",
        "relations",
        "sipAddresses",
        "urls",
        "userDefined",
    }
)

#: ``readMask`` of otherContacts.list with the default source (READ_SOURCE_TYPE_CONTACT).
OTHER_CONTACT_FIELDS = frozenset({"emailAddresses", "metadata", "names", "phoneNumbers", "photos"})

#: Keys a Person body may carry on writes without being stored (output-only or ignored).
_IGNORED_INPUT = frozenset({"resourceName", "etag", "metadata", "photos", "coverPhotos", "ageRanges", "skills"})

DOCS = "https://developers.google.com/people/api/rest/v1/"


def bad_request(message: str) -> ApiError:
    """400 INVALID_ARGUMENT, the People API's answer to every malformed request."""
    return ApiError(400, message, "badRequest")


def parse_mask(raw: str | None, valid: frozenset[str], name: str, doc: str) -> frozenset[str]:
    """Parse a comma-separated field mask; missing/empty or unknown paths → 400."""
    if raw is None or not raw.strip():
        raise bad_request(
            f"{name} mask is required. Please specify one or more valid paths. "
            f"Valid paths are documented at {DOCS}{doc}."
        )
    paths: set[str] = set()
    for part in raw.split(","):
        # requestMask.includeField and some clients spell paths as "person.names".
        path = part.strip().removeprefix("person.")
        if path not in valid:
            raise bad_request(f'Invalid {name} mask path: "{part.strip()}". Valid paths are documented at {DOCS}{doc}.')
        paths.add(path)
    return frozenset(paths)


def clean_person(body: Any, fields: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The writable fields of a Person request body, without per-item output metadata.

    ``fields`` limits the result to those paths (updatePersonFields); unknown keys → 400
    the way Google's JSON binding rejects them.
    """
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON payload received. Expected an object for 'person'.")
    for key in body:
        if key not in WRITE_FIELDS and key not in _IGNORED_INPUT:
            raise bad_request(f"Invalid JSON payload received. Unknown name \"{key}\" at 'person': Cannot find field.")
    wanted = WRITE_FIELDS if fields is None else frozenset(fields)
    data: dict[str, list[dict[str, Any]]] = {}
    for key in sorted(wanted):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise bad_request(f"Invalid value at 'person.{key}': expected a list of objects.")
        # Field metadata (primary, source) is computed by the server; clients echo it back.
        items = [{k: copy.deepcopy(v) for k, v in item.items() if k != "metadata"} for item in value]
        if items:
            data[key] = items
    return data


def _decorate(field: str, item: dict[str, Any], index: int, source: dict[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(item)
    if field == "names":
        given, family = out.get("givenName", ""), out.get("familyName", "")
        display = out.get("displayName") or " ".join(p for p in (given, family) if p) or out.get("unstructuredName", "")
        if display:
            out.setdefault("displayName", display)
            out.setdefault("unstructuredName", display)
            out.setdefault("displayNameLastFirst", ", ".join(p for p in (family, given) if p) or display)
    if field == "memberships":
        # Memberships carry a source but are never primary in Google's answers.
        out["metadata"] = {"source": dict(source)}
        return out
    out["metadata"] = {"primary": index == 0, "source": dict(source)}
    if index == 0:
        out["metadata"]["sourcePrimary"] = True
    return out


def render(
    resource_name: str,
    etag: str,
    data: dict[str, list[dict[str, Any]]],
    metadata: dict[str, Any],
    fields: frozenset[str],
) -> dict[str, Any]:
    """A Person with ``resourceName``, ``etag`` and only the requested ``fields``."""
    person: dict[str, Any] = {"resourceName": resource_name, "etag": etag}
    source = {"type": metadata["sources"][0]["type"], "id": metadata["sources"][0]["id"]}
    for field in sorted(fields):
        if field == "metadata":
            person["metadata"] = copy.deepcopy(metadata)
        elif data.get(field):
            person[field] = [_decorate(field, item, i, source) for i, item in enumerate(data[field])]
    return person


def sort_key_first_name(data: dict[str, list[dict[str, Any]]]) -> str:
    """FIRST_NAME_ASCENDING: by the primary name's given name (then its display name)."""
    name = (data.get("names") or [{}])[0]
    return str(name.get("givenName") or name.get("displayName") or "").casefold()


def sort_key_last_name(data: dict[str, list[dict[str, Any]]]) -> str:
    """LAST_NAME_ASCENDING: by the primary name's family name (then its display name)."""
    name = (data.get("names") or [{}])[0]
    return str(name.get("familyName") or name.get("displayName") or "").casefold()


def display_name(data: dict[str, list[dict[str, Any]]]) -> str:
    """A one-line label for the control page."""
    name = (data.get("names") or [{}])[0]
    given, family = name.get("givenName", ""), name.get("familyName", "")
    return str(name.get("displayName") or " ".join(p for p in (given, family) if p) or "")
