"""F10's import review at scale, on DynamoDB Local and the People emulator: the review's totals
come from one counts item that stays exact through every status writer, and an answer is
carried out by its background job — declining in bulk only the rows that existed when the user
answered, and changing nothing when run again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from crmsync.app.wiring import Graph
from crmsync.domain.contacts import Candidate, CandidateStatus, ReviewAction
from crmsync.models.gcontacts import (
    CANDIDATE_COUNTS_SK,
    CANDIDATE_SK_PREFIX,
    REVIEW_IMPORT_SK,
    CandidateCountsItem,
    CandidateItem,
    ReviewImportItem,
)
from crmsync.models.keys import user_pk
from tests.fakes.world import RecordingQueue
from tests.integration.test_contact_review import (  # noqa: F401 - fixtures
    ROWS,
    account,
    everyone,
    graph,
    review_world,
    work,
)
from tests.integration.test_contact_sync import ALICE
from tests.support import clock
from tests.support.google_people import person

pytestmark = pytest.mark.integration

PK = user_pk(ALICE.tenant_id, ALICE.user_id)


def counted() -> dict[CandidateStatus, int]:
    """The truth: a real count query per status over every candidate."""
    return {
        status: int(
            CandidateItem.count(
                PK,
                CandidateItem.sk.startswith(CANDIDATE_SK_PREFIX),
                filter_condition=CandidateItem.status == status.value,
                consistent_read=True,
            )
        )
        for status in CandidateStatus
    }


def stored() -> dict[CandidateStatus, int]:
    """The counts item as stored (no recount when it is missing: that raises)."""
    item = CandidateCountsItem.get(PK, CANDIDATE_COUNTS_SK, consistent_read=True)
    return {
        CandidateStatus.OFFERED: int(item.offered),
        CandidateStatus.DECLINED: int(item.declined),
        CandidateStatus.IMPORTED: int(item.imported),
    }


def exact() -> dict[CandidateStatus, int]:
    truth = counted()
    assert stored() == truth
    return truth


def tick(g: Graph, n: int) -> list[str]:
    page, _ = g.contact_review.page(ALICE)
    ids = [c.candidate_id for c in page.candidates[:n]]
    assert g.contact_review.select(ALICE, ids, True) == n
    return ids


def test_the_counts_item_stays_exact_through_syncs_answers_imports_restores_and_disconnect(
    review_world,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    g, queue, connection_id, user = review_world
    assert exact()[CandidateStatus.OFFERED] == ROWS  # the sync's rebuild stored them

    tick(g, 3)
    g.contact_review.answer(ALICE, ReviewAction.IMPORT_DONE)
    work(g, queue)
    assert exact() == {CandidateStatus.OFFERED: 0, CandidateStatus.DECLINED: ROWS - 3, CandidateStatus.IMPORTED: 3}

    declined, _ = g.contact_review.page(ALICE, CandidateStatus.DECLINED)
    assert declined.total == ROWS - 3
    assert g.contact_review.restore(ALICE, [c.candidate_id for c in declined.candidates[:2]]) == 2
    assert exact()[CandidateStatus.OFFERED] == 2

    user.add(person("Late", "Comer", ("late@example.com",)))
    g.contact_sync.run(ALICE, connection_id)
    assert exact()[CandidateStatus.OFFERED] == 3

    tick(g, 1)
    g.contact_review.answer(ALICE, ReviewAction.IMPORT_LATER)
    work(g, queue)
    # The sync removed the rows imported first (they match CRM contacts now).
    assert exact() == {CandidateStatus.OFFERED: 2, CandidateStatus.DECLINED: ROWS - 5, CandidateStatus.IMPORTED: 1}
    assert g.contact_review.page(ALICE)[0].total == 2

    g.contact_sync.forget_connection(ALICE, connection_id)  # disconnect
    assert exact() == dict.fromkeys(CandidateStatus, 0)


def test_a_missing_counts_item_is_recounted_and_stored(review_world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    g, _, _, _ = review_world
    CandidateCountsItem(PK, CANDIDATE_COUNTS_SK).delete()  # data from before the counts item
    assert g.contact_review.page(ALICE)[0].total == ROWS
    assert exact()[CandidateStatus.OFFERED] == ROWS


def test_an_older_snapshot_never_overwrites_a_newer_one(review_world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    g, _, _, _ = review_world
    now = clock.now()
    assert g.candidates.store_counts(ALICE, {CandidateStatus.OFFERED: 7}, now + timedelta(hours=1))
    assert not g.candidates.store_counts(ALICE, {CandidateStatus.OFFERED: 99}, now)
    # A recount begins now: its snapshot is older than the one stored, so it is not stored.
    assert g.candidates.recount(ALICE)[CandidateStatus.OFFERED] == ROWS
    assert g.candidates.count(ALICE) == 7
    assert g.candidates.store_counts(ALICE, {CandidateStatus.OFFERED: 8}, now + timedelta(hours=2))
    assert g.candidates.count(ALICE) == 8


def _strip_created_at(candidate_id: str) -> None:
    """Make the row look like one stored before rows had ``created_at``."""
    CandidateItem._get_connection().update_item(
        PK, CANDIDATE_SK_PREFIX + candidate_id, actions=[CandidateItem.created_at.remove()]
    )


def test_a_row_created_after_the_answer_is_not_declined_by_its_job(review_world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    g, queue, connection_id, user = review_world
    legacy = everyone(g, CandidateStatus.OFFERED)[0]
    _strip_created_at(legacy)
    g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT)
    # A sync queued before the answer runs before its job (one FIFO group) and finds a new contact.
    user.add(person("Late", "Comer", ("late@example.com",)))
    g.contact_sync.run(ALICE, connection_id)
    work(g, queue)

    [late] = g.contact_review.page(ALICE)[0].candidates
    assert late.emails == ("late@example.com",)
    declined = everyone(g, CandidateStatus.DECLINED)
    assert len(declined) == ROWS
    assert legacy in declined  # a row without created_at counts as existing
    _, last = g.contact_review.page(ALICE)
    assert last is not None
    assert (last.state, last.declined) == ("done", ROWS)
    assert exact()[CandidateStatus.OFFERED] == 1


def _everything() -> list[dict[str, Any]]:
    items = CandidateItem.query(PK, CandidateItem.sk.startswith(CANDIDATE_SK_PREFIX), consistent_read=True)
    counts = CandidateCountsItem.get(PK, CANDIDATE_COUNTS_SK, consistent_read=True)
    record = ReviewImportItem.get(PK, REVIEW_IMPORT_SK, consistent_read=True)
    return [i.serialize() for i in items] + [counts.serialize(), record.serialize()]


def test_the_job_run_twice_changes_nothing_the_second_time(review_world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    g, queue, _, _ = review_world
    tick(g, 4)
    g.contact_review.answer(ALICE, ReviewAction.IMPORT_DONE)
    [_answer] = queue.take()
    first = g.contact_review.run_answer(ALICE)
    assert first is not None
    assert (first.state, first.done, first.declined) == ("done", 4, ROWS - 4)
    before = _everything()
    contacts = [(c.contact_id, c.version) for c in g.contacts.page(ALICE, None, 100).items]

    assert g.contact_review.run_answer(ALICE) == first  # SQS delivered it again
    assert _everything() == before
    assert [(c.contact_id, c.version) for c in g.contacts.page(ALICE, None, 100).items] == contacts


def test_proceed_no_import_over_many_rows_declines_every_one_in_bulk(review_world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    g, queue, _, _ = review_world
    many = 600  # 24 batches of 25
    g.candidates.upsert(
        ALICE,
        [
            Candidate(
                candidate_id=f"bulk{i:04d}",
                status=CandidateStatus.OFFERED,
                given_name=f"Bulk{i}",
                emails=(f"bulk{i:04d}@example.com",),
                members=(("elsewhere", f"people/c{i}"),),
            )
            for i in range(many)
        ],
        set(),
    )
    g.candidates.recount(ALICE)
    assert g.contact_review.page(ALICE)[0].total == ROWS + many

    g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT)
    assert isinstance(queue, RecordingQueue)
    work(g, queue)
    assert everyone(g, CandidateStatus.OFFERED) == []
    assert exact() == {CandidateStatus.OFFERED: 0, CandidateStatus.DECLINED: ROWS + many, CandidateStatus.IMPORTED: 0}
    rows = list(CandidateItem.query(PK, CandidateItem.sk.startswith("CANDIDATE#bulk"), consistent_read=True))
    assert len(rows) == many
    assert {(r.status, r.version) for r in rows} == {(CandidateStatus.DECLINED.value, 2)}
    _, last = g.contact_review.page(ALICE)
    assert last is not None
    assert (last.state, last.declined) == ("done", ROWS + many)


def test_bulk_declines_leave_the_counts_exact_and_spare_the_ticked_rows(review_world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    g, _, _, _ = review_world
    ticked = tick(g, 2)
    assert g.candidates.decline_offered(ALICE, created_by=clock.now(), selected=False) == ROWS - 2
    assert exact() == {CandidateStatus.OFFERED: 2, CandidateStatus.DECLINED: ROWS - 2, CandidateStatus.IMPORTED: 0}
    assert everyone(g, CandidateStatus.OFFERED) == sorted(ticked)
    assert g.candidates.decline_offered(ALICE, created_by=clock.now(), selected=False) == 0  # idempotent
