"""`make test-at`: a faked clock (libfaketime's variables) reaches every Lambda worker, and
nothing else of the test runner's environment does."""

from __future__ import annotations

import pytest

from devstack.faketime import clock_variables, without_clock_variables

pytestmark = pytest.mark.integration

FAKED = {"LD_PRELOAD": "/x/monotonic_sleep.so", "FAKETIME": "+45d", "FAKETIME_SKIP_CMDS": "java"}


def test_the_clock_variables_are_libfaketimes_and_only_those() -> None:
    environ = {**FAKED, "HOME": "/root", "MY_FAKETIME_NOTE": "x"}
    assert clock_variables(environ) == FAKED
    assert without_clock_variables(environ) == {"HOME": "/root", "MY_FAKETIME_NOTE": "x"}


def test_a_faked_clock_reaches_the_workers(stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TEST_RUNNER_SECRET", "not for workers")
    env = stack.worker_environment("ApiFunction")
    assert clock_variables(env) == FAKED
    assert "TEST_RUNNER_SECRET" not in env
