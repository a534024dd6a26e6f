"""Every route the API function serves is a route of the HTTP API in template.yaml, and the
other way round: a route only in the code would answer API Gateway's 404 in AWS (schemathesis
found one), a route only in the template would reach a handler that does not know it."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.openapi import _api_app
from devstack.template import LocalContext, load_template

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"JwtIssuer": "http://127.0.0.1:3000/.devstack/issuer", "GoogleClientId": "client-1"}


def _shape(path: str) -> str:
    """A path with its parameters unnamed: ``/v1/contacts/{}``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_the_api_functions_routes_are_the_templates() -> None:
    app = _api_app()
    served = {(r.method.upper(), _shape(r.path)) for r in [*app._static_routes, *app._dynamic_routes]}
    template = load_template(ROOT / "template.yaml").resolve(
        REQUIRED, LocalContext(table_prefix="p_", aws_endpoint="http://127.0.0.1:5001")
    )
    routed = {(r.method.upper(), _shape(r.path)) for r in template.routes if r.function == "ApiFunction"}
    unrouted = {(m, p) for m, p in served if (m, p) not in routed and ("ANY", p) not in routed}
    assert unrouted == set(), "routes the code serves but API Gateway does not route"
    unserved = {
        (m, p) for m, p in routed if (m, p) not in served and not (m == "ANY" and any(q == p for _, q in served))
    }
    assert unserved == set(), "routes API Gateway sends to the API function that no code serves"
