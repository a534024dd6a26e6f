"""F10's import review on DynamoDB Local and the People emulator: the rows the real sync
offers, paged with a total, the user's choices kept server-side, and the three answers —
each applying to every row of the review, seen or not, and importing each row once."""

from __future__ import annotations

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.domain.contacts import CandidateStatus, Consent, ReviewAction
from crmsync.errors import Conflict, NotFound, Unprocessable
from crmsync.logic.contacts import ContactInput
from crmsync.messaging.messages import ContactImportRequest
from tests.fakes.world import RecordingQueue
from tests.integration.test_contact_sync import ALICE, account  # noqa: F401 - the fixture
from tests.support.events import RecordingPublisher
from tests.support.google_people import GooglePeopleUser, person

pytestmark = pytest.mark.integration

ROWS = 60  # more than a page of 50


@pytest.fixture
def graph(service_env: dict[str, str]) -> Graph:
    """The production graph with the contacts feature on, its queue and bus recording."""
    settings = Settings.from_env(service_env)
    google = settings.google.model_copy(update={"features": ("calendar", "contacts")})
    built = Graph(settings.model_copy(update={"google": google}))
    built.queue = RecordingQueue()  # type: ignore[misc] - before any use case is built
    built.events = RecordingPublisher()  # type: ignore[misc]
    return built


@pytest.fixture
def review_world(
    graph: Graph,
    account: tuple[str, GooglePeopleUser],  # noqa: F811
) -> tuple[Graph, RecordingQueue, str, GooglePeopleUser]:
    """Ada's contacts account with ``ROWS`` Google contacts the CRM does not have, synced."""
    queue = graph.queue
    assert isinstance(queue, RecordingQueue)
    connection_id, user = account
    for i in range(ROWS):
        user.add(person(f"Person{i:02d}", "Row", (f"row{i:02d}@example.com",)))
    graph.contact_sync.run(ALICE, connection_id)
    queue.take()
    return graph, queue, connection_id, user


def everyone(g: Graph, status: CandidateStatus) -> list[str]:
    return sorted(g.candidates.ids(ALICE, status))


def work(g: Graph, queue: RecordingQueue) -> None:
    """The worker, for the review's queued answers (delivered twice: SQS is at-least-once)."""
    messages = queue.take()
    assert messages, "an answer always queues its job"
    for message in messages:
        assert isinstance(message, ContactImportRequest)
        g.contact_review.run_answer(ALICE)
        g.contact_review.run_answer(ALICE)


def test_pages_of_50_with_the_total_and_choices_kept_server_side(review_world) -> None:  # type: ignore[no-untyped-def]
    g, _, _, _ = review_world
    first, last = g.contact_review.page(ALICE)
    assert (len(first.candidates), first.total, last) == (50, ROWS, None)
    second, _ = g.contact_review.page(ALICE, cursor=first.cursor)
    assert (len(second.candidates), second.cursor) == (ROWS - 50, None)
    assert not {c.candidate_id for c in first.candidates} & {c.candidate_id for c in second.candidates}

    row = second.candidates[0]
    g.contact_review.choose(ALICE, row.candidate_id, selected=True, contact_type="client", consent=Consent.IMPLIED)
    again, _ = g.contact_review.page(ALICE, cursor=first.cursor)  # the user pages back and forth
    kept = next(c for c in again.candidates if c.candidate_id == row.candidate_id)
    assert (kept.selected, kept.contact_type, kept.consent) == (True, "client", Consent.IMPLIED)
    with pytest.raises(Unprocessable):
        g.contact_review.choose(ALICE, row.candidate_id, contact_type="enemy")
    with pytest.raises(NotFound):
        g.contact_review.choose(ALICE, "nosuchrow", selected=True)
    with pytest.raises(Unprocessable):
        g.contact_review.select(ALICE, [f"r{i}" for i in range(10_000)], True)


def _choose_two_pages(g: Graph) -> list[str]:
    """Rows on both pages selected, with their type and consent."""
    first, _ = g.contact_review.page(ALICE)
    second, _ = g.contact_review.page(ALICE, cursor=first.cursor)
    chosen = [first.candidates[0], first.candidates[7], second.candidates[3]]
    for c in chosen:
        g.contact_review.choose(ALICE, c.candidate_id, selected=True, contact_type="lead", consent=Consent.EXPRESS)
    return sorted(c.candidate_id for c in chosen)


def test_proceed_no_import_declines_every_row_and_offers_only_later_ones(
    review_world,  # type: ignore[no-untyped-def]
) -> None:
    g, queue, connection_id, user = review_world
    _choose_two_pages(g)
    record = g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT)
    # Recorded only: the declining is the background job's.
    assert (record.total, record.state, record.declined) == (0, "running", None)
    assert len(everyone(g, CandidateStatus.OFFERED)) == ROWS
    assert g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT) == record  # a double click
    with pytest.raises(Conflict):
        g.contact_review.answer(ALICE, ReviewAction.IMPORT_LATER)
    work(g, queue)
    _, last = g.contact_review.page(ALICE)
    assert last is not None
    assert (last.state, last.declined, last.done) == ("done", ROWS, 0)
    assert everyone(g, CandidateStatus.OFFERED) == []
    assert len(everyone(g, CandidateStatus.DECLINED)) == ROWS
    assert [c.source for c in g.contacts.page(ALICE, None, 100).items] == []

    user.add(person("Late", "Comer", ("late@example.com",)))
    g.contact_sync.run(ALICE, connection_id)
    # The declined rows are not offered again; the contact new to Google is.
    [late] = g.contact_review.page(ALICE)[0].candidates
    assert late.emails == ("late@example.com",)


