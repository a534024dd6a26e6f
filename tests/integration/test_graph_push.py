"""Pushing CRM appointments to an Outlook calendar: the production appointments logic over the
Graph adapter and the Graph emulator (stores and queue are fakes). A create whose answer is
lost makes one event; a cancel that overtakes the retry leaves none, although Graph chose the
event's id (``created_event_id`` is None): the cancel creates again with the same
``transactionId``, which answers with the event that landed, and deletes it. An event our
push created and the Outlook user deleted before a delta round listed it (which Graph then
never reports) cancels its appointment all the same: the sync asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crmsync.domain import AppointmentStatus
from crmsync.ports.errors import ProviderError
from crmsync.providers.graph.calendar import GraphCalendar
from devstack.microsoft.graph import GraphState
from devstack.microsoft.graph.faults import Fault
from tests.fakes.world import FakeGraph
from tests.support.graph_user import GraphServer, GraphUser
from tests.unit.test_appointments_on_fakes import World, fields

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[GraphServer]:
    with GraphServer(GraphState()) as running:
        yield running


@pytest.fixture
def outlook(server: GraphServer) -> Iterator[tuple[World, GraphUser]]:
    """A CRM user whose linked calendar is a fresh mailbox's Outlook calendar."""
    graph = FakeGraph()
    world = World(link=False, graph=graph)
    user = GraphUser(server)
    port = GraphCalendar(server.base_url, lambda: user.token, tenant_id=world.principal.tenant_id)
    graph.calendar_access.put(world.connection, port)  # type: ignore[arg-type]  # the real adapter
    graph.calendars.refresh(world.principal, world.connection)
    world.link(user.calendar_id)
    try:
        yield world, user
    finally:
        server.state.faults.clear()


def _lose_the_next_create(server: GraphServer, user: GraphUser) -> None:
    server.state.faults.add(Fault("lost_answer", method="POST", path="/v1.0/me/calendars/", email=user.email))


def test_a_booking_whose_first_create_answer_is_lost_makes_one_outlook_event(
    server: GraphServer, outlook: tuple[World, GraphUser]
) -> None:
    world, user = outlook
    created = world.create()
    (message,) = world.graph.queue.take()
    _lose_the_next_create(server, user)

    with pytest.raises(ProviderError) as lost:
        world.deliver(message)
    assert lost.value.retryable
    assert world.deliver(message) == "pushed"

    (event,) = user.events()
    assert world.get(created).link.event_id == event.id


def test_a_cancel_overtaking_the_retry_of_a_lost_create_leaves_no_outlook_event(
    server: GraphServer, outlook: tuple[World, GraphUser]
) -> None:
    world, user = outlook
    created = world.appointments.create(world.principal, fields(title="Demo")).appointment_id
    (message,) = world.graph.queue.take()
    _lose_the_next_create(server, user)
    with pytest.raises(ProviderError):
        world.deliver(message)
    assert len(user.events()) == 1  # it landed

    world.appointments.cancel(world.principal, created)
    results = [world.deliver(m) for m in [message, *world.graph.queue.take()]]

    assert "deleted" in results
    assert user.events() == []
    assert world.get(created).link is None


def test_an_event_the_outlook_user_deletes_before_a_delta_round_lists_it_cancels_its_appointment(
    outlook: tuple[World, GraphUser],
) -> None:
    world, user = outlook
    created = world.create()
    assert world.pushes() == ["pushed"]  # after the last round (the link's sync)
    (event,) = user.events()
    user.delete(event.id)

    world.sync(user.calendar_id)

    after = world.get(created)
    assert (after.status, after.link) == (AppointmentStatus.CANCELLED, None)
