"""Routes of /v1/contacts/review: the contact import review (F10, seed 004 steps 6–10)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from crmsync.api.http import principal_of
from crmsync.api.openapi import ID_PATTERN, answer, responses
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.domain.contacts import Candidate, CandidateStatus, Consent, ReviewAction, ReviewImport
from crmsync.logic.contact_review import MAX_SELECTION, PAGE_SIZE, ContactReview

router = APIGatewayHttpRouter()

CandidateId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
CandidateIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]],
    Field(min_length=1, max_length=MAX_SELECTION),
]


def review() -> ContactReview:
    return graph().contact_review


class CandidateOut(BaseModel):
    id: str
    name: str | None
    given_name: str | None
    family_name: str | None
    emails: list[str]
    phones: list[str]
    organization: str | None
    status: CandidateStatus
    selected: bool
    contact_type: str | None
    consent: Consent | None
    #: How many Google contacts (in the user's accounts) the row stands for.
    google_contacts: int

    @classmethod
    def of(cls, c: Candidate) -> CandidateOut:
        return cls(
            id=c.candidate_id,
            name=c.name,
            given_name=c.given_name,
            family_name=c.family_name,
            emails=list(c.emails),
            phones=list(c.phones),
            organization=c.organization,
            status=c.status,
            selected=c.selected,
            contact_type=c.contact_type,
            consent=c.consent,
            google_contacts=len(c.members),
        )


class ReviewImportOut(BaseModel):
    action: ReviewAction
    state: Literal["running", "done"]
    total: int = Field(description="Rows the answer imports.")
    done: int = Field(description="Rows imported so far.")
    failed: int = Field(description="Rows that could not become contacts; they stay offered.")
    declined: int | None = Field(
        description="Rows the answer declined; null until its background job has declined them."
    )
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, r: ReviewImport) -> ReviewImportOut:
        return cls(
            action=r.action,
            state="done" if r.state == "done" else "running",
            total=r.total,
            done=r.done,
            failed=r.failed,
            declined=r.declined,
            started_at=r.started_at,
            finished_at=r.finished_at,
        )


class ReviewPage(BaseModel):
    items: list[CandidateOut]
    total: int = Field(description="Rows with this status, on every page.")
    next_cursor: str | None
    last_import: ReviewImportOut | None


class ChoiceIn(BaseModel):
    """What the request names changes; ``null`` for ``contact_type`` or ``consent`` sets it
    back to not chosen."""

    model_config = ConfigDict(extra="forbid")

    selected: StrictBool | None = None
    contact_type: Annotated[str, Field(max_length=64)] | None = None
    consent: Consent | None = None


class SelectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate_ids: CandidateIds
    selected: StrictBool = True


class RowsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate_ids: CandidateIds


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ReviewAction = Field(
        description="no-import: decline every row; import-done: import the selected rows and "
        "decline the rest for good; import-later: import the selected rows, offer the rest again."
    )


class RowsOut(BaseModel):
    rows: int


@router.get("/v1/contacts/review", responses=responses(200, ReviewPage))
def get_review(
    status: Annotated[Literal["offered", "declined"], Query()] = "offered",
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SELECTION)] = PAGE_SIZE,
) -> Response[ReviewPage]:
    """A page of the review: the offered rows ("New Contacts Found"), or the declined ones."""
    principal = principal_of(router.current_event, get_settings())
    page, last = review().page(principal, CandidateStatus(status), cursor, limit)
    body = ReviewPage(
        items=[CandidateOut.of(c) for c in page.candidates],
        total=page.total,
        next_cursor=page.cursor,
        last_import=ReviewImportOut.of(last) if last else None,
    )
    return answer(200, body)


@router.patch("/v1/contacts/review/<candidate_id>", responses=responses(200, CandidateOut, 404, body=True))
def choose_row(candidate_id: CandidateId, body: Annotated[ChoiceIn, Body()]) -> Response[CandidateOut]:
    """One row's checkbox, contact type and consent (kept when the user pages on or leaves)."""
    principal = principal_of(router.current_event, get_settings())
    cleared = [
        name for name in ("contact_type", "consent") if name in body.model_fields_set and getattr(body, name) is None
    ]
    chosen = review().choose(
        principal,
        candidate_id,
        selected=body.selected,
        contact_type=body.contact_type,
        consent=body.consent,
        clear=cleared,
    )
    return answer(200, CandidateOut.of(chosen))


@router.post("/v1/contacts/review/select", responses=responses(200, RowsOut, body=True))
def select_rows(body: Annotated[SelectIn, Body()]) -> Response[RowsOut]:
    """Tick (or untick) the rows of a page at once ("select all")."""
    principal = principal_of(router.current_event, get_settings())
    return answer(200, RowsOut(rows=review().select(principal, body.candidate_ids, body.selected)))


@router.post("/v1/contacts/review/answer", responses=responses(202, ReviewImportOut, 409, body=True))
def answer_review(body: Annotated[AnswerIn, Body()]) -> Response[ReviewImportOut]:
    """One of the three answers, for every row of the review, seen or not. It is carried out in
    the background (declines, then imports): GET /v1/contacts/review shows it in
    ``last_import`` until its ``state`` is ``done``."""
    principal = principal_of(router.current_event, get_settings())
    return answer(202, ReviewImportOut.of(review().answer(principal, body.action)))


@router.post("/v1/contacts/review/restore", responses=responses(200, RowsOut, body=True))
def restore_rows(body: Annotated[RowsIn, Body()]) -> Response[RowsOut]:
    """Bring declined rows back into the review ("Show declined")."""
    principal = principal_of(router.current_event, get_settings())
    return answer(200, RowsOut(rows=review().restore(principal, body.candidate_ids)))
