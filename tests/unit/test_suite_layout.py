"""How the suite runs under `make test` (`pytest -n 2 --dist worksteal`).

Every worker starts its own DynamoDB Local and stack the first time one of its tests asks, so
any test may run on any worker. An ``xdist_group`` would pin tests to one worker again and put
them back on the suite's critical path (all stack tests on one worker took the suite past 15
minutes), so none is used; this fails when one creeps back in with a copied ``pytestmark``.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_module_pins_its_tests_to_one_worker() -> None:
    pinned = [
        str(path.relative_to(TESTS))
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve() and "xdist_group" in path.read_text(encoding="utf-8")
    ]
    assert pinned == []
