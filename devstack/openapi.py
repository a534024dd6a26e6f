"""docs/openapi.json, generated from the API function's routes.

``python -m devstack.openapi`` writes it (``make openapi``); ``--check`` exits 1 when the
committed file differs (tests/unit/test_openapi.py runs the same comparison).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"

DESCRIPTION = (
    "The CRM-facing REST API of crmsync. Every operation needs a bearer JWT naming the tenant "
    "and the user; errors are RFC 9457 problem documents (application/problem+json). "
    "See docs/API.md."
)


def _api_app() -> Any:
    sys.path.insert(0, str(ROOT / "layers"))
    spec = importlib.util.spec_from_file_location("crmsync_api_function", ROOT / "functions" / "api" / "app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("functions/api/app.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.api.full()  # every router (the function loads them request by request)


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of /v1 (the settings pages are not part of the API)."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app = _api_app()
    schema = json.loads(
        app.get_openapi_json_schema(
            title="crmsync API",
            version="1",
            description=DESCRIPTION,
            security_schemes={"bearer": HTTPBearer(bearerFormat="JWT")},
            security=[{"bearer": []}],
        )
    )
    schema["paths"] = {path: ops for path, ops in sorted(schema["paths"].items()) if path.startswith("/v1/")}
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation["responses"] = dict(sorted(operation["responses"].items()))
            # powertools documents a route's return type under every success status; a 204
            # has no body (RFC 9110), so it documents none.
            operation["responses"].get("204", {}).pop("content", None)
    _drop_unused_components(schema)
    return schema


def _drop_unused_components(schema: dict[str, Any]) -> None:
    """powertools adds HTTPValidationError for every validated route; the API answers
    problem documents instead, so schemas no operation refers to are dropped."""
    components = schema.get("components", {}).get("schemas", {})
    used: set[str] = set()
    pending = [json.dumps(schema["paths"])]
    while pending:
        text = pending.pop()
        for name in components:
            if name not in used and f'"#/components/schemas/{name}"' in text:
                used.add(name)
                pending.append(json.dumps(components[name]))
    schema["components"]["schemas"] = {k: v for k, v in sorted(components.items()) if k in used}


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            print("docs/openapi.json is stale: run `make openapi`", file=sys.stderr)  # noqa: T201
            return 1
        return 0
    DOCUMENT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
