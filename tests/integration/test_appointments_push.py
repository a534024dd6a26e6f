"""F3: appointments created, moved and cancelled in the CRM reach the linked calendar —
through the real Google client against the emulator, with the worker's push played here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from crmsync.dal.appointments import AppointmentFields
from crmsync.domain import CalendarRef, ExternalDeletion, Principal, SyncDirection, SyncPreferences, event_id_for
from crmsync.errors import ProviderError, Unprocessable
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.logic.integrations import Integrations
from crmsync.ports.calendar import EventDraft, WrittenEvent
from crmsync.providers.google.events import PROP_APPOINTMENT
from tests.fakes.world import RecordingQueue
from tests.integration.test_connected_calendars import connect
from tests.support import clock
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

ALICE = Principal("tenant-a", "alice")
START = clock.next_weekday(clock.TUESDAY, 9)


def fields(title: str = "Intro call", hours: int = 1) -> AppointmentFields:
    return AppointmentFields(title=title, start=START, end=START + timedelta(hours=hours), time_zone="Europe/Berlin")


class Google(GoogleCalendarUser):
    """The CRM's events in the user's Google calendar (a fresh account per test)."""

    def events(self, calendar_id: str | None = None, *, cancelled: bool = False) -> list[dict[str, Any]]:
        return super().events(calendar_id, cancelled=cancelled)


@pytest.fixture
def google(stack) -> Google:
    return Google(stack.google.base_url)


@pytest.fixture
def setup(integrations: Integrations, calendars: Calendars, google: Google) -> dict[str, Any]:
    connection_id = connect(integrations, ALICE, google.email, typed=True)
    google.add_calendar("Team")
    listed = calendars.refresh(ALICE, connection_id) or []
    team = next(c for c in listed if c.name == "Team")
    primary = next(c for c in listed if c.primary)
    return {"connection": connection_id, "team": team.calendar_id, "primary": primary.calendar_id}


def settings_service(service_env, appointments: Appointments) -> CalendarSettingsService:
    from crmsync.dal.calendars import CalendarStore
    from crmsync.dal.connections import ConnectionStore
    from crmsync.dal.settings import SettingsStore

    return CalendarSettingsService(
        connections=ConnectionStore(),
        calendars=CalendarStore(),
        settings=SettingsStore(),
        on_linked=appointments.enqueue_pending,
    )


def work(appointments: Appointments, queue: RecordingQueue) -> list[str]:
    """Play the sync worker: run every message sent so far."""
    return [appointments.push(m) for m in queue.take()]


def test_an_appointment_waits_for_a_linked_calendar_then_is_pushed(
    setup, make_appointments, recorded: RecordingQueue, google: Google, service_env
) -> None:
    appointments = make_appointments()
    created = appointments.create(ALICE, fields())
    assert work(appointments, recorded) == ["not_linked"]
    assert appointments.get(ALICE, created.appointment_id).sync_state == "pending"

    settings_service(service_env, appointments).link(ALICE, CalendarRef(setup["connection"], setup["team"]))
    assert work(appointments, recorded) == ["pushed"]

    (event,) = google.events(setup["team"])
    assert event["id"] == event_id_for(created.appointment_id)
    assert event["summary"] == "Intro call"
    assert event["extendedProperties"]["private"][PROP_APPOINTMENT] == created.appointment_id
    assert event["start"]["timeZone"] == "Europe/Berlin"
    synced = appointments.get(ALICE, created.appointment_id)
    assert synced.sync_state == "synced"
    assert synced.link is not None
    assert synced.link.event_id == event["id"]


@pytest.fixture
def linked(setup, make_appointments, recorded: RecordingQueue, service_env) -> Appointments:
    appointments = make_appointments()
    settings_service(service_env, appointments).link(ALICE, CalendarRef(setup["connection"], setup["team"]))
    recorded.take()
    return appointments


def test_moving_an_appointment_moves_the_event(setup, linked: Appointments, recorded, google: Google) -> None:
    created = linked.create(ALICE, fields())
    work(linked, recorded)
    linked.change(ALICE, created.appointment_id, start=START + timedelta(hours=2), end=START + timedelta(hours=3))
    assert work(linked, recorded) == ["pushed"]
    (event,) = google.events(setup["team"])
    assert datetime.fromisoformat(event["start"]["dateTime"]) == START + timedelta(hours=2)


def test_a_change_to_an_appointment_whose_event_google_purged_puts_the_event_back(
    setup, linked: Appointments, recorded, google: Google
) -> None:
    """Deleted in Google and purged (an update of it answers 404) while a CRM move was on its
    way: the CRM's later change wins and the event comes back, as a new event."""
    created = linked.create(ALICE, fields())
    work(linked, recorded)
    (gone,) = google.events(setup["team"])
    google.delete(gone["id"], setup["team"])
    google.expire_sync_tokens(purge_deleted=True)
    linked.change(ALICE, created.appointment_id, start=START + timedelta(hours=2), end=START + timedelta(hours=3))

    assert work(linked, recorded) == ["pushed"]

    (back,) = google.events(setup["team"])
    assert datetime.fromisoformat(back["start"]["dateTime"]) == START + timedelta(hours=2)
    moved = linked.get(ALICE, created.appointment_id)
    assert (moved.sync_state, moved.link.event_id if moved.link else None) == ("synced", back["id"])


