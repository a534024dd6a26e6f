from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def unique() -> str:
    """A fresh id per test: tests share one stack and stay apart by tenant."""
    return uuid.uuid4().hex[:12]