def test_import_selected_done_imports_the_chosen_rows_and_declines_the_rest_for_good(
    review_world,  # type: ignore[no-untyped-def]
) -> None:
    g, queue, connection_id, _ = review_world
    chosen = _choose_two_pages(g)
    record = g.contact_review.answer(ALICE, ReviewAction.IMPORT_DONE)
    assert (record.total, record.state) == (3, "running")
    assert g.contact_review.answer(ALICE, ReviewAction.IMPORT_DONE) == record  # a double click
    with pytest.raises(Conflict):
        g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT)
    work(g, queue)

    _, last = g.contact_review.page(ALICE)
    assert last is not None
    assert (last.done, last.failed, last.state, last.declined) == (3, 0, "done", ROWS - 3)
    contacts = g.contacts.page(ALICE, None, 100).items
    assert len(contacts) == 3
    assert {(c.source, c.fields.contact_type, c.fields.consent) for c in contacts} == {
        ("google", "lead", Consent.EXPRESS)
    }
    assert all(c.google is not None and c.google.connection_id == connection_id for c in contacts)
    assert everyone(g, CandidateStatus.OFFERED) == []
    assert len(everyone(g, CandidateStatus.DECLINED)) == ROWS - 3
    imported = [e for e in g.events.events if e.detail_type == "ContactImported"]  # type: ignore[attr-defined]
    assert len(imported) == 3

    g.contact_sync.run(ALICE, connection_id)  # the next sync: nothing offered, nothing doubled
    assert everyone(g, CandidateStatus.OFFERED) == []
    assert len(g.contacts.page(ALICE, None, 100).items) == 3
    assert not set(chosen) & set(everyone(g, CandidateStatus.DECLINED))


def test_import_revisit_later_imports_the_chosen_rows_and_offers_the_rest_again(
    review_world,  # type: ignore[no-untyped-def]
) -> None:
    g, queue, connection_id, _ = review_world
    chosen = _choose_two_pages(g)
    g.contact_review.answer(ALICE, ReviewAction.IMPORT_LATER)
    work(g, queue)
    assert len(g.contacts.page(ALICE, None, 100).items) == 3
    g.contact_sync.run(ALICE, connection_id)
    left = everyone(g, CandidateStatus.OFFERED)
    assert len(left) == ROWS - 3
    assert not set(chosen) & set(left)
    assert everyone(g, CandidateStatus.DECLINED) == []


def test_a_row_whose_email_a_crm_contact_took_meanwhile_is_linked_not_doubled(
    review_world,  # type: ignore[no-untyped-def]
) -> None:
    g, queue, _, _ = review_world
    first, _ = g.contact_review.page(ALICE)
    row = first.candidates[0]
    g.contact_review.choose(ALICE, row.candidate_id, selected=True)
    mine = g.contacts.create(ALICE, ContactInput(given_name="Mine", emails=[row.emails[0]]))
    g.contact_review.answer(ALICE, ReviewAction.IMPORT_LATER)
    work(g, queue)
    contacts = g.contacts.page(ALICE, None, 100).items
    assert [c.contact_id for c in contacts] == [mine.contact_id]
    assert contacts[0].google is not None


def test_declined_rows_can_be_brought_back_on_purpose(review_world) -> None:  # type: ignore[no-untyped-def]
    g, queue, connection_id, _ = review_world
    g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT)
    work(g, queue)
    declined, _ = g.contact_review.page(ALICE, CandidateStatus.DECLINED)
    back = [c.candidate_id for c in declined.candidates[:2]]
    assert g.contact_review.restore(ALICE, back) == 2
    assert g.contact_review.restore(ALICE, back) == 0  # already offered
    g.contact_sync.run(ALICE, connection_id)
    assert everyone(g, CandidateStatus.OFFERED) == sorted(back)


def test_another_user_sees_none_of_the_rows(review_world) -> None:  # type: ignore[no-untyped-def]
    g, _, _, _ = review_world
    bob = Principal("tenant-a", "bob")
    page, _ = g.contact_review.page(bob)
    assert (page.candidates, page.total) == ([], 0)
    row = g.contact_review.page(ALICE)[0].candidates[0]
    with pytest.raises(NotFound):
        g.contact_review.choose(bob, row.candidate_id, selected=True)


def test_an_answer_whose_job_could_not_be_queued_is_queued_again_by_answering_again(
    review_world,  # type: ignore[no-untyped-def]
) -> None:
    """The queue refuses the first send (the answer is recorded, its job is not queued): the
    user clicks again, the job is queued and carries the answer out once."""
    g, queue, _, _ = review_world
    refused = RuntimeError("the queue is unreachable")

    def refuse(message: object) -> None:
        raise refused

    queue.send = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT)
    del queue.send  # the queue is back
    assert queue.take() == []
    record = g.contact_review.answer(ALICE, ReviewAction.NO_IMPORT)
    assert record.state == "running"
    work(g, queue)
    assert everyone(g, CandidateStatus.OFFERED) == []
    assert len(everyone(g, CandidateStatus.DECLINED)) == ROWS
