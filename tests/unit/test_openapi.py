"""docs/openapi.json is what the API's routes say, and it says what the API answers."""

from __future__ import annotations

import json

from devstack.openapi import DOCUMENT, render


def test_the_committed_openapi_document_is_current() -> None:
    assert DOCUMENT.read_text() == render(), "docs/openapi.json is stale: run `make openapi`"


def test_no_operation_documents_a_string_200_or_powertools_validation_error() -> None:
    document = json.loads(render())
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, (method, path)
            # Two successes only when each has its model (never-log add: 201 added, 200 already there).
            assert len(success) == 1 or all(responses[code].get("content") for code in success), (method, path)
            for code in success:
                for media in responses[code].get("content", {}).values():
                    assert media["schema"].get("type") != "string", (method, path, code)
            for code, response in responses.items():
                if code.startswith("4") and code != "401":
                    assert list(response["content"]) == ["application/problem+json"], (method, path, code)


def test_creates_answer_201_and_path_parameters_have_an_alphabet() -> None:
    document = json.loads(render())
    assert "201" in document["paths"]["/v1/appointments"]["post"]["responses"]
    parameters = document["paths"]["/v1/appointments/{appointment_id}"]["get"]["parameters"]
    (appointment_id,) = [p for p in parameters if p["in"] == "path"]
    assert appointment_id["schema"]["maxLength"] <= 128
    assert appointment_id["schema"]["pattern"]
