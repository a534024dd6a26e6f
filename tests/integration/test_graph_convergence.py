"""Property (issue 16): the convergence of the Google and CalDAV machines
(test_sync_convergence.py, test_caldav_convergence.py), over Microsoft Graph. Whatever the CRM
user and the Outlook user do — single events, a weekly series with a moved or deleted
occurrence, all-day events, ``showAs`` free, a meeting the user declined, a meeting its
organizer cancelled (``isCancelled``) — in any order, with 429s (Retry-After), 500/503s, the
three sync resets (410 with Location, ``syncStateNotFound``, ``resyncRequired``), a delta
round whose window rolls, writes whose answer is lost after Graph applied them and 412s: once
the faults stop and the queue drains, the CRM and the linked Outlook calendar agree (F6) — no
event twice for one appointment, nothing lost.

Real parts only: DynamoDB Local, the Graph emulator over HTTP (in-process ``GraphState``,
served as in tests/support/graph_user.py), the production ``GraphCalendar``, sync engine and
appointments. The connection is stored like any other; only its token source is the stub the
emulator's test server maps to the mailbox. ``GRAPH_CONVERGENCE_EXAMPLES`` runs more examples
(docs/TESTING.md)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from crmsync.app.connectors import Connectors, ProviderKit
from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal.appointments import AppointmentFields
from crmsync.dal.calendars import CalendarStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mirror import MirrorStore
from crmsync.dal.settings import SettingsStore
from crmsync.domain import (
    AppointmentStatus,
    CalendarRef,
    Connection,
    CredentialKind,
    ExternalDeletion,
    Principal,
    StoredConnection,
    SyncDirection,
    SyncPreferences,
)
from crmsync.errors import BookingConflict, Conflict, NotFound, ProviderError
from crmsync.guard import Decision, DeletionThreshold
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.messaging.messages import CalendarSyncRequest
from crmsync.ports.accounts import CredentialPort
from crmsync.providers.graph.calendar import HORIZON, GraphCalendar
from crmsync.security.tokens import TokenCipher, TokenContext
from crmsync.sync.calendar_sync import CalendarSync
from devstack.microsoft.graph import Fault, GraphState
from tests.fakes.world import RecordingQueue
from tests.support import clock
from tests.support.convergence import assert_converged, deliver_round
from tests.support.graph_user import GraphServer, GraphUser

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("GRAPH_CONVERGENCE_EXAMPLES", "15"))
START = clock.days_ahead(5, 9)
HOURS = st.integers(min_value=0, max_value=40)
METHODS = st.sampled_from(["GET", "POST", "PATCH", "DELETE", ""])
WRITES = st.sampled_from(["POST", "PATCH", "DELETE", ""])
#: The delta route's path prefix (every calendar's: the faults are per mailbox anyway).
DELTA = "/v1.0/me/calendars/"


def when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


class AdapterClock:
    """The adapter's clock: the real one, or — once, after :meth:`roll` — a moment far enough
    ahead that the delta round's window has rolled (the adapter then asks for a new round;
    the engine's own clock never moves, so the new round's window is today's)."""

    def __init__(self) -> None:
        self.jump = False

    def roll(self) -> None:
        self.jump = True

    def __call__(self) -> datetime:
        if self.jump:
            self.jump = False
            return clock.now() + HORIZON
        return clock.now()


