"""The runtime fixture application (tests/fixtures/runtime/template.yaml) on a local stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack

ROOT = Path(__file__).resolve().parents[3]
RUNTIME_TEMPLATE = ROOT / "tests" / "fixtures" / "runtime" / "template.yaml"


@pytest.fixture(scope="session")
def runtime_stack(dynamodb_endpoint: str) -> Iterator[Stack]:
    """The fixture application, sharing the session's DynamoDB Local under the prefix `rt_`."""
    with Stack(
        ROOT,
        template_path=RUNTIME_TEMPLATE,
        google=False,
        sqs_visibility_timeout=1,
        table_prefix="rt_",
        dynamodb_endpoint=dynamodb_endpoint,
        concurrency=4,
    ) as stack:
        yield stack
