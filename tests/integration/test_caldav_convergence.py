"""Property (issue 15): the convergence of the Google machine (test_sync_convergence.py), over
CalDAV. Whatever the CRM user and the calendar app's user do — single events, a weekly series
with a moved occurrence or an EXDATE, all-day events — in any order, with 412s on writes,
503/500s, invalid sync tokens (403, and iCloud's 412 form), 507-truncated sync reports,
multigets that leave members out or fail when large, writes whose answer is lost after the
server applied them, and with a random set of iCloud's
quirks on for the account: once the faults stop and the queue drains, the CRM and the linked
calendar agree (F6) — no event twice for one appointment, nothing lost.

Real parts only: DynamoDB Local, Radicale behind the iCloud fault layer, the production
adapter, the production sync engine and appointments. ``CALDAV_CONVERGENCE_EXAMPLES`` runs more
examples (docs/TESTING.md)."""

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
    ExternalDeletion,
    Principal,
    SyncDirection,
    SyncPreferences,
)
from crmsync.errors import BookingConflict, Conflict, NotFound, ProviderError
from crmsync.guard import Decision, DeletionThreshold
from crmsync.logic.appointments import Appointments
from crmsync.logic.calendar_settings import CalendarSettingsService
from crmsync.logic.calendars import Calendars
from crmsync.messaging.messages import CalendarSyncRequest
from crmsync.ports.calendar import resource_of
from crmsync.sync.calendar_sync import CalendarSync
from devstack.caldav import CalDavServer
from devstack.caldav.faults import QUIRKS, Fault
from tests.fakes.world import RecordingQueue
from tests.support import clock
from tests.support.caldav_user import CalDavUser, single
from tests.support.convergence import assert_converged, deliver_round

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CALDAV_CONVERGENCE_EXAMPLES", "15"))
START = clock.days_ahead(5, 9)
HOURS = st.integers(min_value=0, max_value=40)
METHODS = st.sampled_from(["PUT", "DELETE", "REPORT", "GET", ""])
WRITES = st.sampled_from(["PUT", "DELETE", ""])


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def weekly(uid: str, first: datetime, *, moved: bool, exdate: bool) -> str:
    """Three weekly occurrences; the second moved two hours later (a RECURRENCE-ID
    exception) and/or the third taken out (an EXDATE), as a calendar app writes them."""
    extra = f"EXDATE:{z(first + timedelta(weeks=2))}\r\n" if exdate else ""
    ics = single(uid, "series", first, first + timedelta(hours=1), extra="RRULE:FREQ=WEEKLY;COUNT=3\r\n" + extra)
    if moved:
        original = first + timedelta(weeks=1)
        exception = single(
            uid,
            "series (moved)",
            original + timedelta(hours=2),
            original + timedelta(hours=3),
            extra=f"RECURRENCE-ID:{z(original)}\r\n",
        )
        vevent = exception[exception.index("BEGIN:VEVENT") : exception.index("END:VCALENDAR")]
        ics = ics.replace("END:VCALENDAR\r\n", vevent + "END:VCALENDAR\r\n")
    return ics


def all_day(uid: str, day: datetime) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{z(day)}\r\nDTSTART;VALUE=DATE:{day:%Y%m%d}\r\n"
        f"DTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}\r\nSUMMARY:all day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class DavWorld:
    """One CRM user (DynamoDB Local tables) whose linked calendar is a Radicale account with
    ``quirks`` on, connected through the production iCloud connect flow."""

    def __init__(
        self, server: CalDavServer, service_env: dict[str, str], recorded: RecordingQueue, quirks: list[str]
    ) -> None:
        base = Settings.from_env(service_env)
        caldav = base.caldav.model_copy(update={"base_url": server.base_url, "private_servers": True})
        graph = Graph(base.model_copy(update={"caldav": caldav}))
        self.server, self.layer, self.recorded = server, server.layer, recorded
        self.user = CalDavUser(server)
        self.email = self.user.email
        self.layer.set_quirks(self.email, quirks)
        if "partition_host" in quirks:
            self.user.rebase(server.partition_url)
        self.principal = Principal(f"tenant-{uuid.uuid4().hex[:10]}", "alice")
        connectors = graph.connectors
        self.appointments = Appointments(
            store=graph.appointment_store,
            settings=graph.settings_store,
            connections=graph.connection_store,
            calendars=connectors,
            queue=recorded,
            created=graph.mirror_store.record_unlisted,  # as the composition root wires it
        )
        connection = graph.integrations.connect_with_password(
            "icloud", self.principal, username=self.email, password=self.user.password
        )
        self.connection = connection.connection_id
        self.calendars = Calendars(
            connections=ConnectionStore(), calendars=CalendarStore(), access=connectors, queue=recorded
        )
        self.calendars.refresh(self.principal, self.connection)
        stored = graph.connection_store.get_stored(self.principal, self.connection)
        assert stored is not None
        [self.calendar_id] = [c.calendar_id for c in connectors.calendar(stored).list_calendars() if c.primary]
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

    def run_sync(self) -> Any:
        return self.sync.run(self.principal, self.connection, self.calendar_id)

    def deliver(self, message: Any) -> None:
        if isinstance(message, CalendarSyncRequest):
            self.sync.run(Principal(message.tenant_id, message.user_id), message.connection_id, message.calendar_id)
        else:
            self.appointments.push(message)

    def listed(self) -> list[Any]:
        return self.appointments.between(self.principal, None, None)

    @contextlib.contextmanager
    def as_calendar_app(self) -> Iterator[CalDavUser]:
        """The calendar app's own requests: faults armed for the sync are not theirs (the
        layer matches faults per account, and the app shares the sync's account)."""
        mine = [f for f in self.layer.faults() if f["email"] == self.email]
        self.layer.clear_faults(self.email)
        try:
            yield self.user
        finally:
            for fault in mine:
                self.layer.add_fault(Fault(**fault))

    def instances(self) -> dict[str, tuple[datetime, datetime] | None]:
        with self.as_calendar_app() as app:
            return app.instances(clock.now() - timedelta(days=30), clock.now() + timedelta(days=700))