class GraphWorld:
    """One CRM user (this test's DynamoDB Local tables) whose linked calendar is a fresh
    Outlook mailbox's default calendar on the Graph emulator."""

    def __init__(self, server: GraphServer, service_env: dict[str, str], recorded: RecordingQueue) -> None:
        graph = Graph(Settings.from_env(service_env))  # binds this test's tables
        self.server, self.state, self.recorded = server, server.state, recorded
        self.user = GraphUser(server)
        self.email = self.user.email
        self.calendar_id = self.user.calendar_id
        self.adapter_clock = AdapterClock()
        self.principal = Principal(f"tenant-{uuid.uuid4().hex[:10]}", "alice")
        self.connection = f"microsoft-{uuid.uuid4().hex[:12]}"
        cipher = TokenCipher(graph.settings.token_key_id)
        context = TokenContext(self.principal.tenant_id, self.principal.user_id, self.connection)
        ConnectionStore().upsert(
            self.principal,
            connection_id=self.connection,
            provider="microsoft",
            subject=f"tid.{uuid.uuid4().hex[:8]}",
            email=self.email,
            display_name=None,
            scopes=("Calendars.ReadWrite",),
            credential_ciphertext=cipher.encrypt("{}", context),
        )
        connectors = Connectors(
            cipher,
            {
                "microsoft": ProviderKit(
                    credential_kinds=frozenset({CredentialKind.OAUTH_TOKENS}),
                    credential=_no_credential,
                    calendar=self._calendar,
                )
            },
        )
        self.appointments = Appointments(
            store=graph.appointment_store,
            settings=graph.settings_store,
            connections=graph.connection_store,
            calendars=connectors,
            queue=recorded,
            created=MirrorStore().record_unlisted,  # as the composition root wires it
        )
        self.calendars = Calendars(
            connections=ConnectionStore(), calendars=CalendarStore(), access=connectors, queue=recorded
        )
        self.calendars.refresh(self.principal, self.connection)
        self.settings = CalendarSettingsService(
            connections=ConnectionStore(),
            calendars=CalendarStore(),
            settings=SettingsStore(),
            on_linked=self.appointments.enqueue_pending,
        )
        self.settings.link(self.principal, CalendarRef(self.connection, self.calendar_id))
        self.sync = CalendarSync(
            connections=ConnectionStore(),
            settings=SettingsStore(),
            mirror=MirrorStore(),
            calendars=connectors,
            inbound=self.appointments.absorb,
            # The guard on, with a threshold these few events reach (as in the Google machine).
            threshold=DeletionThreshold(share=0.5, minimum=2),
            linked=self.appointments.linked_event_ids,
            keep=self.appointments.keep,
        )
        self.run_sync()

    def _calendar(self, secret: str, stored: StoredConnection) -> GraphCalendar:
        """The production adapter; small pages, so rounds span several."""
        return GraphCalendar(
            self.server.base_url,
            lambda: self.user.token,
            tenant_id=stored.connection.tenant_id,
            page_size=3,
            clock=self.adapter_clock,
        )

    def run_sync(self) -> Any:
        return self.sync.run(self.principal, self.connection, self.calendar_id)

    def deliver(self, message: Any) -> None:
        if isinstance(message, CalendarSyncRequest):
            self.sync.run(Principal(message.tenant_id, message.user_id), message.connection_id, message.calendar_id)
        else:
            self.appointments.push(message)

    def listed(self) -> list[Any]:
        return self.appointments.between(self.principal, None, None)

    def fault(self, kind: str, *, method: str = "", path: str = "", count: int = 1) -> None:
        self.state.faults.add(Fault(kind, method=method, path=path, email=self.email, count=count, retry_after=1))

    def clear_faults(self) -> None:
        """This mailbox's faults only: the server is the module's."""
        self.state.faults.clear(self.email)

    def instances(self) -> list[Any]:
        """The calendarView as the test reads it itself (series expanded), straight from the
        mailbox, never through the adapter under test."""
        return self.state.instances(
            self.email, self.calendar_id, clock.now() - timedelta(days=30), clock.now() + timedelta(days=700)
        )


def _no_credential(secret: str, connection: Connection) -> CredentialPort:
    raise AssertionError("the machine never checks the connection's health")


