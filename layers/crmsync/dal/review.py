"""The user's last answer to the review and how far its background job is (sk
``REVIEW#import``): ``running`` from the answer until the job has declined and imported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from crmsync.dal.versioned import update_unread
from crmsync.domain import Principal
from crmsync.domain.contacts import ReviewAction, ReviewImport
from crmsync.models.gcontacts import REVIEW_IMPORT_SK, ReviewImportItem
from crmsync.models.keys import user_pk


def _to_domain(item: ReviewImportItem) -> ReviewImport:
    return ReviewImport(
        action=ReviewAction(item.action),
        total=int(item.total),
        done=int(item.done),
        failed=int(item.failed or 0),
        state=item.state,
        started_at=item.started_at,
        finished_at=item.finished_at,
        declined=None if item.declined is None else int(item.declined),
    )


class ReviewImportStore:
    def get(self, principal: Principal) -> ReviewImport | None:
        try:
            item = ReviewImportItem.get(
                user_pk(principal.tenant_id, principal.user_id), REVIEW_IMPORT_SK, consistent_read=True
            )
        except DoesNotExist:
            return None
        return _to_domain(item)

    def start(self, principal: Principal, action: ReviewAction, total: int) -> ReviewImport:
        """A new answer: its job (declines, then an import of ``total`` rows) begins; the last
        answer's record goes."""
        item = ReviewImportItem(
            user_pk(principal.tenant_id, principal.user_id),
            REVIEW_IMPORT_SK,
            action=action.value,
            total=total,
            done=0,
            failed=0,
            state="running",
            started_at=datetime.now(UTC),
            finished_at=None,
        )
        item.save(add_version_condition=False)
        return _to_domain(item)

    def declined(self, principal: Principal, declined: int) -> None:
        """The answer's job has declined its rows (``declined`` of them); its import follows."""
        update_unread(
            ReviewImportItem,
            user_pk(principal.tenant_id, principal.user_id),
            REVIEW_IMPORT_SK,
            [ReviewImportItem.declined.set(declined)],
            condition=ReviewImportItem.sk.exists(),
        )

    def progress(self, principal: Principal, done: int, failed: int = 0, *, finished: bool = False) -> None:
        """Add to the counts of rows imported (and refused); ``finished``: the import is over."""
        actions: list[Any] = [ReviewImportItem.done.add(done), ReviewImportItem.failed.add(failed)]
        if finished:
            actions += [ReviewImportItem.state.set("done"), ReviewImportItem.finished_at.set(datetime.now(UTC))]
        update_unread(
            ReviewImportItem,
            user_pk(principal.tenant_id, principal.user_id),
            REVIEW_IMPORT_SK,
            actions,
            condition=ReviewImportItem.sk.exists(),
        )
