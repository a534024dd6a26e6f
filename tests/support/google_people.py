"""Acting as a Google user in the emulator's People API (its control API, over HTTP): contacts
made, edited and deleted by the user, sync tokens expired, the propagation delay,
and how many requests the product made."""

from __future__ import annotations

from typing import Any

import requests

#: Every People method the contacts adapter may call (the emulator counts each apart).
PEOPLE_METHODS = (
    "people.contactGroups.create",
    "people.contactGroups.list",
    "people.contactGroups.members.modify",
    "people.people.batchCreateContacts",
    "people.people.batchDeleteContacts",
    "people.people.batchUpdateContacts",
    "people.people.connections.list",
    "people.people.createContact",
    "people.people.deleteContact",
    "people.people.get",
    "people.people.getBatchGet",
    "people.people.updateContact",
)


def person(
    given: str | None = None,
    family: str | None = None,
    emails: tuple[str, ...] = (),
    phones: tuple[str, ...] = (),
    organization: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if given or family:
        body["names"] = [{k: v for k, v in (("givenName", given), ("familyName", family)) if v}]
    if emails:
        body["emailAddresses"] = [{"value": e} for e in emails]
    if phones:
        body["phoneNumbers"] = [{"value": p} for p in phones]
    if organization:
        body["organizations"] = [{"name": organization}]
    return body


class GooglePeopleUser:
    def __init__(self, base_url: str, email: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.email = email

    def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = requests.request(method, f"{self.base_url}/_emulator/{path}", timeout=10, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def add(self, body: dict[str, Any]) -> str:
        """A contact the user makes in Google Contacts; its resource name."""
        return str(self._control("POST", "people/contacts", json={"email": self.email, "person": body})["resourceName"])

    def added(self, body: dict[str, Any]) -> dict[str, Any]:
        """A contact the user makes in Google Contacts, as the emulator shows it (metadata included)."""
        return dict(self._control("POST", "people/contacts", json={"email": self.email, "person": body}))

    def edit(self, resource_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the fields ``body`` names; the contact as it is now (metadata included)."""
        cid = resource_name.split("/", 1)[1]
        return dict(self._control("PATCH", f"people/contacts/{cid}", json={"email": self.email, "person": body}))

    def delete(self, resource_name: str) -> None:
        cid = resource_name.split("/", 1)[1]
        self._control("DELETE", f"people/contacts/{cid}", params={"email": self.email})

    def contacts(self) -> list[dict[str, Any]]:
        """The account's live contacts."""
        return list(self._control("GET", "people/contacts", params={"email": self.email})["people"])

    def expire_sync_tokens(self) -> None:
        self._control("POST", "people/expire-sync-tokens", json={"email": self.email})

    def propagation(self, seconds: int) -> None:
        self._control("POST", "people/propagation", json={"email": self.email, "seconds": seconds})

    def calls(self) -> int:
        """Requests the account's People API received so far, every method together."""
        return sum(
            int(self._control("GET", "calls", params={"method": m, "email": self.email})["count"])
            for m in PEOPLE_METHODS
        )
