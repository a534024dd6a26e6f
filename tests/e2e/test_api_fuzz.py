"""The running local stack fuzzed from docs/openapi.json (schemathesis): for every operation,
generated requests (valid and invalid) get no 5xx, and every answer matches its documented
status, content type and schema. One tenant of its own, so no other test is disturbed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

pytestmark = [pytest.mark.e2e]

#: A request schemathesis made invalid may also be too large: the API refuses a body over its
#: documented limit with 413 (documented on every operation with a body) before it reads it,
#: which schemathesis's default list for rejected negative data leaves out.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [
                    *(str(status) for status in (400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429)),
                    "5xx",
                ]
            }
        }
    }
)
SCHEMA = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "docs" / "openapi.json", config=CONFIG)


#: Checks that do not fit this API, and why:
#: - unsupported_method wants 405 for an undeclared method; API Gateway answers every unrouted
#:   method and path with its own 404 {"message": "Not Found"} (docs/API.md), and we cannot
#:   change that in AWS;
#: - positive_data_acceptance wants every schema-valid body accepted; rules no JSON Schema can
#:   state refuse some with 422/409/404 by design (an unknown IANA zone, an end before its
#:   start, a time already booked, an id that names nothing).
NOT_APPLICABLE = [schemathesis.checks.unsupported_method, schemathesis.checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def tenant_token(stack) -> str:
    return stack.issue_token("fuzz" + uuid.uuid4().hex[:8], "fuzz" + uuid.uuid4().hex[:8])


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_operation_answers_as_documented_and_never_5xx(case, stack, tenant_token: str) -> None:
    # schemathesis generates the bearer header from the security scheme (random tokens), and
    # leaves it out on purpose in negative cases (answered 401 by the gateway): a generated
    # one becomes this tenant's token, a left-out one stays out.
    if case.headers and "Authorization" in case.headers:
        case.headers["Authorization"] = f"Bearer {tenant_token}"
    case.call_and_validate(base_url=stack.api_url, excluded_checks=NOT_APPLICABLE)
