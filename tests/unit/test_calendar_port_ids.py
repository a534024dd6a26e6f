"""Instance ids of providers that report whole resources: ``<resource>@<original start>``."""

from __future__ import annotations

import pytest

from crmsync.ports.calendar import resource_of


@pytest.mark.parametrize(
    ("event_id", "resource"),
    [
        ("ABC.ics", "ABC.ics"),
        ("ABC.ics@20300105T090000Z", "ABC.ics"),
        ("ABC.ics@20300105", "ABC.ics"),
        ("x@google.com.ics", "x@google.com.ics"),  # an '@' in the name is not an instance suffix
        ("x@google.com.ics@20300105T090000Z", "x@google.com.ics"),
        ("crm0123456789abcdef", "crm0123456789abcdef"),  # a Google id
        ("abc_20300105T090000Z", "abc_20300105T090000Z"),  # a Google instance id
        ("@20300105T090000Z", "@20300105T090000Z"),
    ],
)
def test_an_instance_names_its_resource(event_id: str, resource: str) -> None:
    assert resource_of(event_id) == resource
