"""The PynamoDB models and template.yaml describe the same tables (one source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from pynamodb.models import Model

from crmsync.models import CalendarItem, ConnectionItem, OAuthStateItem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    template, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return dict(template["Resources"])


@pytest.mark.parametrize(
    ("model", "logical_id"),
    [(ConnectionItem, "ConnectionsTable"), (CalendarItem, "ConnectionsTable"), (OAuthStateItem, "OAuthStatesTable")],
)
def test_model_keys_and_ttl_match_the_template(model: type[Model], logical_id: str, resources: dict[str, Any]) -> None:
    props = resources[logical_id]["Properties"]
    schema = model._get_schema()
    template_keys = {(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]}
    model_keys = {(k["AttributeName"], k["KeyType"]) for k in schema["key_schema"]}
    assert model_keys == template_keys
    template_types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    model_types = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    assert model_types == template_types
    template_indexes = {i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])}
    assert {i["index_name"] for i in schema["global_secondary_indexes"]} == template_indexes
    ttl = props.get("TimeToLiveSpecification")
    model_ttl = [name for name, attr in model.get_attributes().items() if type(attr).__name__ == "TTLAttribute"]
    assert ([ttl["AttributeName"]] if ttl else []) == model_ttl


def test_every_table_is_bound_to_a_model_by_an_env_var(resources: dict[str, Any]) -> None:
    template, _ = decode(str(ROOT / "template.yaml"))
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    referenced = {v["Ref"] for v in env.values() if isinstance(v, dict) and "Ref" in v}
    tables = {k for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"}
    assert tables <= referenced
