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
    template_projections = {
        i["IndexName"]: i["Projection"]
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
        for i in props.get(kind, [])
    }
    model_types: dict[str, str] = {}
    model_indexes: dict[str, set[tuple[str, str]]] = {}
    model_projections: dict[str, dict[str, Any]] = {}
    for model in models:
        schema = model._get_schema()
        assert {(k["AttributeName"], k["KeyType"]) for k in schema["key_schema"]} == template_keys
        model_types.update({a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]})
        for index in schema["global_secondary_indexes"] + schema["local_secondary_indexes"]:
            model_indexes[index["index_name"]] = {(k["AttributeName"], k["KeyType"]) for k in index["key_schema"]}
            model_projections[index["index_name"]] = index["projection"]
    assert model_types == template_types
    assert model_indexes == template_indexes
    assert model_projections == template_projections
    ttl = props.get("TimeToLiveSpecification")
    for model in models:
        model_ttl = [name for name, attr in model.get_attributes().items() if type(attr).__name__ == "TTLAttribute"]
        assert model_ttl in ([], [ttl["AttributeName"]] if ttl else [])
    if ttl:
        assert any(type(a).__name__ == "TTLAttribute" for m in models for a in m.get_attributes().values())


def test_every_table_is_bound_to_a_model_by_an_env_var(resources: dict[str, Any]) -> None:
    """Every table's name reaches code through an environment variable: of every function
    (Globals), or of the functions that use it (the idempotency table: the API's)."""
    template, _ = decode(str(ROOT / "template.yaml"))
    envs = [template["Globals"]["Function"]["Environment"]["Variables"]] + [
        r["Properties"].get("Environment", {}).get("Variables", {})
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    referenced = {v["Ref"] for env in envs for v in env.values() if isinstance(v, dict) and "Ref" in v}
    tables = {k for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"}
    assert tables <= referenced


def test_the_idempotency_table_has_the_keys_powertools_writes(resources: dict[str, Any]) -> None:
    """No PynamoDB model: powertools' DynamoDBPersistenceLayer owns the items (docs/DATA.md)."""
    import inspect

    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    props = resources["IdempotencyTable"]["Properties"]
    defaults = {n: p.default for n, p in inspect.signature(DynamoDBPersistenceLayer).parameters.items()}
    assert props["KeySchema"] == [{"AttributeName": defaults["key_attr"], "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": defaults["key_attr"], "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": defaults["expiry_attr"], "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"] == {"SSEEnabled": True}
    api = resources["ApiFunction"]["Properties"]
    assert api["Environment"]["Variables"]["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert {"DynamoDBCrudPolicy": {"TableName": {"Ref": "IdempotencyTable"}}} in api["Policies"]
