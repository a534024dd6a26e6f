"""Demo address books for the demo accounts of ``make dev``: (collection, days ago, person)."""

from __future__ import annotations

from typing import Any

_C, _O = "connections", "otherContacts"


def _person(
    given: str, family: str, email: str, phone: str = "", org: str = "", title: str = "", note: str = ""
) -> dict[str, list[dict[str, Any]]]:
    person: dict[str, list[dict[str, Any]]] = {
        "names": [{"givenName": given, "familyName": family}],
        "emailAddresses": [{"value": email, "type": "work"}],
    }
    if phone:
        person["phoneNumbers"] = [{"value": phone, "type": "mobile"}]
    if org:
        person["organizations"] = [{"name": org, "title": title}] if title else [{"name": org}]
    if note:
        person["biographies"] = [{"value": note, "contentType": "TEXT_PLAIN"}]
    return person


def _other(name: str, email: str) -> dict[str, list[dict[str, Any]]]:
    # "Other contacts" come from interactions: usually a name and an address, nothing more.
    return {"names": [{"displayName": name}], "emailAddresses": [{"value": email}]}


DEMO_DATA: dict[str, tuple[tuple[str, int, dict[str, list[dict[str, Any]]]], ...]] = {
    "ada@example.com": (
        (_C, 30, _person("Charles", "Babbage", "charles@analytical.example", "+44 20 7946 0001", "Analytical Engines")),
        (_C, 21, _person("Mary", "Somerville", "mary@somerville.example", "+44 20 7946 0002", "Royal Society")),
        (_C, 14, _person("Augustus", "De Morgan", "augustus@ucl.example", "", "UCL", "Professor")),
        (_C, 3, _person("Michael", "Faraday", "faraday@ri.example", "+44 20 7946 0004", "Royal Institution")),
        (_O, 10, _other("Charles Wheatstone", "wheatstone@kings.example")),
        (_O, 2, _other("John Herschel", "herschel@observatory.example")),
    ),
    "grace@example.org": (
        (_C, 40, _person("Howard", "Aiken", "aiken@harvard.example", "+1 617 555 0101", "Harvard", "Commander")),
        (_C, 20, _person("Jean", "Sammet", "jean@ibm.example", "+1 914 555 0102", "IBM", note="COBOL committee")),
        (_C, 5, _person("Betty", "Holberton", "betty@eckert.example", "", "Eckert-Mauchly")),
        (_O, 7, _other("John Mauchly", "mauchly@eckert.example")),
    ),
    "linus@example.net": (
        (_C, 25, _person("Andrew", "Tanenbaum", "ast@vu.example", "", "Vrije Universiteit", "Professor")),
        (_C, 9, _person("Junio", "Hamano", "gitster@git.example", "+1 650 555 0199", "Google")),
        (_O, 4, _other("Greg Kroah-Hartman", "greg@kroah.example")),
        (_O, 1, _other("Random Contributor", "patches@contrib.example")),
    ),
}
