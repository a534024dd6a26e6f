"""The store contract: every behaviour the calendar use cases rely on, run over the real
stores (DynamoDB Local, the production object graph) and over the in-memory fakes of
``tests/fakes/stores.py``, so the fakes provably behave like the stores."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

import pytest
from pynamodb.exceptions import PutError, UpdateError

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal import condition_failed
from crmsync.dal.appointments import AppointmentFields
from crmsync.dal.channels import Channel
from crmsync.dal.mirror import MAX_ERROR, SyncCursor, calendar_resource
from crmsync.domain import (
    MAX_APPOINTMENT_DURATION,
    AppointmentStatus,
    CalendarRef,
    CalendarSettings,
    ConnectionStatus,
    CredentialKind,
    EventLink,
    ExternalDeletion,
    ExternalEvent,
    PendingAuthorization,
    Principal,
    ProviderCalendar,
    SyncDirection,
    SyncPreferences,
)
from crmsync.errors import BookingConflict, Conflict, OAuthStateError
from crmsync.guard import Decision, GuardedResource, PendingDeletions
from tests.fakes.stores import FakeStores
from tests.support.clock import days_ahead, now

#: The real half needs DynamoDB Local (one Java per test worker); the fake half runs
#: anywhere, fast.
DYNAMODB = pytest.param("dynamodb", marks=[pytest.mark.integration])


@pytest.fixture(params=[DYNAMODB, "fake"])
def stores(request: pytest.FixtureRequest) -> Any:
    """The real stores (``Graph``) or the fakes (``FakeStores``): same attribute names."""
    if request.param == "fake":
        return FakeStores()
    return Graph(Settings.from_env(request.getfixturevalue("service_env")))


@pytest.fixture
def ada() -> Principal:
    return Principal("acme", f"ada-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def bob() -> Principal:
    return Principal("acme", f"bob-{uuid.uuid4().hex[:8]}")


def connect(stores: Any, principal: Principal, connection_id: str = "c1", **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "connection_id": connection_id,
        "provider": "google",
        "subject": f"sub-{connection_id}",
        "email": f"{connection_id}@example.test",
        "display_name": "Ada",
        "scopes": ("b", "a"),
        "credential_ciphertext": b"secret-1",
    }
    args.update(overrides)
    return stores.connection_store.upsert(principal, **args)


def event(event_id: str, start_hours: int = 1, **overrides: Any) -> ExternalEvent:
    start = days_ahead(3, 9) + timedelta(hours=start_hours)
    fields: dict[str, Any] = {
        "event_id": event_id,
        "cancelled": False,
        "start": start,
        "end": start + timedelta(hours=1),
        "start_date": None,
        "end_date": None,
        "transparent": False,
        "declined": False,
        "summary": f"event {event_id}",
        "etag": f'"{event_id}"',
        "crm_appointment_id": None,
    }
    fields.update(overrides)
    return ExternalEvent(**fields)


def fields(day: int, hour: int, hours: int = 1, title: str = "Visit") -> AppointmentFields:
    start = days_ahead(day, hour, zone="Europe/Paris")
    return AppointmentFields(
        title=title,
        start=start,
        end=start + timedelta(hours=hours),
        time_zone="Europe/Paris",
        contact_id="k1",
        attendees=("x@example.test",),
        location="Here",
        description="About",
    )


# --- connections ---------------------------------------------------------------------------


def test_a_new_connection_needs_a_credential_and_is_stored_at_version_1(stores: Any, ada: Principal) -> None:
    with pytest.raises(Conflict):
        connect(stores, ada, credential_ciphertext=None)
    assert stores.connection_store.get(ada, "c1") is None

    created = connect(stores, ada)

    assert created.scopes == ("a", "b")
    assert created.status is ConnectionStatus.CONNECTED
    assert created.status_reason is None
    assert created.credential_kind is CredentialKind.OAUTH_TOKENS
    assert stores.connection_store.get(ada, "c1") == created
    stored = stores.connection_store.get_stored(ada, "c1")
    assert (stored.connection, stored.credential_ciphertext, stored.version) == (created, b"secret-1", 1)


def test_connecting_again_keeps_the_credential_when_none_comes_and_refuses_another_account(
    stores: Any, ada: Principal
) -> None:
    first = connect(stores, ada)
    again = connect(stores, ada, email="new@example.test", display_name=None, credential_ciphertext=None)

    assert again.created_at == first.created_at
    assert (again.email, again.display_name) == ("new@example.test", None)
    stored = stores.connection_store.get_stored(ada, "c1")
    assert (stored.credential_ciphertext, stored.version) == (b"secret-1", 2)

    connect(stores, ada, credential_ciphertext=b"secret-2", credential_kind=CredentialKind.APP_PASSWORD)
    stored = stores.connection_store.get_stored(ada, "c1")
    assert (stored.credential_ciphertext, stored.connection.credential_kind, stored.version) == (
        b"secret-2",
        CredentialKind.APP_PASSWORD,
        3,
    )
    with pytest.raises(Conflict):
        connect(stores, ada, subject="someone-else")
    with pytest.raises(Conflict):
        connect(stores, ada, provider="microsoft")


def test_a_renewed_credential_is_stored_on_the_version_read_only(stores: Any, ada: Principal) -> None:
    """A token cache MSAL renewed during a sync replaces the stored one only if nothing wrote
    the connection since it was read: a newer write (another sync's renewal, the health check,
    a reconnect) stands."""
    connect(stores, ada)
    read = stores.connection_store.get_stored(ada, "c1")

    version = stores.connection_store.renew_credential(ada, "c1", b"secret-2", version=read.version)

    assert version == read.version + 1
    stored = stores.connection_store.get_stored(ada, "c1")
    assert (stored.credential_ciphertext, stored.version) == (b"secret-2", version)
    assert stored.connection.status is ConnectionStatus.CONNECTED
    # Another writer read the same version: its renewal is dropped, the first one stays.
    assert stores.connection_store.renew_credential(ada, "c1", b"secret-3", version=read.version) is None
    assert stores.connection_store.get_stored(ada, "c1").credential_ciphertext == b"secret-2"
    # On the version it wrote, the same writer renews again; a connection that is gone stays gone.
    assert stores.connection_store.renew_credential(ada, "c1", b"secret-4", version=version) == version + 1
    assert stores.connection_store.renew_credential(ada, "gone", b"secret-5", version=1) is None
    assert stores.connection_store.get(ada, "gone") is None


def test_oauth_connections_stored_as_polled_are_listed_for_the_calendar_poll(stores: Any, ada: Principal) -> None:
    """An OAuth connection stored ``polled`` (as Outlook's were before Graph subscriptions)
    is listed with the app-specific passwords' (always polled); Google's is not, and a
    reconnect that is no longer polled drops it."""
    connect(stores, ada, "m1", provider="microsoft", polled=True)
    connect(stores, ada, "g1", provider="google")
    connect(stores, ada, "i1", provider="icloud", credential_kind=CredentialKind.APP_PASSWORD)

    def listed() -> set[str]:
        providers = frozenset({"microsoft", "google", "icloud"})
        return {c for p, c, _ in stores.connection_store.of_providers(providers) if p == ada}

    assert listed() == {"m1", "i1"}
    connect(stores, ada, "m1", provider="microsoft", polled=False)
    assert listed() == {"i1"}


def test_set_status_applies_only_to_the_version_read(stores: Any, ada: Principal) -> None:
    connect(stores, ada)
    read = stores.connection_store.get_stored(ada, "c1")

    marked = stores.connection_store.set_status(
        ada, "c1", ConnectionStatus.NEEDS_REAUTH, "revoked", version=read.version
    )

    assert marked is not None
    assert (marked.status, marked.status_reason) == (ConnectionStatus.NEEDS_REAUTH, "revoked")
    assert stores.connection_store.get(ada, "c1") == marked
    assert stores.connection_store.get_stored(ada, "c1").version == read.version + 1
    # A check of the old version finishing late changes nothing.
    assert stores.connection_store.set_status(ada, "c1", ConnectionStatus.CONNECTED, None, version=read.version) is None
    assert stores.connection_store.get(ada, "c1") == marked
    # A reason left out is removed; a connection that is gone is not recreated.
    cleared = stores.connection_store.set_status(ada, "c1", ConnectionStatus.CONNECTED, None, version=read.version + 1)
    assert cleared is not None
    assert cleared.status_reason is None
    assert stores.connection_store.set_status(ada, "gone", ConnectionStatus.CONNECTED, None, version=1) is None
    assert stores.connection_store.get(ada, "gone") is None


def test_set_status_may_store_a_renewed_credential_with_it(stores: Any, ada: Principal) -> None:
    """A check that renewed the credential (Microsoft's token cache) stores it in the same
    conditional write; without one the stored credential stays."""
    connect(stores, ada)
    read = stores.connection_store.get_stored(ada, "c1")
    stores.connection_store.set_status(ada, "c1", ConnectionStatus.CONNECTED, None, version=read.version)
    kept = stores.connection_store.get_stored(ada, "c1")
    assert kept.credential_ciphertext == read.credential_ciphertext
    stores.connection_store.set_status(
        ada, "c1", ConnectionStatus.CONNECTED, None, version=kept.version, credential_ciphertext=b"renewed"
    )
    assert stores.connection_store.get_stored(ada, "c1").credential_ciphertext == b"renewed"
    # A late check of an old version stores nothing, its credential neither.
    stale = stores.connection_store.set_status(
        ada, "c1", ConnectionStatus.CONNECTED, None, version=kept.version, credential_ciphertext=b"stale"
    )
    assert stale is None
    assert stores.connection_store.get_stored(ada, "c1").credential_ciphertext == b"renewed"


def test_connections_belong_to_their_user(stores: Any, ada: Principal, bob: Principal) -> None:
    first = connect(stores, ada, "c1")
    second = connect(stores, ada, "c2")
    connect(stores, bob, "c9")

    assert stores.connection_store.list(ada) == [first, second]
    assert stores.connection_store.get(bob, "c1") is None
    assert stores.connection_store.get_stored(bob, "c1") is None
    assert stores.connection_store.delete(bob, "c1") is False
    assert stores.connection_store.get(ada, "bad#id") is None
    assert stores.connection_store.delete(ada, "bad#id") is False
    keys = set(stores.connection_store.all_keys())
    assert {(ada, "c1"), (ada, "c2"), (bob, "c9")} <= keys

    assert stores.connection_store.delete(ada, "c1") is True
    assert stores.connection_store.delete(ada, "c1") is False
    assert stores.connection_store.list(ada) == [second]
    with pytest.raises(ValueError, match="invalid user id"):
        stores.connection_store.list(Principal("acme", "not a valid id"))


# --- settings ------------------------------------------------------------------------------


def test_settings_default_then_round_trip_per_user(stores: Any, ada: Principal, bob: Principal) -> None:
    assert stores.settings_store.get(ada) == CalendarSettings(linked=None, preferences=SyncPreferences())
    chosen = CalendarSettings(
        linked=CalendarRef("c1", "primary@example.test"),
        preferences=SyncPreferences(SyncDirection.CRM_TO_CALENDAR, ExternalDeletion.UNLINK, 7, 90),
    )

    assert stores.settings_store.save(ada, chosen) == chosen

    assert stores.settings_store.get(ada) == chosen
    assert stores.settings_store.get(bob).linked is None
    stores.settings_store.save(ada, replace(chosen, linked=None))
    assert stores.settings_store.get(ada) == replace(chosen, linked=None)


# --- calendars -----------------------------------------------------------------------------


def provider_calendar(calendar_id: str, primary: bool = False, name: str | None = None) -> ProviderCalendar:
    return ProviderCalendar(calendar_id, name or calendar_id, "owner", primary, "#123456", "Europe/Paris")


def test_replacing_a_connections_calendars_keeps_the_users_choices(stores: Any, ada: Principal, bob: Principal) -> None:
    listed = stores.calendar_store.replace_for_connection(
        ada, "c1", "ada@example.test", [provider_calendar("work"), provider_calendar("ada", primary=True)]
    )
    assert [(c.calendar_id, c.conflict, c.primary) for c in listed] == [("ada", True, True), ("work", False, False)]
    assert listed[0].account_email == "ada@example.test"

    chosen = stores.calendar_store.set_conflict(ada, {("c1", "work"), ("c1", "unknown")})
    assert [(c.calendar_id, c.conflict) for c in chosen] == [("ada", False), ("work", True)]

    stores.calendar_store.replace_for_connection(ada, "c2", "ada2@example.test", [provider_calendar("x", True)])
    again = stores.calendar_store.replace_for_connection(
        ada, "c1", "ada@example.test", [provider_calendar("work", name="Work"), provider_calendar("new")]
    )
    assert [(c.calendar_id, c.name, c.conflict) for c in again] == [("new", "new", False), ("work", "Work", True)]
    assert [(c.connection_id, c.calendar_id) for c in stores.calendar_store.of_user(ada)] == [
        ("c1", "new"),
        ("c1", "work"),
        ("c2", "x"),
    ]
    assert stores.calendar_store.of_user(bob) == []

    stores.calendar_store.delete_for_connection(ada, "c1")
    assert [c.calendar_id for c in stores.calendar_store.of_user(ada)] == ["x"]
    assert stores.calendar_store.of_user(ada, "c1") == []


# --- held deletions ------------------------------------------------------------------------


def held(resource_id: str = "cal", deletions: int = 30, connection_id: str = "c1") -> PendingDeletions:
    return PendingDeletions(GuardedResource("calendar", connection_id, resource_id), deletions, 40, True, now())


def test_held_deletions_are_versioned(stores: Any, ada: Principal, bob: Principal) -> None:
    pending = stores.pending_store
    record = held()
    pending.hold(ada, record, None)
    first = pending.get(ada, record.resource)
    assert (first.deletions, first.mirrored, first.complete, first.decision, first.version) == (30, 40, True, None, 1)
    assert first.detected_at == record.detected_at
    with pytest.raises(Conflict):
        pending.hold(ada, record, None)  # someone recorded it meanwhile

    decided = pending.decide(ada, record.resource, Decision.APPLY)
    assert (decided.decision, decided.version) == (Decision.APPLY, 2)
    assert pending.get(ada, record.resource) == decided
    with pytest.raises(Conflict):
        pending.hold(ada, held(deletions=31), first)  # the user answered meanwhile
    with pytest.raises(Conflict):
        pending.clear(ada, first)

    pending.hold(ada, held(deletions=31), decided)
    renewed = pending.get(ada, record.resource)
    assert (renewed.deletions, renewed.decision, renewed.version) == (31, None, 3)

    assert pending.decide(bob, record.resource, Decision.IGNORE) is None
    assert pending.of_user(bob) == []
    pending.clear(ada, renewed)
    assert pending.get(ada, record.resource) is None
    with pytest.raises(Conflict):
        pending.clear(ada, renewed)  # already cleared


def test_held_deletions_are_listed_by_kind(stores: Any, ada: Principal) -> None:
    stores.pending_store.hold(ada, held("b"), None)
    stores.pending_store.hold(ada, held("a"), None)
    stores.pending_store.hold(
        ada, PendingDeletions(GuardedResource("contacts", "c1", "all"), 30, 40, False, now()), None
    )

    assert [p.resource.resource_id for p in stores.pending_store.of_user(ada, "calendar")] == ["a", "b"]
    assert len(stores.pending_store.of_user(ada)) == 3
    stores.pending_store.forget(ada, GuardedResource("calendar", "c1", "a"))
    assert [p.resource.resource_id for p in stores.pending_store.of_user(ada, "calendar")] == ["b"]


# --- mirror: cursors -----------------------------------------------------------------------


def test_advancing_the_cursor_refuses_a_stale_read(stores: Any, ada: Principal) -> None:
    mirror = stores.mirror_store
    assert mirror.cursor(ada, "c1", "cal") == SyncCursor(None, None, None, 0)
    window = days_ahead(-30)

    mirror.advance(ada, "c1", "cal", mirror.cursor(ada, "c1", "cal"), "t1", window, True)
    first = mirror.cursor(ada, "c1", "cal")
    assert (first.sync_token, first.window_start, first.version, first.full_syncs) == ("t1", window, 1, 1)
    assert first.last_success_at is not None

    with pytest.raises(Conflict):
        mirror.advance(ada, "c1", "cal", SyncCursor(None, None, None, 0), "t-stale", None, True)
    mirror.advance(ada, "c1", "cal", first, "t2", window, False)
    second = mirror.cursor(ada, "c1", "cal")
    assert (second.sync_token, second.version, second.full_syncs) == ("t2", 2, 1)
    with pytest.raises(Conflict):
        mirror.advance(ada, "c1", "cal", first, "t-stale", window, False)
    assert mirror.cursor(ada, "c1", "cal") == second


def test_a_failure_is_kept_moves_the_version_and_is_cleared_by_the_next_success(stores: Any, ada: Principal) -> None:
    mirror = stores.mirror_store
    read = mirror.cursor(ada, "c1", "cal")

    mirror.record_failure(ada, "c1", "cal", "x" * (MAX_ERROR + 20))

    failed = mirror.cursor(ada, "c1", "cal")
    assert (failed.last_error, failed.version, failed.sync_token) == ("x" * MAX_ERROR, 1, None)
    assert failed.last_error_at is not None
    with pytest.raises(Conflict):
        mirror.advance(ada, "c1", "cal", read, "t1", None, True)  # read before the failure
    mirror.advance(ada, "c1", "cal", failed, "t1", None, True)
    done = mirror.cursor(ada, "c1", "cal")
    assert (done.last_error, done.last_error_at, done.version) == (None, None, 2)


def test_progress_leaves_the_version_alone_and_the_next_advance_drops_it(stores: Any, ada: Principal) -> None:
    mirror = stores.mirror_store
    read = mirror.cursor(ada, "c1", "cal")

    mirror.record_progress(ada, "c1", "cal", 250)

    progress = mirror.cursor(ada, "c1", "cal")
    assert (progress.events_so_far, progress.version, progress.sync_token) == (250, None, None)
    assert [(conn, cal) for conn, cal, _ in mirror.synced(ada)] == [("c1", "cal")]
    mirror.advance(ada, "c1", "cal", read, "t1", None, True)  # still as read
    advanced = mirror.cursor(ada, "c1", "cal")
    mirror.record_progress(ada, "c1", "cal", 10)
    mirror.record_failure(ada, "c1", "cal", "boom")
    assert mirror.cursor(ada, "c1", "cal").events_so_far is None  # a failure ends the run
    mirror.advance(ada, "c1", "cal", mirror.cursor(ada, "c1", "cal"), "t2", None, False)
    assert mirror.cursor(ada, "c1", "cal").events_so_far is None
    assert advanced.events_so_far is None


def test_a_channel_is_set_only_on_a_cursor_and_kept_by_advance(stores: Any, ada: Principal) -> None:
    mirror = stores.mirror_store
    expires = days_ahead(7)
    with pytest.raises(UpdateError) as refused:
        mirror.set_channel(ada, "c1", "cal", "ch1", "res1", expires)
    assert condition_failed(refused.value)
    assert mirror.synced(ada) == []

    mirror.advance(ada, "c1", "cal", mirror.cursor(ada, "c1", "cal"), "t1", None, True)
    read = mirror.cursor(ada, "c1", "cal")
    mirror.set_channel(ada, "c1", "cal", "ch1", "res1", expires)

    watched = mirror.cursor(ada, "c1", "cal")
    assert (watched.channel_id, watched.channel_resource_id, watched.channel_expires_at) == ("ch1", "res1", expires)
    assert watched.version == read.version + 1
    assert watched.sync_token == "t1"
    with pytest.raises(Conflict):
        mirror.advance(ada, "c1", "cal", read, "t2", None, False)
    mirror.advance(ada, "c1", "cal", watched, "t2", None, False)
    assert mirror.cursor(ada, "c1", "cal").channel_id == "ch1"


def test_synced_calendars_per_connection_and_user(stores: Any, ada: Principal, bob: Principal) -> None:
    mirror = stores.mirror_store
    for connection_id, calendar_id in [("c2", "z"), ("c1", "b"), ("c1", "a"), ("c10", "q")]:
        mirror.advance(ada, connection_id, calendar_id, SyncCursor(None, None, None, 0), "t", None, True)

    assert [(conn, cal) for conn, cal, _ in mirror.synced(ada)] == [
        ("c1", "a"),
        ("c1", "b"),
        ("c10", "q"),
        ("c2", "z"),
    ]
    assert [cal for cal, _ in mirror.synced_calendars(ada, "c1")] == ["a", "b"]
    assert [cursor.sync_token for _, cursor in mirror.synced_calendars(ada, "c1")] == ["t", "t"]
    assert mirror.synced(bob) == []
    assert mirror.synced_calendars(bob, "c1") == []


# --- mirror: events ------------------------------------------------------------------------


def test_applying_changes_upserts_deletes_and_keeps_the_last_change(
    stores: Any, ada: Principal, bob: Principal
) -> None:
    mirror = stores.mirror_store
    paris = days_ahead(3, 9, zone="Europe/Paris")
    day = (days_ahead(4).date()).isoformat()
    next_day = (days_ahead(5).date()).isoformat()
    changes = [
        event("b", summary="old"),
        event("a", start=paris, end=paris + timedelta(hours=1), time_zone="Europe/Paris", event_type="focusTime"),
        event("b", summary="new", transparent=True, declined=True, crm_appointment_id="appt1"),
        event("d", start=None, end=None, start_date=day, end_date=next_day),
        event("gone", cancelled=True),
    ]

    assert mirror.apply(ada, "c1", "cal", changes) == 4
    assert mirror.apply(ada, "c1", "cal", []) == 0

    mirrored = mirror.events(ada, "c1", "cal")
    assert [e.event_id for e in mirrored] == ["a", "b", "d"]
    a, b, d = mirrored
    assert a == replace(changes[1], time_zone=None, event_type="default")
    assert a.start.utcoffset() == timedelta(0)
    assert a.start == paris
    assert (b.summary, b.transparent, b.declined, b.crm_appointment_id) == ("new", True, True, "appt1")
    assert d.all_day
    assert d.start is None
    assert mirror.event_ids(ada, "c1", "cal") == {"a", "b", "d"}
    ends = mirror.event_ends(ada, "c1", "cal")
    assert ends == {"a": a.end, "b": b.end, "d": days_ahead(5, 0)}
    assert ends["d"].tzinfo is not None

    assert mirror.apply(ada, "c1", "cal", [event("a", cancelled=True), event("e")]) == 2
    assert mirror.event_ids(ada, "c1", "cal") == {"b", "d", "e"}
    assert mirror.remove(ada, "c1", "cal", {"b", "never-there"}) == 2
    assert mirror.event_ids(ada, "c1", "cal") == {"d", "e"}
    assert mirror.remove(ada, "c1", "cal", set()) == 0
    assert mirror.events(ada, "c1", "other") == []
    assert mirror.events(bob, "c1", "cal") == []


def test_a_large_page_of_changes_lands_whole(stores: Any, ada: Principal) -> None:
    """More changes than one BatchWriteItem takes (the DynamoDB store writes its chunks
    concurrently): every upsert and every deletion lands, and the last change of an id wins."""
    mirror = stores.mirror_store
    mirror.apply(ada, "c1", "cal", [event(f"old{n}") for n in range(40)])
    changes = [event(f"e{n}", summary=f"first {n}") for n in range(130)]
    changes += [event(f"old{n}", cancelled=True) for n in range(0, 40, 2)]
    changes += [event(f"e{n}", summary=f"last {n}") for n in range(0, 130, 3)]

    assert mirror.apply(ada, "c1", "cal", changes) == 150

    mirrored = {e.event_id: e.summary for e in mirror.events(ada, "c1", "cal")}
    assert set(mirrored) == {f"e{n}" for n in range(130)} | {f"old{n}" for n in range(1, 40, 2)}
    assert all(mirrored[f"e{n}"] == (f"last {n}" if n % 3 == 0 else f"first {n}") for n in range(130))


def test_an_undated_or_unreadable_end_is_unknown(stores: Any, ada: Principal) -> None:
    stores.mirror_store.apply(
        ada,
        "c1",
        "cal",
        [event("x", start=None, end=None), event("y", start=None, end=None, start_date="soon", end_date="later")],
    )
    assert stores.mirror_store.event_ends(ada, "c1", "cal") == {"x": None, "y": None}


def test_forgetting_a_calendar_drops_its_events_cursor_and_held_deletions(stores: Any, ada: Principal) -> None:
    mirror = stores.mirror_store
    for calendar_id in ("cal", "kept"):
        mirror.apply(ada, "c1", calendar_id, [event("e1"), event("e2")])
        mirror.advance(ada, "c1", calendar_id, SyncCursor(None, None, None, 0), "t", None, True)
        stores.pending_store.hold(ada, held(calendar_id), None)

    mirror.forget(ada, "c1", "cal")

    assert mirror.events(ada, "c1", "cal") == []
    assert mirror.cursor(ada, "c1", "cal") == SyncCursor(None, None, None, 0)
    assert stores.pending_store.get(ada, calendar_resource("c1", "cal")) is None
    assert mirror.event_ids(ada, "c1", "kept") == {"e1", "e2"}
    assert [cal for cal, _ in mirror.synced_calendars(ada, "c1")] == ["kept"]
    assert stores.pending_store.get(ada, calendar_resource("c1", "kept")) is not None
    mirror.forget(ada, "c1", "never-synced")  # nothing to forget is fine


def test_sync_inputs_read_what_the_other_stores_wrote(stores: Any, ada: Principal, bob: Principal) -> None:
    mirror = stores.mirror_store
    empty = mirror.sync_inputs(ada, "c1", "cal")
    assert (empty.stored, empty.calendar, empty.pending, empty.wanted) == (None, None, None, False)
    assert empty.cursor == SyncCursor(None, None, None, 0)
    assert empty.settings == CalendarSettings(linked=None, preferences=SyncPreferences())

    connect(stores, ada)
    stores.calendar_store.replace_for_connection(ada, "c1", "ada@example.test", [provider_calendar("cal")])
    settings = CalendarSettings(CalendarRef("c1", "cal"), SyncPreferences(window_days_back=3))
    stores.settings_store.save(ada, settings)
    mirror.advance(ada, "c1", "cal", SyncCursor(None, None, None, 0), "t1", None, True)
    stores.pending_store.hold(ada, held("cal"), None)

    inputs = mirror.sync_inputs(ada, "c1", "cal")

    assert inputs.stored == stores.connection_store.get_stored(ada, "c1")
    assert inputs.cursor == mirror.cursor(ada, "c1", "cal")
    assert inputs.settings == settings
    assert inputs.calendar == stores.calendar_store.of_user(ada, "c1")[0]
    assert inputs.pending == stores.pending_store.get(ada, calendar_resource("c1", "cal"))
    assert inputs.wanted  # the linked calendar, though not a conflict calendar
    assert mirror.sync_inputs(bob, "c1", "cal").stored is None
    bad = mirror.sync_inputs(ada, "bad#id", "cal")
    assert (bad.stored, bad.calendar, bad.pending, bad.cursor.version) == (None, None, None, None)


# --- appointments --------------------------------------------------------------------------


def test_a_booking_is_stored_as_revision_1_still_to_push(stores: Any, ada: Principal, bob: Principal) -> None:
    store = stores.appointment_store
    wanted = fields(3, 10)

    created = store.create(ada, "a1", wanted)

    assert (created.title, created.time_zone, created.contact_id) == ("Visit", "Europe/Paris", "k1")
    assert (created.attendees, created.location, created.description) == (("x@example.test",), "Here", "About")
    assert created.start == wanted.start
    assert created.start.utcoffset() == timedelta(0)
    assert (created.status, created.revision, created.pushed_revision, created.link) == (
        AppointmentStatus.CONFIRMED,
        1,
        0,
        None,
    )
    assert store.get(ada, "a1") == created
    assert store.get(bob, "a1") is None
    assert store.get(ada, "bad#id") is None
    assert store.get_many(ada, ["a1", "a1", "missing", "bad#id"]) == {"a1": created}
    assert store.get_many(bob, ["a1"]) == {}
    assert store.get_many(ada, []) == {}


def test_an_overlapping_booking_is_refused_with_the_clash(stores: Any, ada: Principal, bob: Principal) -> None:
    store = stores.appointment_store
    first = store.create(ada, "a1", fields(3, 10, title="First"))

    with pytest.raises(BookingConflict) as refused:
        store.create(ada, "a2", fields(3, 10, hours=2))

    assert refused.value.conflicts == [
        {
            "start": first.start.isoformat(),
            "end": first.end.isoformat(),
            "source": "crm",
            "calendar": None,
            "event": "First",
        }
    ]
    assert "First" in refused.value.detail
    assert store.get(ada, "a2") is None
    store.create(ada, "a3", fields(3, 11))  # starts as the first ends: no overlap
    store.create(bob, "b1", fields(3, 10))  # another user's time
    with pytest.raises(Conflict):
        store.create(ada, "a1", fields(5, 10))  # the id is taken


def test_changing_an_appointment_books_it_again(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    store.create(ada, "a1", fields(3, 10))
    store.create(ada, "a2", fields(3, 12))

    moved = store.change(ada, "a1", fields(3, 10, hours=2, title="Longer"), AppointmentStatus.CONFIRMED)
    assert (moved.title, moved.revision, moved.pushed_revision) == ("Longer", 2, 0)
    assert store.get(ada, "a1") == moved
    with pytest.raises(BookingConflict):
        store.change(ada, "a1", fields(3, 11, hours=2), AppointmentStatus.CONFIRMED)
    with pytest.raises(BookingConflict):  # the overlap is checked before the appointment is looked up
        store.change(ada, "missing", fields(3, 12), AppointmentStatus.CONFIRMED)
    assert store.change(ada, "missing", fields(3, 20), AppointmentStatus.CONFIRMED) is None
    assert store.change(ada, "missing", fields(3, 20), AppointmentStatus.CANCELLED) is None

    cancelled = store.change(ada, "a2", fields(3, 10), AppointmentStatus.CANCELLED)  # no check when cancelling
    assert (cancelled.status, cancelled.revision) == (AppointmentStatus.CANCELLED, 2)
    store.create(ada, "a3", fields(3, 12))  # a cancelled appointment blocks nothing


def test_between_lists_overlapping_appointments_in_start_order(stores: Any, ada: Principal, bob: Principal) -> None:
    store = stores.appointment_store
    store.create(ada, "late", fields(4, 9))
    store.create(ada, "b", fields(3, 9))
    store.create(ada, "a", fields(3, 12))
    store.create(bob, "other", fields(3, 9))

    assert [a.appointment_id for a in store.between(ada)] == ["b", "a", "late"]
    day_start = days_ahead(3, 9, zone="Europe/Paris")
    assert [a.appointment_id for a in store.between(ada, day_start, day_start + timedelta(hours=4))] == ["b", "a"]
    # Touching the range is not overlapping it.
    assert [
        a.appointment_id for a in store.between(ada, day_start + timedelta(hours=1), day_start + timedelta(hours=3))
    ] == []
    assert [a.appointment_id for a in store.between(ada, day_start + timedelta(minutes=30), None)] == ["b", "a", "late"]
    assert [a.appointment_id for a in store.between(ada, None, day_start + timedelta(minutes=1))] == ["b"]


def test_a_push_is_recorded_but_never_moves_back(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    store.create(ada, "a1", fields(3, 10))
    store.change(ada, "a1", fields(3, 11), AppointmentStatus.CONFIRMED)  # revision 2
    link2 = EventLink("c1", "cal", "ev1", '"2"')

    assert store.record_push(ada, "a1", 2, link2) is True
    assert store.record_push(ada, "a1", 1, EventLink("c1", "cal", "ev1", '"1"')) is False  # late, older
    pushed = store.get(ada, "a1")
    assert (pushed.pushed_revision, pushed.link, pushed.push_error) == (2, link2, None)

    moved = EventLink("c2", "cal2", "ev9", None)
    assert store.record_push(ada, "a1", 2, moved, "Quota") is True  # the same revision again
    again = store.get(ada, "a1")
    assert (again.pushed_revision, again.link, again.push_error, again.revision) == (2, moved, "Quota", 2)
    assert store.record_push(ada, "a1", 2, None) is True
    assert store.get(ada, "a1").link is None
    assert store.record_push(ada, "missing", 1, link2) is False
    assert store.get(ada, "missing") is None


def due_ids(store: Any, principal: Principal, before: Any) -> list[tuple[str, int, int]]:
    return [
        (d.appointment_id, d.revision, d.pushed_revision) for d in store.pushes_due(before) if d.principal == principal
    ]


def test_pushes_due_lists_marks_until_the_current_revision_is_pushed(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    store.create(ada, "a1", fields(3, 10))
    store.create(ada, "a2", fields(3, 12))
    soon = now() + timedelta(minutes=1)

    assert sorted(due_ids(store, ada, soon)) == [("a1", 1, 0), ("a2", 1, 0)]
    assert due_ids(store, ada, now() - timedelta(hours=1)) == []  # marked just now, not before

    assert store.clear_push_due(ada, "a1", 2) is False  # not its current revision: the mark stays
    assert store.clear_push_due(ada, "missing", 1) is False
    assert store.record_push(ada, "a2", 1, EventLink("c1", "cal", "e2", None)) is True
    assert due_ids(store, ada, soon) == [("a1", 1, 0)]
    store.change(ada, "a1", fields(3, 9), AppointmentStatus.CONFIRMED)
    assert store.record_push(ada, "a1", 1, EventLink("c1", "cal", "e1", None)) is True  # an older revision's push
    assert due_ids(store, ada, now() + timedelta(minutes=1)) == [("a1", 2, 1)]
    assert store.clear_push_due(ada, "a1", 2) is True
    assert due_ids(store, ada, now() + timedelta(minutes=1)) == []


def test_pushes_due_go_shard_by_shard_oldest_first(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    for i in range(12):
        store.create(ada, f"s{i:02d}", fields(3 + i, 10))

    listed = [d.appointment_id for d in store.pushes_due(now() + timedelta(minutes=1)) if d.principal == ada]

    assert sorted(listed) == [f"s{i:02d}" for i in range(12)]
    from crmsync.models.appointment import push_due_shard

    shards = [push_due_shard(i) for i in listed]
    assert shards == sorted(shards)
    for shard in set(shards):
        within = [i for i in listed if push_due_shard(i) == shard]
        assert within == sorted(within)  # created in that order, so marked in that order


def test_an_event_is_imported_once_and_found_by_its_event(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    link = EventLink("c1", "cal", "ev1", '"1"')

    imported = store.import_event(ada, "imp1", fields(3, 10), link)

    assert (imported.revision, imported.pushed_revision, imported.link) == (1, 1, link)
    assert store.import_event(ada, "imp1", fields(3, 11), link) is None
    assert store.get(ada, "imp1") == imported
    store.import_event(ada, "imp2", fields(3, 10), EventLink("c1", "other", "ev2", None))  # imports never clash
    store.create(ada, "a1", fields(5, 10))
    store.record_push(ada, "a1", 1, EventLink("c1", "cal", "ev3", None))
    assert due_ids(store, ada, now() + timedelta(minutes=1)) == []

    found = store.by_event(ada, "c1", "cal")
    assert sorted(found) == ["ev1", "ev3"]
    assert found["ev1"] == imported
    assert store.by_event(ada, "c2", "cal") == {}


def test_a_calendar_change_is_absorbed_only_on_the_revision_read(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    created = store.create(ada, "a1", fields(3, 10))
    link = EventLink("c1", "cal", "ev1", '"7"')

    absorbed = store.absorb_change(ada, created, fields(3, 14, title="Moved"), AppointmentStatus.CONFIRMED, link)

    assert (absorbed.title, absorbed.revision, absorbed.pushed_revision, absorbed.link) == ("Moved", 2, 2, link)
    assert store.get(ada, "a1") == absorbed
    assert due_ids(store, ada, now() + timedelta(minutes=1)) == []  # nothing to push back
    assert store.absorb_change(ada, created, fields(3, 15), AppointmentStatus.CONFIRMED, link) is None
    cancelled = store.absorb_change(ada, absorbed, fields(3, 14), AppointmentStatus.CANCELLED, None)
    assert (cancelled.status, cancelled.link, cancelled.revision) == (AppointmentStatus.CANCELLED, None, 3)
    assert (
        store.absorb_change(
            ada, replace(created, appointment_id="missing"), fields(3, 9), AppointmentStatus.CONFIRMED, None
        )
        is None
    )


def test_detaching_drops_the_link_and_marks_the_push(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    store.import_event(ada, "a1", fields(3, 10), EventLink("c1", "cal", "ev1", None))
    read = store.get(ada, "a1")

    detached = store.detach(ada, read)

    assert (detached.link, detached.revision, detached.pushed_revision, detached.title) == (None, 2, 1, "Visit")
    assert store.get(ada, "a1") == detached
    assert due_ids(store, ada, now() + timedelta(minutes=1)) == [("a1", 2, 1)]
    assert store.detach(ada, read) is None


# --- OAuth states --------------------------------------------------------------------------


def authorization(ada: Principal, expires_in: timedelta = timedelta(minutes=10)) -> PendingAuthorization:
    return PendingAuthorization(
        tenant_id=ada.tenant_id,
        user_id=ada.user_id,
        provider="google",
        binding_hash="binding",
        code_verifier="verifier",
        scopes=("s2", "s1"),
        created_at=now(),
        expires_at=(now() + expires_in).replace(microsecond=654321),
    )


def test_an_appointment_longer_than_the_longest_allowed_escapes_a_bounded_read(stores: Any, ada: Principal) -> None:
    store = stores.appointment_store
    start = days_ahead(3, 9)
    too_long = AppointmentFields("Sabbatical", start, start + MAX_APPOINTMENT_DURATION + timedelta(days=1), "UTC")
    store.create(ada, "long", too_long)
    late = start + MAX_APPOINTMENT_DURATION + timedelta(hours=1)

    # Bounded reads look back MAX_APPOINTMENT_DURATION only (the ``by_start`` index).
    assert store.between(ada, late, late + timedelta(hours=1)) == []
    assert [a.appointment_id for a in store.between(ada, None, late + timedelta(hours=1))] == ["long"]
    store.create(ada, "overlaps", AppointmentFields("Visit", late, late + timedelta(hours=1), "UTC"))


def test_an_oauth_state_is_consumed_once_by_its_own_browser(stores: Any, ada: Principal) -> None:
    states = stores.oauth_states
    state = uuid.uuid4().hex
    pending = authorization(ada)
    states.put(state, pending)
    with pytest.raises(PutError) as again:
        states.put(state, pending)
    assert condition_failed(again.value)

    for binding, provider in [("another", "google"), ("binding", "microsoft")]:
        with pytest.raises(OAuthStateError) as refused:
            states.consume(state, binding_hash=binding, provider=provider)
        assert refused.value.reason == OAuthStateError.MISMATCH
    consumed = states.consume(state, binding_hash="binding", provider="google")  # still there

    # The expiry is a TTL attribute: kept in whole seconds, the fraction cut off.
    assert consumed == replace(pending, scopes=("s1", "s2"), expires_at=pending.expires_at.replace(microsecond=0))
    with pytest.raises(OAuthStateError) as used:
        states.consume(state, binding_hash="binding", provider="google")
    assert used.value.reason == OAuthStateError.UNKNOWN


def test_an_expired_oauth_state_is_refused_and_used_up(stores: Any, ada: Principal) -> None:
    states = stores.oauth_states
    state = uuid.uuid4().hex
    states.put(state, authorization(ada, expires_in=-timedelta(seconds=1)))

    with pytest.raises(OAuthStateError) as expired:
        states.consume(state, binding_hash="binding", provider="google")
    assert expired.value.reason == OAuthStateError.EXPIRED
    with pytest.raises(OAuthStateError) as used:
        states.consume(state, binding_hash="binding", provider="google")
    assert used.value.reason == OAuthStateError.UNKNOWN


# --- channels ------------------------------------------------------------------------------


def test_a_channel_is_found_by_its_id_until_deleted(stores: Any, ada: Principal) -> None:
    channel_id = str(uuid.uuid4())
    channel = Channel(channel_id, ada.tenant_id, ada.user_id, "c1", "cal", "res", "hash", days_ahead(7).astimezone(UTC))

    stores.channel_store.put(channel)

    assert stores.channel_store.get(channel_id) == channel
    assert stores.channel_store.get("") is None
    assert stores.channel_store.get("x" * 65) is None
    stores.channel_store.put(replace(channel, resource_id="res2"))
    assert stores.channel_store.get(channel_id).resource_id == "res2"
    stores.channel_store.delete(channel_id)
    assert stores.channel_store.get(channel_id) is None
    stores.channel_store.delete(channel_id)  # already gone is fine