def make_machine(server: CalDavServer, service_env: dict[str, str], recorded: RecordingQueue) -> type:
    class TwoWayOverCalDav(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.world: DavWorld | None = None
            self.backlog: list[Any] = []
            self.policy = ExternalDeletion.CANCEL
            self.deleted_twins: set[str] = set()
            self.crm_cancelled: set[str] = set()
            #: Resources the calendar app made that are not single timed events.
            self.special: set[str] = set()
            #: Of those, the timed weekly series: the CRM may move or cancel their occurrences
            #: (an override or an EXDATE in the series). All-day series are refused for good.
            self.series: set[str] = set()
            #: Appointments and resources in the order the run made them: a rule's ``pick``
            #: indexes lists in this order, never in the order of their random ids, so a
            #: replayed example picks the same things.
            self.seq: dict[str, int] = {}

        @property
        def w(self) -> DavWorld:
            assert self.world is not None
            return self.world

        @initialize(
            policy=st.sampled_from(list(ExternalDeletion)),
            quirks=st.lists(st.sampled_from(QUIRKS), unique=True, max_size=4),
            series_at=st.none() | HOURS,
        )
        def connect(self, policy: ExternalDeletion, quirks: list[str], series_at: int | None) -> None:
            recorded.take()
            self.world = DavWorld(server, service_env, recorded, sorted(quirks))
            self.policy = policy
            self.w.settings.set_preferences(self.w.principal, SyncPreferences(SyncDirection.TWO_WAY, policy))
            if series_at is not None:
                # Half the runs start with a weekly series already imported, so the CRM's
                # changes to its occurrences meet the faults and races below.
                self.app_creates_a_series(series_at, moved=False, exdate=False)
                self.poll()

        # ------------------------------------------------------------ stable orders
        def _note(self, key: str) -> None:
            self.seq.setdefault(key.lower(), len(self.seq))

        def _rank_name(self, name: str) -> tuple[int, str]:
            """A resource: the calendar app's in the order made; the CRM's (``crm<id>.ics``)
            in the order of its appointment."""
            key = name.lower().removesuffix(".ics")
            for candidate in (name.lower(), key.removeprefix("crm")):
                if candidate in self.seq:
                    return (self.seq[candidate], "")
            return (len(self.seq) + 1_000_000, name)

        def _rank(self, appointment: Any) -> tuple[Any, ...]:
            if appointment.appointment_id.lower() in self.seq:
                return (self.seq[appointment.appointment_id.lower()],)
            return (len(self.seq) + 1_000_000, appointment.appointment_id)

        def _names(self, app: CalDavUser) -> list[str]:
            return sorted(app.names(), key=self._rank_name)

        @invariant()
        def appointments_made_by_syncs_are_noted(self) -> None:
            """Appointments a sync made from the calendar's events take their place in the
            order after their event's resource (and occurrence)."""
            if self.world is None:
                return
            new = [a for a in self.w.listed() if a.appointment_id.lower() not in self.seq]
            for appointment in sorted(new, key=self._by_event):
                self._note(appointment.appointment_id)

        def _by_event(self, appointment: Any) -> tuple[Any, ...]:
            if appointment.link is None:
                return (2_000_000, appointment.appointment_id)
            return (self._rank_name(resource_of(appointment.link.event_id)), appointment.link.event_id)

        # ------------------------------------------------------------ the CRM user
        def _movable(self) -> list[Any]:
            """Confirmed appointments the CRM may change: its own, single events, and
            occurrences of the calendar app's timed series (written as overrides)."""
            live = [
                a
                for a in self.w.listed()
                if a.status is AppointmentStatus.CONFIRMED
                and (
                    a.link is None
                    or resource_of(a.link.event_id) == a.link.event_id
                    or resource_of(a.link.event_id) in self.series
                )
            ]
            return sorted(live, key=self._rank)

        @rule(hour=HOURS, length=st.integers(min_value=1, max_value=3))
        def crm_books(self, hour: int, length: int) -> None:
            start = START + timedelta(hours=hour)
            with contextlib.suppress(BookingConflict):
                made = self.w.appointments.create(
                    self.w.principal, AppointmentFields("crm", start, start + timedelta(hours=length), "UTC")
                )
                self._note(made.appointment_id)

        @rule(pick=st.integers(min_value=0), hour=HOURS)
        def crm_moves(self, pick: int, hour: int) -> None:
            live = self._movable()
            if live:
                self._move(live[pick % len(live)], hour)

        @rule(pick=st.integers(min_value=0))
        def crm_cancels(self, pick: int) -> None:
            live = self._movable()
            if live:
                self._cancel(live[pick % len(live)])

        @rule(pick=st.integers(min_value=0), hour=HOURS, cancel=st.booleans())
        def crm_changes_an_occurrence(self, pick: int, hour: int, cancel: bool) -> None:
            """One occurrence of the calendar app's series (rarely reached by the rules above:
            a series must be made and imported first). The adapter writes an override or an
            EXDATE into the series' resource."""
            live = [a for a in self._movable() if a.link and resource_of(a.link.event_id) != a.link.event_id]
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
                self.deleted_twins.discard(target.appointment_id)

        def _cancel(self, target: Any) -> None:
            self.crm_cancelled.add(target.appointment_id)
            self.w.appointments.cancel(self.w.principal, target.appointment_id)

        # ------------------------------------------------------------ the calendar app's user
        @rule(hour=HOURS)
        def app_creates(self, hour: int) -> None:
            start = START + timedelta(hours=hour)
            with self.w.as_calendar_app() as app:
                self._note(app.add("dav", start, start + timedelta(hours=1)))

        @rule(hour=HOURS, moved=st.booleans(), exdate=st.booleans())
        def app_creates_a_series(self, hour: int, moved: bool, exdate: bool) -> None:
            uid = uuid.uuid4().hex.upper()
            with self.w.as_calendar_app() as app:
                app.put(f"{uid}.ics", weekly(uid, START + timedelta(hours=hour), moved=moved, exdate=exdate))
            self.special.add(f"{uid}.ics")
            self.series.add(f"{uid}.ics")
            self._note(f"{uid}.ics")

        @rule(days=st.integers(min_value=0, max_value=3))
        def app_creates_an_all_day_event(self, days: int) -> None:
            uid = uuid.uuid4().hex.upper()
            with self.w.as_calendar_app() as app:
                app.put(f"{uid}.ics", all_day(uid, START + timedelta(days=days)))
            self.special.add(f"{uid}.ics")
            self._note(f"{uid}.ics")

        @rule(pick=st.integers(min_value=0), hour=HOURS)
        def app_moves(self, pick: int, hour: int) -> None:
            with self.w.as_calendar_app() as app:
                names = [n for n in self._names(app) if n not in self.special]
                if names:
                    start = START + timedelta(hours=hour)
                    app.move(names[pick % len(names)], start, start + timedelta(hours=1))

        @rule(pick=st.integers(min_value=0))
        def app_deletes(self, pick: int) -> None:
            with self.w.as_calendar_app() as app:
                names = self._names(app)
                if not names:
                    return
                name = names[pick % len(names)]
                # An appointment whose CRM change is still on its way is not cancelled: the
                # CRM wins and its push puts the event back (docs/API.md, F6).
                self.deleted_twins |= {
                    a.appointment_id
                    for a in self.w.listed()
                    if a.link and resource_of(a.link.event_id) == name and a.pushed_revision >= a.revision
                }
                app.delete(name)

        # ------------------------------------------------------------ the server
        @rule(kind=st.sampled_from(["lost_drop", "lost_504"]), method=WRITES, count=st.integers(1, 2))
        def answers_get_lost(self, kind: str, method: str, count: int) -> None:
            """The server applies the next writes, and their answer never arrives."""
            self.w.layer.add_fault(Fault(kind, email=self.w.email, method=method, count=count))

        @rule(method=WRITES, count=st.integers(1, 2))
        def someone_else_changed_it(self, method: str, count: int) -> None:
            self.w.layer.add_fault(Fault("precondition_412", email=self.w.email, method=method, count=count))

        @rule(kind=st.sampled_from(["unavailable_503", "server_error_500"]), method=METHODS, count=st.integers(1, 2))
        def server_fails(self, kind: str, method: str, count: int) -> None:
            self.w.layer.add_fault(Fault(kind, email=self.w.email, method=method, count=count))

        @rule(kind=st.sampled_from(["invalid_sync_token", "invalid_sync_token_412", "truncate_507"]))
        def sync_report_fails(self, kind: str) -> None:
            """The next sync-collection: the token refused (403, or iCloud's 412), or the
            answer truncated after one item (507)."""
            self.w.layer.add_fault(Fault(kind, email=self.w.email))

        @rule(kind=st.sampled_from(["multiget_lag", "multiget_too_large"]), limit=st.integers(1, 2))
        def icloud_is_not_consistent_yet(self, kind: str, limit: int) -> None:
            """The next multiget leaves ``limit`` existing members out, or fails above
            ``limit`` members (docs/PITFALLS.md J17)."""
            self.w.layer.add_fault(Fault(kind, email=self.w.email, limit=limit))

        # ------------------------------------------------------------ the mass-deletion guard
        @rule()
        def user_applies_held_deletions(self) -> None:
            with contextlib.suppress(NotFound, Conflict):
                self.w.calendars.decide_deletions(
                    self.w.principal, self.w.connection, self.w.calendar_id, Decision.APPLY
                )

        @rule(
            duplicate=st.booleans(),
            interrupt=st.booleans(),
            reorder=st.booleans(),
            lost=st.sampled_from(["", "lost_drop", "lost_504"]),
        )
        def worker_runs(self, duplicate: bool, interrupt: bool, reorder: bool = False, lost: str = "") -> None:
            """One delivery round then a poll, as in the Google machine; ``lost``: the
            round's first write is applied by the server and its answer lost."""
            if lost:
                self.w.layer.add_fault(Fault(lost, email=self.w.email, method="PUT"))
            messages = self.backlog + recorded.take()
            self.backlog = deliver_round(
                messages, self.w.deliver, duplicate=duplicate, reorder=reorder, interrupt=interrupt
            )
            if interrupt and messages:
                return
            with contextlib.suppress(ProviderError, Conflict):  # the next poll syncs again
                self.w.run_sync()

        @rule()
        def poll(self) -> None:
            with contextlib.suppress(ProviderError, Conflict):
                self.w.run_sync()

        # ------------------------------------------------------------ the promise
        def teardown(self) -> None:
            if self.world is None:
                return
            self.w.layer.clear_faults(self.w.email)
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
            self._assert_converged()

        def _held(self) -> bool:
            return any(s.pending_deletions is not None for s in self.w.calendars.with_status(self.w.principal))

        def _assert_converged(self) -> None:
            timed = {k: v for k, v in self.w.instances().items() if v is not None}  # all-day: busy only
            assert_converged(
                self.w.listed(),
                timed,
                policy=self.policy,
                deleted_twins=self.deleted_twins,
                crm_cancelled=self.crm_cancelled,
            )

        @invariant()
        def no_appointment_is_linked_twice(self) -> None:
            if self.world is not None:
                linked = [a.link.event_id for a in self.w.listed() if a.link]
                assert len(linked) == len(set(linked))

    return TwoWayOverCalDav


def test_crm_and_a_caldav_calendar_converge(
    caldav_server: CalDavServer, service_env: dict[str, str], recorded: RecordingQueue
) -> None:
    run_state_machine_as_test(
        make_machine(caldav_server, service_env, recorded),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def test_a_booking_whose_create_meets_412_twice_is_retried_not_given_up(
    caldav_server: CalDavServer, service_env: dict[str, str], recorded: RecordingQueue
) -> None:
    """An example the machine found in CI: the booking's PUT with If-None-Match
    answered 412, the GET found nothing, the second PUT 412 again. That was a permanent
    failure, so the appointment never reached the calendar; it is now retryable, and the next
    delivery creates it."""
    machine = make_machine(caldav_server, service_env, recorded)()
    machine.connect(policy=ExternalDeletion.UNLINK, quirks=[], series_at=None)
    machine.crm_books(hour=0, length=1)
    machine.someone_else_changed_it(count=2, method="PUT")
    machine.worker_runs(duplicate=False, interrupt=False)
    machine.teardown()
