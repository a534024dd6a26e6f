"""Contacts sync figures on the local stack (DynamoDB Local, moto, the People emulator):

- (a) the first (full) sync of 10,000 Google contacts into the mirror and the candidates, as a
  ratio to raw DynamoDB Local batch writes of the same items (a mirror item and a candidate
  item per contact, as the sync stores them) in the same run (goal ≥ 0.7);
- (b) the first sync of a user with 10,000 CRM contacts: People requests used, against the
  least Google's batch limits allow (10,000 / 200 creates, plus the group and membership calls
  and one listing; goal ≤ 1.05 ×);
- (c) a review page of 50 rows with 10,000 candidates: p95 of ``GET /v1/contacts/review``
  through the local stack's HTTP API (the API function on DynamoDB Local), paging with Next;
- (d) the requests of a no-op incremental contacts sync (goal: 1 to Google, ≤ 2 to DynamoDB);
- (e) "Proceed – No Import" over those 10,000 rows: the API's answer (the declining runs in the
  background), and that job's time.

Google requests of (b) are counted by the emulator; (d) by wrapping the two HTTP clients in
this benchmark process only.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench import main_json
from bench.sync import _Counter

ROOT = Path(__file__).resolve().parents[1]
CONTACTS = 10_000
PAGE_SAMPLES = 40


@dataclass(frozen=True)
class ContactFigures:
    contacts: int
    full_fetch_seconds: float
    raw_write_seconds: float
    push_seconds: float
    push_google_requests: int
    push_minimum_requests: int
    page_p50_ms: float
    page_p95_ms: float
    noop_google_requests: int
    noop_dynamodb_requests: int
    answer_ms: float
    decline_seconds: float

    @property
    def ratio(self) -> float:
        return self.raw_write_seconds / self.full_fetch_seconds

    @property
    def push_factor(self) -> float:
        return self.push_google_requests / self.push_minimum_requests


def measure(contacts: int = CONTACTS) -> ContactFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    counter = _Counter()
    counter.install()
    with Stack(ROOT, sqs_visibility_timeout=1) as stack:
        os.environ.update(stack.function_environment("SyncWorkerFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import Principal
        from crmsync.domain.contacts import ContactFields
        from crmsync.models import bind_tables
        from crmsync.models.gcontacts import CandidateItem, GoogleContactItem
        from crmsync.ports.contacts import BATCH_CREATE_LIMIT
        from tests.support.google_consent import consent, query
        from tests.support.google_people import GooglePeopleUser, person

        base = Settings.from_env()
        google_settings = base.google.model_copy(update={"features": ("calendar", "contacts")})
        settings = base.model_copy(update={"google": google_settings})
        graph = Graph(settings)

        def connect(principal: Principal, email: str) -> str:
            requests.post(f"{stack.google.base_url}/_emulator/accounts", json={"email": email}, timeout=10)
            start = graph.integrations.start_connect("google", principal, features=["calendar", "contacts"])
            params = query(consent(start.authorization_url, email, typed=True))
            connection = graph.integrations.complete_connect(
                "google", state=params["state"], code=params["code"], error=None, binding=start.binding
            )
            graph.contacts_sync_store.set(principal, connection.connection_id)
            return connection.connection_id

        # (a) 10,000 Google contacts, none in the CRM: all become candidates.
        alice, alice_email = Principal("bench-tenant", "alice"), "alice-contacts@example.com"
        alice_conn = connect(alice, alice_email)
        for offset in range(0, contacts, 1000):
            people = [
                person(f"Given{n}", f"Family{n}", emails=(f"g{n}@example.net",), organization="Org")
                for n in range(offset, min(offset + 1000, contacts))
            ]
            requests.post(
                f"{stack.google.base_url}/_emulator/people/contacts",
                json={"email": alice_email, "people": people},
                timeout=120,
            ).raise_for_status()
        began = time.perf_counter()
        graph.contact_sync.run(alice, alice_conn)
        full_fetch = time.perf_counter() - began

        bind_tables(connections_table=settings.connections_table, oauth_states_table=settings.oauth_states_table)
        now = datetime.now(UTC)
        began = time.perf_counter()
        # The items the sync stores for 10,000 contacts: a mirror item and a candidate each.
        with GoogleContactItem.batch_write() as writer:
            for n in range(contacts):
                writer.save(
                    GoogleContactItem(
                        "T#raw#U#raw",
                        f"GCONTACT#raw#people/c{n}",
                        connection_id="raw",
                        resource_name=f"people/c{n}",
                        etag='"1"',
                        given_name=f"Given{n}",
                        family_name=f"Family{n}",
                        emails=[f"g{n}@example.net"],
                        organization="Org",
                    )
                )
        with CandidateItem.batch_write() as writer:
            for n in range(contacts):
                writer.save(
                    CandidateItem(
                        "T#raw#U#raw",
                        f"CANDIDATE#{n:032x}",
                        status="offered",
                        given_name=f"Given{n}",
                        family_name=f"Family{n}",
                        emails=[f"g{n}@example.net"],
                        organization="Org",
                        members=[f"raw#people/c{n}"],
                        selected=False,
                        updated_at=now,
                        version=1,
                    )
                )
        raw_write = time.perf_counter() - began

        # (c) a review page of 50 among 10,000 candidates, over HTTP: pages 1..N with Next,
        # then from the first page again (a reload).
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.issue_token(alice.tenant_id, alice.user_id)}"
        cursor = None
        samples: list[float] = []
        for _ in range(PAGE_SAMPLES):
            params = {"status": "offered", "limit": "50", **({"cursor": cursor} if cursor else {})}
            began = time.perf_counter()
            answered = session.get(f"{stack.api_url}/v1/contacts/review", params=params, timeout=30)
            samples.append((time.perf_counter() - began) * 1000)
            answered.raise_for_status()
            page = answered.json()
            if len(page["items"]) != 50 or page["total"] != contacts:
                raise RuntimeError(f"a review page of {len(page['items'])} rows of {page['total']}")
            cursor = None if len(samples) % 10 == 0 else page["next_cursor"]
        samples.sort()
        p95 = samples[max(0, math.ceil(0.95 * len(samples)) - 1)]

        # (d) nothing changed since: a no-op incremental sync.
        counter.google = counter.dynamodb = 0
        graph.contact_sync.run(alice, alice_conn)
        noop_google, noop_dynamodb = counter.google, counter.dynamodb

        # (e) "Proceed – No Import" over the 10,000 rows: the API's answer, then its job (run
        # here as the worker runs it; the stack's queue is not drained).
        began = time.perf_counter()
        answered = session.post(f"{stack.api_url}/v1/contacts/review/answer", json={"action": "no-import"}, timeout=30)
        answer_ms = (time.perf_counter() - began) * 1000
        answered.raise_for_status()
        began = time.perf_counter()
        record = graph.contact_review.run_answer(alice)
        decline_seconds = time.perf_counter() - began
        if record is None or record.declined != contacts:
            raise RuntimeError(f"the answer's job declined {record and record.declined} rows")

        # (b) 10,000 CRM contacts pushed by a user's first sync.
        bob, bob_email = Principal("bench-tenant", "bob"), "bob-contacts@example.com"
        for n in range(contacts):
            graph.contact_store.create(bob, ContactFields(given_name=f"Crm{n}", emails=(f"c{n}@example.org",)), "crm")
        bob_conn = connect(bob, bob_email)
        people_user = GooglePeopleUser(stack.google.base_url, bob_email)
        before = people_user.calls()
        began = time.perf_counter()
        graph.contact_sync.run(bob, bob_conn)
        push = time.perf_counter() - began
        used = people_user.calls() - before
        # One listing, one group lookup and one creation, the batch creates, one membership call
        # per 1,000 members (Google's contactGroups.members.modify limit).
        minimum = 3 + math.ceil(contacts / BATCH_CREATE_LIMIT) + math.ceil(contacts / 1000)
        return ContactFigures(
            contacts,
            full_fetch,
            raw_write,
            push,
            used,
            minimum,
            statistics.median(samples),
            p95,
            noop_google,
            noop_dynamodb,
            answer_ms,
            decline_seconds,
        )


if __name__ == "__main__":
    main_json(measure)