def test_cancelling_an_appointment_removes_the_event(setup, linked: Appointments, recorded, google: Google) -> None:
    created = linked.create(ALICE, fields())
    work(linked, recorded)
    linked.cancel(ALICE, created.appointment_id)
    assert work(linked, recorded) == ["deleted"]
    assert google.events(setup["team"]) == []
    assert linked.get(ALICE, created.appointment_id).link is None


def test_a_duplicated_push_changes_nothing(setup, linked: Appointments, recorded, google: Google) -> None:
    linked.create(ALICE, fields())
    messages = recorded.take()
    assert [linked.push(m) for m in messages + messages] == ["pushed", "up_to_date"]
    assert len(google.events(setup["team"])) == 1


class LosesTheAnswerOnce:
    """The insert reaches Google, but its answer is lost (a timeout): the pitfall that makes
    other products create duplicates on retry."""

    def __init__(self, adapter: Any, lost: list[bool]) -> None:
        self.adapter = adapter
        self.lost = lost

    def create_event(self, calendar_id: str, draft: EventDraft) -> WrittenEvent:
        created = self.adapter.create_event(calendar_id, draft)
        if not self.lost:
            self.lost.append(True)
            raise ProviderError("events.insert: timed out", retryable=True)
        return created

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)


def test_a_retried_insert_after_a_timeout_makes_no_second_event(
    setup, make_appointments, recorded: RecordingQueue, google: Google, service_env
) -> None:
    lost: list[bool] = []
    appointments = make_appointments(wrap=lambda adapter: LosesTheAnswerOnce(adapter, lost))
    settings_service(service_env, appointments).link(ALICE, CalendarRef(setup["connection"], setup["team"]))
    recorded.take()
    created = appointments.create(ALICE, fields())
    (message,) = recorded.take()
    with pytest.raises(ProviderError):
        appointments.push(message)  # the queue will deliver it again
    assert appointments.push(message) == "pushed"
    assert [e["id"] for e in google.events(setup["team"])] == [event_id_for(created.appointment_id)]


def test_rate_limits_are_retried_through_the_queue(
    setup, linked: Appointments, recorded, google: Google, stack
) -> None:
    linked.create(ALICE, fields())
    (message,) = recorded.take()
    requests.post(
        f"{stack.google.base_url}/_emulator/faults",
        json={"kind": "rate_limit_429", "method": "calendar.events.insert", "email": google.email},
        timeout=10,
    ).raise_for_status()
    with pytest.raises(ProviderError) as failed:
        linked.push(message)
    assert failed.value.retryable
    assert linked.push(message) == "pushed"
    assert len(google.events(setup["team"])) == 1


def test_linking_another_calendar_moves_the_events_there(
    setup, linked: Appointments, recorded, google: Google, service_env
) -> None:
    linked.create(ALICE, fields())
    work(linked, recorded)
    settings_service(service_env, linked).link(ALICE, CalendarRef(setup["connection"], setup["primary"]))
    assert work(linked, recorded) == ["pushed"]
    assert google.events(setup["team"]) == []
    assert len(google.events(setup["primary"])) == 1


def test_calendar_to_crm_direction_pushes_nothing(
    setup, linked: Appointments, recorded, google: Google, service_env
) -> None:
    settings_service(service_env, linked).set_preferences(
        ALICE, SyncPreferences(SyncDirection.CALENDAR_TO_CRM, ExternalDeletion.CANCEL)
    )
    linked.create(ALICE, fields())
    assert work(linked, recorded) == ["not_linked"]
    assert google.events(setup["team"]) == []


def test_invalid_appointments_are_refused(linked: Appointments) -> None:
    with pytest.raises(Unprocessable, match="end after"):
        linked.create(ALICE, fields(hours=0))
    with pytest.raises(Unprocessable, match="time zone"):
        linked.create(ALICE, AppointmentFields("x", START, START + timedelta(hours=1), "Mars/Olympus"))


def test_a_push_landing_moves_the_version_so_an_edit_read_before_it_cannot_overwrite_it(
    setup, linked: Appointments, recorded, google: Google
) -> None:
    """Recording a push is a write: an edit that read the appointment before it must fail its
    version check (and retry), not save its stale copy over the new link."""
    from pynamodb.exceptions import PutError

    from crmsync.models.appointment import APPOINTMENT_SK_PREFIX, AppointmentItem
    from crmsync.models.keys import user_pk

    created = linked.create(ALICE, fields())
    key = (user_pk(ALICE.tenant_id, ALICE.user_id), APPOINTMENT_SK_PREFIX + created.appointment_id)
    stale = AppointmentItem.get(*key, consistent_read=True)
    assert work(linked, recorded) == ["pushed"]

    pushed = AppointmentItem.get(*key, consistent_read=True)
    assert pushed.version > stale.version
    stale.title = "an edit from before the push"
    with pytest.raises(PutError):
        stale.save()
    assert linked.get(ALICE, created.appointment_id).link is not None
