"""Property (issue 13): whatever the CRM user and the Google user do to their contacts, in any
order — both sides editing one linked contact included — with rate limits and server errors on
People calls, expired sync tokens, answers lost after Google applied a write, and Google's
propagation delay on, once the faults stop and the sync has run enough:

* no duplicates: one CRM contact per email or phone, no two Google contacts carrying one of
  our keys, no Google contact linked from two CRM contacts, none of ours left behind;
* no lost field: every field the last writer set, on either side, is on both sides of a linked
  pair ("last" as the sync reads it: the CRM field's change time against Google's source
  ``updateTime`` — checked whenever a pair agrees, after every sync);
* declined candidates are never offered again, and an offered one matches no CRM contact.

Against DynamoDB Local and the People emulator, through the real Google adapter."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from crmsync.app.wiring import Graph
from crmsync.domain import Principal
from crmsync.domain.contacts import CandidateStatus, Contact, ReviewAction
from crmsync.errors import Conflict, DuplicateContact, NotFound, ProviderError
from crmsync.logic.contact_review import ContactReview
from crmsync.logic.contacts import ContactInput
from crmsync.providers.google.people import KEY
from crmsync.sync.contact_sync import ContactSync
from tests.fakes.world import RecordingQueue
from tests.integration.test_contact_sync import graph  # noqa: F401 - the fixture
from tests.support.access import LostAnswers, contact_sync_losing
from tests.support.google_consent import consent, query
from tests.support.google_people import GooglePeopleUser, person
from tests.support.google_user import GoogleCalendarUser

pytestmark = pytest.mark.integration

#: The fields both sides edit here (emails and phones say who a contact is).
FIELDS = ("given_name", "family_name", "organization", "title")
EMAILS = st.integers(min_value=0, max_value=5).map(lambda i: f"p{i}@example.com")
#: A contact's phone, if any: one of a few numbers, shared at times by contacts with other
#: emails (a first link by phone then unites both sides' emails).
PHONES = st.one_of(st.none(), st.integers(min_value=0, max_value=5))


def phone_of(number: int) -> str:
    return f"+1 650 253 00{number:02d}"


FAULTS = st.sampled_from(["rate_limit_429", "quota_429", "backend_500", "unavailable_503"])
METHODS = st.sampled_from(
    [
        "people.people.connections.list",
        "people.people.batchCreateContacts",
        "people.people.updateContact",
        "people.people.get",
        "people.contactGroups",
        "people.",
    ]
)
#: Examples per run: 20 in `make test`; more by hand when hunting (docs/TESTING.md).
EXAMPLES = int(os.environ.get("CONTACTS_CONVERGENCE_EXAMPLES", "20"))
#: Google's propagation delay for sync reads (seconds on the emulator clock): on by default.
DELAY = 600


#: The People port's writes that may lose their answer.
WRITES = ("create", "update", "update_many", "delete_many", "add_members")


@dataclass
class World:
    graph: Graph
    principal: Principal
    connection_id: str
    user: GooglePeopleUser
    sync: ContactSync
    review: ContactReview
    lost: LostAnswers
    base_url: str


@dataclass
class Written:
    """Fields written by the users since a pair last agreed."""

    crm: dict[str, dict[str, tuple[str, datetime]]] = field(default_factory=dict)  # contact id → field → (value, at)
    google: dict[str, dict[str, tuple[str, datetime]]] = field(
        default_factory=dict
    )  # resource name → field → (value, at)
    google_at: dict[str, datetime] = field(default_factory=dict)  # resource name → updateTime


def _time(view: dict[str, Any]) -> datetime:
    stamp = view["metadata"]["sources"][0]["updateTime"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def google_fields(view: dict[str, Any]) -> dict[str, str | None]:
    name = (view.get("names") or [{}])[0]
    org = (view.get("organizations") or [{}])[0]
    return {
        "given_name": name.get("givenName") or None,
        "family_name": name.get("familyName") or None,
        "organization": org.get("name") or None,
        "title": org.get("title") or None,
    }


def crm_fields(contact: Contact) -> dict[str, str | None]:
    return {name: getattr(contact.fields, name) or None for name in FIELDS}


def google_emails(view: dict[str, Any]) -> set[str]:
    return {e["value"].lower() for e in view.get("emailAddresses", [])}


def google_keys(view: dict[str, Any]) -> set[str]:
    """Its emails and phones, as the CRM matches them (the phones here are all E.164)."""
    phones = {"".join(p["value"].split()) for p in view.get("phoneNumbers", [])}
    return google_emails(view) | phones


def google_key(view: dict[str, Any]) -> str | None:
    return next((d["value"] for d in view.get("clientData", []) if d.get("key") == KEY), None)


def make_machine(new_world: Callable[[], World]) -> type[RuleBasedStateMachine]:
    class Contacts(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.w = new_world()
            self.written = Written()
            self.serial = 0
            #: Candidates the user declined (or that start declined): never offered again.
            self.declined: set[str] = set()
            #: CRM contacts that may end unlinked: their Google twin was deleted by the user.
            self.may_unlink: set[str] = set()
            #: Per Google contact, its fields as last written by the user or agreed.
            self.google_last: dict[str, dict[str, str | None]] = {}
            #: Per CRM contact, the Google contact and the fields of the pair when it last agreed.
            self.settled: dict[str, tuple[str, dict[str, str | None]]] = {}

        def _fresh(self, what: str) -> str:
            self.serial += 1
            return f"{what}{self.serial}"

        def _crm(self) -> list[Contact]:
            out: list[Contact] = []
            cursor: str | None = None
            while True:
                page = self.w.graph.contact_store.page(self.w.principal, cursor, 200)
                out.extend(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    return out

        def _google(self) -> dict[str, dict[str, Any]]:
            return {p["resourceName"]: p for p in self.w.user.contacts()}

        @initialize(
            crm=st.lists(EMAILS, min_size=1, max_size=3, unique=True),
            google=st.lists(EMAILS, min_size=1, max_size=3),
        )
        def both_have_contacts_and_sync_once(self, crm: list[str], google: list[str]) -> None:
            """Contacts on both sides, some sharing an email, and the first sync (it may fail)."""
            for email in crm:
                self.crm_creates(email, None, org=True)
            for email in google:
                self.google_adds(email, None, org=False)
            self.sync_runs(1)

        # ------------------------------------------------------------ the CRM user
        @rule(email=EMAILS, phone=PHONES, org=st.booleans())
        def crm_creates(self, email: str, phone: int | None, org: bool) -> None:
            given = ContactInput(
                given_name=self._fresh("cg"),
                family_name=self._fresh("cf"),
                emails=[email],
                phones=[phone_of(phone)] if phone is not None else None,
                organization=self._fresh("co") if org else None,
            )
            with contextlib.suppress(DuplicateContact):  # one contact per email or phone: refused
                contact = self.w.graph.contacts.create(self.w.principal, given)
                self.written.crm[contact.contact_id] = {
                    name: (value, contact.changed_at.get(name) or contact.created_at)
                    for name, value in crm_fields(contact).items()
                    if value
                }

        def _crm_change(self, contact: Contact, name: str) -> None:
            value = self._fresh("c" + name[:2])
            changed = self.w.graph.contacts.change(self.w.principal, contact.contact_id, ContactInput(**{name: value}))
            self.written.crm.setdefault(contact.contact_id, {})[name] = (value, changed.changed_at[name])

        @rule(pick=st.integers(min_value=0), name=st.sampled_from(FIELDS))
        def crm_changes(self, pick: int, name: str) -> None:
            live = self._crm()
            if live:
                self._crm_change(live[pick % len(live)], name)

        @rule(pick=st.integers(min_value=0))
        def crm_deletes(self, pick: int) -> None:
            live = self._crm()
            if live:
                chosen = live[pick % len(live)]
                with contextlib.suppress(NotFound):
                    self.w.graph.contacts.delete(self.w.principal, chosen.contact_id)
                self.written.crm.pop(chosen.contact_id, None)

        # ------------------------------------------------------------ the Google user
        @rule(email=EMAILS, phone=PHONES, org=st.booleans())
        def google_adds(self, email: str, phone: int | None, org: bool) -> None:
            view = self.w.user.added(
                person(
                    self._fresh("gg"),
                    self._fresh("gf"),
                    emails=(email,),
                    phones=(phone_of(phone),) if phone is not None else (),
                    organization=self._fresh("go") if org else None,
                )
            )
            name = view["resourceName"]
            at = _time(view)
            self.written.google[name] = {k: (v, at) for k, v in google_fields(view).items() if v}
            self.written.google_at[name] = at
            self.google_last[name] = google_fields(view)

        def _google_edit(self, view: dict[str, Any], name: str) -> None:
            value = self._fresh("g" + name[:2])
            now = google_fields(view)
            now[name] = value
            if name in ("given_name", "family_name"):
                body = {
                    "names": [
                        {k: v for k, v in (("givenName", now["given_name"]), ("familyName", now["family_name"])) if v}
                    ]
                }
            else:
                body = {
                    "organizations": [{k: v for k, v in (("name", now["organization"]), ("title", now["title"])) if v}]
                }
            edited = self.w.user.edit(view["resourceName"], body)
            self.written.google.setdefault(view["resourceName"], {})[name] = (value, _time(edited))
            self.written.google_at[view["resourceName"]] = _time(edited)
            self.google_last[view["resourceName"]] = google_fields(edited)

        @rule(pick=st.integers(min_value=0), name=st.sampled_from(FIELDS))
        def google_edits(self, pick: int, name: str) -> None:
            live = list(self._google().values())
            if live:
                self._google_edit(live[pick % len(live)], name)

        @rule(pick=st.integers(min_value=0))
        def google_deletes(self, pick: int) -> None:
            live = list(self._google().values())
            if not live:
                return
            view = live[pick % len(live)]
            name = view["resourceName"]
            keys = google_keys(view)
            for contact in self._crm():
                if (
                    (contact.google and contact.google.resource_name == name)
                    or google_key(view) == contact.contact_id
                    or keys & {*contact.fields.emails, *(p.key for p in contact.fields.phones)}
                ):
                    self.may_unlink.add(contact.contact_id)
            self.w.user.delete(name)
            self.written.google.pop(name, None)

        # ------------------------------------------------------------ both, on one linked contact
        @rule(
            pick=st.integers(min_value=0),
            crm_field=st.sampled_from(FIELDS),
            google_field=st.sampled_from(FIELDS),
            google_first=st.booleans(),
        )
        def both_edit_one_linked_contact(
            self, pick: int, crm_field: str, google_field: str, google_first: bool
        ) -> None:
            google = self._google()
            linked = [c for c in self._crm() if c.google and c.google.resource_name in google]
            if not linked:
                return
            contact = linked[pick % len(linked)]
            assert contact.google is not None
            view = google[contact.google.resource_name]
            if google_first:
                self._google_edit(view, google_field)
                self._crm_change(self.w.graph.contacts.get(self.w.principal, contact.contact_id), crm_field)
            else:
                self._crm_change(contact, crm_field)
                self._google_edit(self._google()[contact.google.resource_name], google_field)

        # ------------------------------------------------------------ the import review
        def _offered(self) -> list[str]:
            return self.w.graph.candidates.ids(self.w.principal, CandidateStatus.OFFERED)

        @rule()
        def user_imports_nothing(self) -> None:
            offered = self._offered()
            self.w.review.answer(self.w.principal, ReviewAction.NO_IMPORT)
            self.w.review.run_answer(self.w.principal)  # the job the answer queued
            self.declined |= set(offered)

        @rule(pick=st.integers(min_value=0))
        def user_imports_one_and_is_done(self, pick: int) -> None:
            offered = self._offered()
            if not offered:
                return
            chosen = offered[pick % len(offered)]
            row = self.w.graph.candidates.get(self.w.principal, chosen)
            if row is not None and not {name for _, name in row.members} & set(self._google()):
                # Deleted in Google since the review was made: its contact is unlinked next sync.
                self.may_unlink.add("g" + chosen)
            self.w.review.choose(self.w.principal, chosen, selected=True, contact_type="client")
            self.w.review.answer(self.w.principal, ReviewAction.IMPORT_DONE)
            self.w.review.run_answer(self.w.principal)
            self.declined |= set(offered) - {chosen}
            imported = self.w.graph.contact_store.get(self.w.principal, "g" + chosen)
            if imported is not None and imported.source == "google":
                # The row's fields, as Google had them when they were last synced (so dated):
                # they count as written, should the contact be linked to another Google twin.
                self.written.crm[imported.contact_id] = {
                    name: (value, imported.changed_at.get(name) or imported.created_at)
                    for name, value in crm_fields(imported).items()
                    if value
                }

        # ------------------------------------------------------------ the infrastructure
        @rule(kind=FAULTS, method=METHODS, count=st.integers(min_value=1, max_value=2))
        def google_fails(self, kind: str, method: str, count: int) -> None:
            requests.post(
                f"{self.w.base_url}/_emulator/faults",
                json={"kind": kind, "method": method, "email": self.w.user.email, "count": count},
                timeout=10,
            ).raise_for_status()

        @rule(count=st.integers(min_value=1, max_value=2))
        def google_answers_get_lost(self, count: int) -> None:
            self.w.lost.left = count

        @rule()
        def sync_token_expires(self) -> None:
            self.w.user.expire_sync_tokens()

        @rule(delayed=st.booleans())
        def propagation(self, delayed: bool) -> None:
            """Writes reach incremental listings late (on) or at once (off, which releases
            what was held back)."""
            self.w.user.propagation(DELAY if delayed else 0)

        @rule(times=st.integers(min_value=1, max_value=2))
        def sync_runs(self, times: int) -> None:
            """The schedule, a reported login or the user's ask (a failure: the queue retries)."""
            for _ in range(times):
                with contextlib.suppress(ProviderError, Conflict):
                    self.w.sync.run(self.w.principal, self.w.connection_id)
                self._check_agreeing_pairs()

        @rule()
        def sync_runs_again(self) -> None:
            self.sync_runs(1)

        # ------------------------------------------------------------ the promise
        def _check_agreeing_pairs(self, *, all_agree: bool = False) -> None:
            """Every linked pair that agrees holds each field's last write; then nothing is
            pending for it."""
            google = self._google()
            for contact in self._crm():
                link = contact.google
                if link is None or link.connection_id != self.w.connection_id or link.resource_name not in google:
                    continue
                name = link.resource_name
                ours, theirs = crm_fields(contact), google_fields(google[name])
                if ours != theirs:
                    assert not all_agree, f"a linked pair disagrees: CRM {ours} / Google {theirs}"
                    continue
                crm_w = self.written.crm.pop(contact.contact_id, {})
                google_w = self.written.google.pop(name, {})
                # Linked now to another Google contact than when it last agreed (Google held the
                # person twice and the first one went): "last writer" spans three contacts, so
                # the value it agreed with before counts as a last write too.
                before = self.settled.get(contact.contact_id)
                relinked = before is not None and before[0] != name
                self.settled[contact.contact_id] = (name, ours)
                self.google_last[name] = dict(ours)
                for f in FIELDS:
                    if f in crm_w and f in google_w:
                        (c, crm_at), (g, google_at) = crm_w[f], google_w[f]
                        # Google dates a contact, not a field: a CRM change later than Google's
                        # write of the field but earlier than the contact's last change may go
                        # either way; otherwise the later change wins (a tie goes to the CRM).
                        if crm_at < google_at:
                            expected = {g}
                        elif crm_at >= self.written.google_at[name]:
                            expected = {c}
                        else:
                            expected = {c, g}
                    elif f in crm_w:
                        expected = {crm_w[f][0]}
                        if self.written.google_at.get(name, crm_w[f][1]) > crm_w[f][1]:
                            # Google's contact is dated later than the CRM's write (another of
                            # its fields changed): on a first link its value may win.
                            expected.add(self.google_last.get(name, {}).get(f))
                    elif f in google_w:
                        expected = {google_w[f][0]}
                    else:
                        continue
                    if relinked and before is not None:
                        expected = {*expected, before[1][f], *(w[f][0] for w in (crm_w, google_w) if f in w)}
                    assert ours[f] in expected, f"{f}: {expected} was written last, both sides have {ours[f]!r}"

        @invariant()
        def declined_never_offered(self) -> None:
            again = self.declined & set(self._offered())
            assert not again, f"declined candidates offered again: {sorted(again)}"

        def teardown(self) -> None:
            requests.delete(f"{self.w.base_url}/_emulator/faults", timeout=10)
            self.w.lost.left = 0
            self.w.user.propagation(0)  # the delay is over (the shared emulator clock stays put)
            for _ in range(3):  # enough syncs: none may fail now
                self.w.sync.run(self.w.principal, self.w.connection_id)
                self._check_agreeing_pairs()
            self._check_agreeing_pairs(all_agree=True)
            self.declined_never_offered()
            self._assert_no_duplicates()
            self._assert_candidates()

        def _assert_no_duplicates(self) -> None:
            crm = self._crm()
            google = self._google()
            seen: dict[str, str] = {}
            for contact in crm:
                for k in [*contact.fields.emails, *(p.key for p in contact.fields.phones)]:
                    assert seen.setdefault(k, contact.contact_id) == contact.contact_id, f"two CRM contacts have {k}"
            by_id = {c.contact_id: c for c in crm}
            keys = [k for k in (google_key(v) for v in google.values()) if k]
            assert len(keys) == len(set(keys)), "two Google contacts carry one CRM contact's key"
            for name, view in google.items():
                key = google_key(view)
                if key is not None:
                    owner = by_id.get(key)
                    assert owner is not None, "a Google contact of ours outlived its CRM contact"
                    assert owner.google is not None
                    assert owner.google.resource_name == name, "a Google contact of ours is linked to no CRM contact"
            links = [c.google.resource_name for c in crm if c.google]
            assert len(links) == len(set(links)), "two CRM contacts linked to one Google contact"
            assert set(links) <= set(google), "a CRM contact linked to a Google contact that is gone"
            unlinked = {c.contact_id for c in crm if c.google is None}
            assert unlinked <= self.may_unlink, "a CRM contact never reached Google"

        def _assert_candidates(self) -> None:
            crm = self._crm()
            google = self._google()
            known = {k for c in crm for k in [*c.fields.emails, *(p.key for p in c.fields.phones)]}
            candidates = self.w.graph.candidates.all(self.w.principal)
            for candidate in candidates:
                if candidate.status is CandidateStatus.OFFERED:
                    assert not {*candidate.emails, *candidate.phones} & known, (
                        "an offered candidate matches a CRM contact"
                    )
            members = {name for c in candidates for _, name in c.members}
            linked = {c.google.resource_name for c in crm if c.google}
            for name, view in google.items():
                if name in linked or google_key(view) or google_keys(view) & known:
                    continue
                assert name in members, "a Google contact of the user's own is neither linked nor a candidate"

    return Contacts


