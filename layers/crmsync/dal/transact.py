"""Reading why a DynamoDB transaction was cancelled."""

from __future__ import annotations

from pynamodb.exceptions import TransactWriteError

CONDITION_FAILED = "ConditionalCheckFailed"


def failed_conditions(exc: TransactWriteError) -> set[int]:
    """Positions of the actions whose condition failed. Empty when the transaction was cancelled
    for another reason (a conflict with a concurrent transaction, throttling): that is transient.

    PynamoDB sends condition checks, deletes, puts and updates in that order; positions count
    in that order.
    """
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return {i for i, r in enumerate(reasons) if r is not None and getattr(r, "code", None) == CONDITION_FAILED}
