"""The mass-deletion guard's rule (crmsync.guard): which deletions wait for the user."""

from __future__ import annotations

import pytest

from crmsync.guard import DeletionThreshold

GUARD = DeletionThreshold(share=0.5, minimum=20)


@pytest.mark.parametrize(
    ("deletions", "mirrored", "complete", "held"),
    [
        (40, 40, True, True),  # a full sync that lists none of a non-trivial mirror
        (40, 40, False, True),  # any sync that would empty it
        (312, 315, True, True),  # most of it, in a complete list
        (312, 315, False, False),  # most of it, incrementally: a user clearing on purpose
        (20, 39, True, True),  # just over half
        (20, 40, True, False),  # exactly half is not more than half
        (19, 19, True, False),  # a trivial mirror is never guarded
        (0, 0, True, False),
    ],
)
def test_which_deletions_are_held(deletions: int, mirrored: int, complete: bool, held: bool) -> None:
    assert GUARD.holds(deletions, mirrored, complete=complete) is held
