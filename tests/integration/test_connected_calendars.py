"""F2: the calendars of every connected account, read from Google through the real client
library (against the emulator) and kept in DynamoDB Local."""

from __future__ import annotations

import pytest
import requests

from crmsync.domain import Principal
from crmsync.errors import ProviderError
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from tests.support.google_consent import consent, query

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
MALLORY = Principal("tenant-b", "mallory")


def connect(svc: Integrations, who: Principal, email: str, *, typed: bool = False) -> str:
    """Sign in through the emulator's consent page (``typed``: as an account not listed there)."""
    start = svc.start_connect("google", who)
    params = query(consent(start.authorization_url, email, typed=typed))
    connection = svc.complete_connect(
        "google", state=params["state"], code=params["code"], error=None, binding=start.binding
    )
    return connection.connection_id


def test_an_accounts_calendars_are_listed_with_role_primary_colour_and_zone(
    integrations: Integrations, calendars: Calendars, ada
) -> None:
    connection_id = connect(integrations, ALICE, ada)
    assert calendars.connected(ALICE) == []  # nothing until the refresh ran

    refreshed = calendars.refresh(ALICE, connection_id)

    assert refreshed is not None
    listed = calendars.connected(ALICE)
    assert listed[0].calendar_id == ada
    assert listed[0].primary
    assert listed[0].writable
    assert listed[0].time_zone
    assert listed[0].conflict  # the primary calendar blocks availability by default
    by_name = {c.name: c for c in listed}
    assert by_name["Team"].access_role == "owner"
    assert not by_name["Team"].conflict
    holidays = next(c for c in listed if c.access_role == "reader")
    assert not holidays.writable
    assert all(c.account_email == ada for c in listed)
    assert all(c.color for c in listed)


def test_two_accounts_list_their_calendars_side_by_side(
    integrations: Integrations, calendars: Calendars, ada: str, grace: str
) -> None:
    first = connect(integrations, ALICE, ada)
    second = connect(integrations, ALICE, grace)
    calendars.refresh(ALICE, first)
    calendars.refresh(ALICE, second)
    emails = [c.account_email for c in calendars.connected(ALICE)]
    # Grouped by account, in the order the accounts were connected.
    assert emails == [ada] * emails.count(ada) + [grace] * emails.count(grace)
    assert emails.count(ada) >= 1
    assert emails.count(grace) >= 1


def test_a_calendar_removed_at_google_disappears_and_choices_survive_a_refresh(
    integrations: Integrations, calendars: Calendars, stack, ada
) -> None:
    connection_id = connect(integrations, ALICE, ada)
    before = calendars.refresh(ALICE, connection_id)
    assert before is not None
    team = next(c for c in before if c.name == "Team")
    requests.delete(
        f"{stack.google.base_url}/_emulator/calendar/calendars",
        json={"email": ada, "calendarId": team.calendar_id},
        timeout=10,
    ).raise_for_status()

    after = calendars.refresh(ALICE, connection_id)

    assert after is not None
    assert team.calendar_id not in {c.calendar_id for c in after}
    assert len(after) == len(before) - 1
    assert next(c for c in after if c.primary).conflict


def test_disconnect_removes_the_accounts_calendars(integrations: Integrations, calendars: Calendars, ada) -> None:
    connection_id = connect(integrations, ALICE, ada)
    calendars.refresh(ALICE, connection_id)
    integrations.disconnect(ALICE, connection_id)
    assert calendars.connected(ALICE) == []
    assert calendars.refresh(ALICE, connection_id) is None


def test_another_tenant_never_sees_the_calendars(integrations: Integrations, calendars: Calendars, ada) -> None:
    connection_id = connect(integrations, ALICE, ada)
    calendars.refresh(ALICE, connection_id)
    assert calendars.connected(MALLORY) == []
    assert calendars.refresh(MALLORY, connection_id) is None


def test_a_rate_limited_calendar_list_is_a_retryable_error(
    integrations: Integrations, calendars: Calendars, stack, ada
) -> None:
    connection_id = connect(integrations, ALICE, ada)
    requests.post(
        f"{stack.google.base_url}/_emulator/faults",
        json={"kind": "rate_limit_403", "method": "calendar.calendarList.list", "email": ada},
        timeout=10,
    ).raise_for_status()
    with pytest.raises(ProviderError) as failed:
        calendars.refresh(ALICE, connection_id)
    assert failed.value.retryable
    assert calendars.refresh(ALICE, connection_id)  # the next attempt succeeds
