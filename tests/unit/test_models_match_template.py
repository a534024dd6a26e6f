"""The PynamoDB models and template.yaml describe the same tables (one source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from pynamodb.models import Model

from crmsync.models import AppointmentItem, CalendarItem, ConnectionItem, OAuthStateItem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    template, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return dict(template["Resources"])


@pytest.mark.parametrize(
    ("models", "logical_id"),
    [
        ((ConnectionItem, CalendarItem, AppointmentItem), "ConnectionsTable"),
        ((OAuthStateItem,), "OAuthStatesTable"),
    ],
)
def test_model_keys_indexes_and_ttl_match_the_template(
    models: tuple[type[Model], ...], logical_id: str, resources: dict[str, Any]
) -> None:
    """Every model of a table has the table's keys; the indexes and their attribute types
    declared by the models are the template's, exactly."""
    props = resources[logical_id]["Properties"]
    template_keys = {(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]}
    template_types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    template_indexes = {
        i["IndexName"]: {(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]}
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
        for i in props.get(kind, [])
    }
    model_types: dict[str, str] = {}
    model_indexes: dict[str, set[tuple[str, str]]] = {}
    for model in models:
        schema = model._get_schema()
        assert {(k["AttributeName"], k["KeyType"]) for k in schema["key_schema"]} == template_keys
        model_types.update({a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]})
        for index in schema["global_secondary_indexes"] + schema["local_secondary_indexes"]:
            model_indexes[index["index_name"]] = {(k["AttributeName"], k["KeyType"]) for k in index["key_schema"]}
    assert model_types == template_types
    assert model_indexes == template_indexes
    ttl = props.get("TimeToLiveSpecification")
    for model in models:
        model_ttl = [name for name, attr in model.get_attributes().items() if type(attr).__name__ == "TTLAttribute"]
        assert model_ttl in ([], [ttl["AttributeName"]] if ttl else [])
    if ttl:
        assert any(type(a).__name__ == "TTLAttribute" for m in models for a in m.get_attributes().values())


def test_every_table_is_bound_to_a_model_by_an_env_var(resources: dict[str, Any]) -> None:
    template, _ = decode(str(ROOT / "template.yaml"))
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    referenced = {v["Ref"] for v in env.values() if isinstance(v, dict) and "Ref" in v}
    tables = {k for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"}
    assert tables <= referenced