@pytest.fixture
def users(stack) -> Iterator[list[GooglePeopleUser]]:
    made: list[GooglePeopleUser] = []
    yield made
    for user in made:
        user.propagation(0)


def test_crm_and_google_contacts_converge(stack, graph: Graph, users: list[GooglePeopleUser]) -> None:  # noqa: F811
    def new_world() -> World:
        # A CRM user and a Google account of their own per example: Hypothesis replays a
        # failing example expecting the same outcome.
        principal = Principal(f"tenant-{uuid.uuid4().hex[:10]}", "alice")
        email = GoogleCalendarUser.new(stack.google.base_url, "ada").email
        start = graph.integrations.start_connect("google", principal, features=["calendar", "contacts"])
        params = query(consent(start.authorization_url, email, typed=True))
        connection = graph.integrations.complete_connect(
            "google", state=params["state"], code=params["code"], error=None, binding=start.binding
        )
        graph.contacts_sync_store.set(principal, connection.connection_id)
        user = GooglePeopleUser(stack.google.base_url, email)
        users.append(user)
        user.propagation(DELAY)
        lost = LostAnswers()
        sync = contact_sync_losing(graph, lost, WRITES)
        review = ContactReview(
            candidates=graph.candidates,
            mirror=graph.contact_mirror,
            contacts=graph.contacts,
            imports=graph.review_imports,
            sync=graph.contacts_sync_store,
            queue=RecordingQueue(),
        )
        return World(graph, principal, connection.connection_id, user, sync, review, lost, stack.google.base_url)

    run_state_machine_as_test(
        make_machine(new_world),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
