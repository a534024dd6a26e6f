"""F3 linked calendar, F4 conflict calendars, F6 sync preferences."""

from __future__ import annotations

import pytest

from crmsync.domain import CalendarRef, ExternalDeletion, Principal, SyncDirection, SyncPreferences
from crmsync.errors import Unprocessable
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from tests.integration.test_connected_calendars import connect
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
MALLORY = Principal("tenant-b", "mallory")


@pytest.fixture
def account(stack) -> str:
    """Ada's Google account, of this test's own, with the demo calendars."""
    return GoogleCalendarUser.new(stack.google.base_url, "ada", demo=True).email


@pytest.fixture
def ada(integrations: Integrations, calendars: Calendars, account: str) -> str:
    """Ada's connection."""
    connection_id = connect(integrations, ALICE, account)
    calendars.refresh(ALICE, connection_id)
    return connection_id


def by_name(calendars: Calendars, name: str) -> CalendarRef:
    c = next(c for c in calendars.connected(ALICE) if c.name == name)
    return CalendarRef(c.connection_id, c.calendar_id)


def test_defaults_before_anything_is_chosen(calendar_settings: CalendarSettingsService, ada: str, account: str) -> None:
    view = calendar_settings.view(ALICE)
    assert view.linked is None
    assert view.settings.preferences == SyncPreferences()
    assert [c.calendar_id for c in view.conflict_calendars] == [account]  # the primary


def test_linking_a_writable_calendar_makes_it_a_conflict_calendar_too(
    calendar_settings: CalendarSettingsService, calendars: Calendars, ada: str
) -> None:
    team = by_name(calendars, "Team")
    view = calendar_settings.link(ALICE, team)
    assert view.linked is not None
    assert view.linked.name == "Team"
    assert {c.name for c in view.conflict_calendars} >= {"Team"}


def test_a_read_only_calendar_cannot_be_linked(
    calendar_settings: CalendarSettingsService, calendars: Calendars, ada: str
) -> None:
    holidays = next(c for c in calendars.connected(ALICE) if not c.writable)
    with pytest.raises(Unprocessable, match="read-only"):
        calendar_settings.link(ALICE, CalendarRef(holidays.connection_id, holidays.calendar_id))
    assert calendar_settings.view(ALICE).linked is None


def test_another_users_calendar_cannot_be_linked(
    calendar_settings: CalendarSettingsService, calendars: Calendars, ada: str
) -> None:
    with pytest.raises(Unprocessable):
        calendar_settings.link(MALLORY, by_name(calendars, "Team"))


def test_conflict_calendars_are_exactly_the_chosen_set(
    calendar_settings: CalendarSettingsService, calendars: Calendars, ada: str
) -> None:
    team = by_name(calendars, "Team")
    view = calendar_settings.set_conflict_calendars(ALICE, [team])
    assert [c.name for c in view.conflict_calendars] == ["Team"]
    assert calendar_settings.set_conflict_calendars(ALICE, []).conflict_calendars == []
    with pytest.raises(Unprocessable, match="Not connected"):
        calendar_settings.set_conflict_calendars(ALICE, [CalendarRef(ada, "nope@example.com")])


def test_preferences_are_kept(calendar_settings: CalendarSettingsService, ada: str) -> None:
    wanted = SyncPreferences(SyncDirection.CRM_TO_CALENDAR, ExternalDeletion.UNLINK, 7, 90)
    assert calendar_settings.set_preferences(ALICE, wanted).settings.preferences == wanted
    assert calendar_settings.view(ALICE).settings.preferences == wanted


def test_disconnecting_the_linked_account_unlinks_it(
    integrations: Integrations, calendar_settings: CalendarSettingsService, calendars: Calendars, ada: str
) -> None:
    calendar_settings.link(ALICE, by_name(calendars, "Team"))
    integrations.disconnect(ALICE, ada)
    view = calendar_settings.view(ALICE)
    assert view.linked is None
    assert view.conflict_calendars == []