def make_machine(server: GraphServer, service_env: dict[str, str], recorded: RecordingQueue) -> type:
    class TwoWayOverGraph(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.world: GraphWorld | None = None
            self.backlog: list[Any] = []
            self.policy = ExternalDeletion.CANCEL
            self.deleted_twins: set[str] = set()
            self.crm_cancelled: set[str] = set()
            #: Meetings the Outlook user received (their organizer may cancel them).
            self.meetings: set[str] = set()
            #: Events whose organizer cancelled them: a CRM change cannot undo that.
            self.cancelled: set[str] = set()
            #: Appointments and Outlook events (masters) in the order the run made them: a
            #: rule's ``pick`` indexes lists in this order, never in the order of their random
            #: ids, so a replayed example picks the same things.
            self.seq: dict[str, int] = {}

        @property
        def w(self) -> GraphWorld:
            assert self.world is not None
            return self.world

        @initialize(
            policy=st.sampled_from(list(ExternalDeletion)),
            series_at=st.none() | HOURS,
            booked=st.lists(HOURS, max_size=2),
            outlook=st.lists(HOURS, max_size=2),
        )
        def connect(
            self, policy: ExternalDeletion, series_at: int | None, booked: list[int], outlook: list[int]
        ) -> None:
            """A linked calendar already in step with the CRM: a few appointments pushed, a
            few Outlook events and, in half the runs, a weekly series imported — so the
            rules' moves, cancellations and deletions meet the faults and races below from
            the first step on."""
            recorded.take()
            self.world = GraphWorld(server, service_env, recorded)
            self.policy = policy
            self.w.settings.set_preferences(self.w.principal, SyncPreferences(SyncDirection.TWO_WAY, policy))
            if series_at is not None:
                self.outlook_creates_a_series(series_at, moved=False, deleted=False)
            for hour in outlook:
                self.outlook_creates(hour, kind="busy")
            for hour in booked:
                self._book(hour, 1, "queued")
            self.worker_runs(duplicate=False, interrupt=False)

        # ------------------------------------------------------------ stable orders
        def _note(self, key: str) -> None:
            self.seq.setdefault(key, len(self.seq))

        def _rank_event(self, event: Any) -> tuple[Any, ...]:
            """An instance: the Outlook user's in the order made (an occurrence after its
            series, by date); the CRM's in the order of its appointment."""
            key = event.series_master_id or event.id
            if key not in self.seq and event.transaction_id:
                key = event.transaction_id.split(".")[1]
            if key in self.seq:
                return (self.seq[key], event.id)
            return (len(self.seq) + 1_000_000, event.id)

        def _rank(self, appointment: Any) -> tuple[Any, ...]:
            if appointment.appointment_id in self.seq:
                return (self.seq[appointment.appointment_id],)
            return (len(self.seq) + 1_000_000, appointment.appointment_id)

        def _instances(self, *, timed: bool = True) -> list[Any]:
            found = [e for e in self.w.instances() if not e.is_cancelled and not (timed and e.is_all_day)]
            return sorted(found, key=self._rank_event)

        @invariant()
        def appointments_made_by_syncs_are_noted(self) -> None:
            """Appointments a sync made from Outlook's events take their place in the order
            after their event."""
            if self.world is None:
                return
            ranks = {e.id: self._rank_event(e) for e in self.w.instances()}
            new = [a for a in self.w.listed() if a.appointment_id not in self.seq]
            for appointment in sorted(new, key=lambda a: self._by_event(a, ranks)):
                self._note(appointment.appointment_id)

        @staticmethod
        def _by_event(appointment: Any, ranks: dict[str, tuple[Any, ...]]) -> tuple[Any, ...]:
            if appointment.link is None or appointment.link.event_id not in ranks:
                return (3_000_000, appointment.appointment_id)
            return ranks[appointment.link.event_id]

        # ------------------------------------------------------------ the CRM user
        def _live(self) -> list[Any]:
            live = [a for a in self.w.listed() if a.status is AppointmentStatus.CONFIRMED]
            return sorted(live, key=self._rank)

        @rule(
            hour=HOURS,
            length=st.integers(min_value=1, max_value=3),
            then=st.sampled_from(["queued", "pushed", "lost"]),
        )
        def crm_books(self, hour: int, length: int, then: str) -> None:
            self._book(hour, length, then)

        def _book(self, hour: int, length: int, then: str) -> Any:
            """``then``: the push waits in the queue, or a worker takes it at once — and
            Graph applies it but its answer is lost (``lost``: the message stays queued)."""
            start = START + timedelta(hours=hour)
            try:
                made = self.w.appointments.create(
                    self.w.principal, AppointmentFields("crm", start, start + timedelta(hours=length), "UTC")
                )
            except BookingConflict:
                return None
            self._note(made.appointment_id)
            if then == "queued":
                return made
            if then == "lost":
                self.w.fault("lost_answer", method="POST")
            messages = recorded.take()
            mine = [m for m in messages if getattr(m, "appointment_id", None) == made.appointment_id]
            others = [m for m in messages if m not in mine]
            self.backlog += others + deliver_round(
                mine, self.w.deliver, duplicate=False, reorder=False, interrupt=False
            )
            return made

        @rule(hour=HOURS, later=HOURS, cancel=st.booleans())
        def crm_changes_its_mind(self, hour: int, later: int, cancel: bool) -> None:
            """A booking's push reaches Graph, which makes the event but whose answer is
            lost; before the retry, the CRM user moves or cancels the appointment."""
            made = self._book(hour, 1, "lost")
            if made is None:
                return
            if cancel:
                self._cancel(made)
            else:
                self._move(made, later)

        @rule(pick=st.integers(min_value=0), hour=HOURS, cancel=st.booleans(), in_flight=st.booleans())
        def crm_changes(self, pick: int, hour: int, cancel: bool, in_flight: bool) -> None:
            """Moves or cancels an appointment (``in_flight``: preferably one whose latest
            change is not in the calendar yet, so the change races the retry)."""
            live = self._live()
            if in_flight:
                live = [a for a in live if a.pushed_revision < a.revision] or live
            if not live:
                return
            target = live[pick % len(live)]
            if cancel:
                self._cancel(target)
            else:
                self._move(target, hour)

        def _move(self, target: Any, hour: int) -> None:
            start = START + timedelta(hours=hour)
            with contextlib.suppress(BookingConflict, Conflict):
                self.w.appointments.change(
                    self.w.principal, target.appointment_id, start=start, end=start + timedelta(hours=1)
                )
                # Moved in the CRM after Outlook's user deleted its event, before a sync saw
                # the deletion: the CRM's pending change wins and puts the event back (A4).
                # A meeting its organizer cancelled stays cancelled whatever we write into it.
                if not (target.link and target.link.event_id in self.cancelled):
                    self.deleted_twins.discard(target.appointment_id)

        def _cancel(self, target: Any) -> None:
            self.crm_cancelled.add(target.appointment_id)
            self.w.appointments.cancel(self.w.principal, target.appointment_id)

        # ------------------------------------------------------------ the Outlook user
        @rule(hour=HOURS, kind=st.sampled_from(["busy", "free", "meeting", "declined", "all_day"]))
        def outlook_creates(self, hour: int, kind: str) -> None:
            """A timed event, shown busy or free (free still becomes an appointment, and
            blocks no time); someone else's meeting, accepted or declined (its organizer may
            cancel it); or an all-day event (it blocks its days, and is no appointment)."""
            start = START + timedelta(hours=hour)
            if kind == "all_day":
                day = start.date()
                made = self.w.user.create(
                    {
                        "subject": "all day",
                        "isAllDay": True,
                        "start": {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": "UTC"},
                        "end": {"dateTime": f"{(day + timedelta(days=1)).isoformat()}T00:00:00", "timeZone": "UTC"},
                    }
                )
            elif kind in ("meeting", "declined"):
                response = {"response": "declined" if kind == "declined" else "accepted"}
                made = self.w.user.add("meeting", start, start + timedelta(hours=1), responseStatus=response)
                self.meetings.add(made)
            else:
                made = self.w.user.add("outlook", start, start + timedelta(hours=1), showAs=kind)
            self._note(made)

        @rule(hour=HOURS, moved=st.booleans(), deleted=st.booleans())
        def outlook_creates_a_series(self, hour: int, moved: bool, deleted: bool) -> None:
            """Three weekly occurrences; the second moved two hours later (an exception)
            and/or the third deleted, as Outlook does them."""
            first = START + timedelta(hours=hour)
            master = self.w.user.create(
                {
                    "subject": "series",
                    "start": when(first),
                    "end": when(first + timedelta(hours=1)),
                    "recurrence": {
                        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [first.strftime("%A").lower()]},
                        "range": {"type": "numbered", "startDate": first.date().isoformat(), "numberOfOccurrences": 3},
                    },
                }
            )
            self._note(master)
            occurrences = sorted(
                (e for e in self.w.instances() if e.series_master_id == master), key=lambda e: e.starts_at()
            )
            if moved:
                second = occurrences[1].starts_at() + timedelta(hours=2)
                self.w.user.move(occurrences[1].id, second, second + timedelta(hours=1))
            if deleted:
                self.w.user.delete(occurrences[2].id)

        @rule(pick=st.integers(min_value=0), hour=HOURS)
        def outlook_moves(self, pick: int, hour: int) -> None:
            events = self._instances()
            if events:
                start = START + timedelta(hours=hour)
                self.w.user.move(events[pick % len(events)].id, start, start + timedelta(hours=1))

        @rule(pick=st.integers(min_value=0), whole_series=st.booleans())
        def outlook_deletes(self, pick: int, whole_series: bool) -> None:
            """Deletes any event, one a delta round has listed or one our push made since the
            last round (which no round ever reports deleted: the sync asks for such events)."""
            events = self._instances(timed=False)
            if not events:
                return
            chosen = events[pick % len(events)]
            target = chosen.series_master_id if whole_series and chosen.series_master_id else chosen.id
            gone = {e.id for e in self.w.instances() if target in (e.id, e.series_master_id)}
            # An appointment whose CRM change is still on its way is not cancelled: the CRM
            # wins and its push puts the event back (docs/API.md, F6).
            self.deleted_twins |= {
                a.appointment_id
                for a in self.w.listed()
                if a.link and a.link.event_id in gone and a.pushed_revision >= a.revision
            }
            self.w.user.delete(target)

        @rule(pick=st.integers(min_value=0))
        def organizer_cancels_a_meeting(self, pick: int) -> None:
            """The meeting stays in the calendar with ``isCancelled``: a deletion for the sync,
            which no CRM change undoes (we cannot un-cancel someone else's meeting)."""
            meetings = [e for e in self._instances() if e.id in self.meetings]
            if not meetings:
                return
            chosen = meetings[pick % len(meetings)].id
            self.deleted_twins |= {a.appointment_id for a in self.w.listed() if a.link and a.link.event_id == chosen}
            self.cancelled.add(chosen)
            self.w.user.cancel(chosen)

        # ------------------------------------------------------------ Graph
        @rule(
            kind=st.sampled_from(["throttled_429", "unavailable_503", "internal_500"]),
            method=METHODS,
            count=st.integers(1, 2),
        )
        def graph_fails(self, kind: str, method: str, count: int) -> None:
            """429 and 503 come with Retry-After."""
            self.w.fault(kind, method=method, count=count)

        @rule(kind=st.sampled_from(["gone", "sync_state_not_found", "resync_required", "forgotten", "rolled"]))
        def sync_resets(self, kind: str) -> None:
            """The next delta request: 410 with a Location, ``syncStateNotFound`` or
            ``resyncRequired`` (delta-query-overview's "synchronization reset"); Graph forgot
            the delta tokens (``forgotten``); the round's window rolled (``rolled``)."""
            if kind == "forgotten":
                self.w.user.invalidate_cursors()
            elif kind == "rolled":
                self.w.adapter_clock.roll()
            else:
                self.w.fault(kind, method="GET", path=DELTA)

        @rule(kind=st.sampled_from(["lost_answer", "precondition_failed"]), method=WRITES, count=st.integers(1, 2))
        def writes_fail(self, kind: str, method: str, count: int) -> None:
            """The next writes: Graph applies them and the answer is lost (a 504), or they
            meet someone else's change of the event (a 412)."""
            if kind == "precondition_failed" and method in ("", "POST"):
                method = "PATCH"  # a create changes nothing that exists
            self.w.fault(kind, method=method, count=count)

        # ------------------------------------------------------------ the mass-deletion guard
        @rule()
        def user_applies_held_deletions(self) -> None:
            with contextlib.suppress(NotFound, Conflict):
                self.w.calendars.decide_deletions(
                    self.w.principal, self.w.connection, self.w.calendar_id, Decision.APPLY
                )

        @rule(duplicate=st.booleans(), interrupt=st.booleans(), reorder=st.booleans(), lost=st.booleans())
        def worker_runs(self, duplicate: bool, interrupt: bool, reorder: bool = False, lost: bool = False) -> None:
            """One delivery round then a poll, as in the Google machine; ``lost``: the
            round's first create is applied by Graph and its answer lost."""
            if lost:
                self.w.fault("lost_answer", method="POST")
            messages = self.backlog + recorded.take()
            self.backlog = deliver_round(
                messages, self.w.deliver, duplicate=duplicate, reorder=reorder, interrupt=interrupt
            )
            if interrupt and messages:
                return
            self.poll()

        @rule()
        def poll(self) -> None:
            with contextlib.suppress(ProviderError, Conflict):  # the next poll syncs again
                self.w.run_sync()

        # ------------------------------------------------------------ the promise
        def teardown(self) -> None:
            if self.world is None:
                return
            self.w.clear_faults()
            self.w.adapter_clock.jump = False
            for _ in range(6):
                self.user_applies_held_deletions()
                self.worker_runs(duplicate=False, interrupt=False)
                if not self.backlog and not recorded.sent and not self._held():
                    break
            self.w.run_sync()
            for _ in range(3):
                self.user_applies_held_deletions()
                self.worker_runs(duplicate=False, interrupt=False)
            assert not self._held(), "deletions still wait for the user after Apply"
            timed = {e.id: (e.starts_at(), e.ends_at()) for e in self._instances()}
            assert_converged(
                self.w.listed(),
                timed,
                policy=self.policy,
                deleted_twins=self.deleted_twins,
                crm_cancelled=self.crm_cancelled,
            )

        def _held(self) -> bool:
            return any(s.pending_deletions is not None for s in self.w.calendars.with_status(self.w.principal))

        @invariant()
        def no_appointment_is_linked_twice(self) -> None:
            if self.world is not None:
                linked = [a.link.event_id for a in self.w.listed() if a.link]
                assert len(linked) == len(set(linked))

    return TwoWayOverGraph


@pytest.fixture(scope="module")
def graph_server() -> Iterator[GraphServer]:
    """The emulator for this module; every example has a mailbox of its own."""
    with GraphServer(GraphState()) as server:
        yield server


def test_crm_and_an_outlook_calendar_converge(
    graph_server: GraphServer, service_env: dict[str, str], recorded: RecordingQueue
) -> None:
    run_state_machine_as_test(
        make_machine(graph_server, service_env, recorded),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def test_an_event_deleted_in_outlook_before_a_delta_round_listed_it_cancels_its_appointment(
    graph_server: GraphServer, service_env: dict[str, str], recorded: RecordingQueue
) -> None:
    """The case the machine found, on the production stores (DynamoDB Local): our push creates
    the event after the last round, the Outlook user deletes it before the next; that round
    reports nothing, and the sync's check of the events no round has listed cancels the
    appointment, and what was recorded for the check is settled."""
    recorded.take()
    w = GraphWorld(graph_server, service_env, recorded)
    made = w.appointments.create(w.principal, AppointmentFields("crm", START, START + timedelta(hours=1), "UTC"))
    for message in recorded.take():
        w.deliver(message)  # the push only: no round runs after it
    (event,) = w.user.events()
    w.user.delete(event.id)

    w.run_sync()

    after = w.appointments.get(w.principal, made.appointment_id)
    assert (after.status, after.link) == (AppointmentStatus.CANCELLED, None)
    assert not MirrorStore().sync_inputs(w.principal, w.connection, w.calendar_id).unlisted
