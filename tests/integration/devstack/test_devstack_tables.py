"""Tables come from the template definitions (TTL included) and prefixes isolate them."""

from __future__ import annotations

import pytest

from devstack.dynamodb_local import dynamodb_client
from devstack.stack import Stack

pytestmark = pytest.mark.integration


def test_real_template_tables_with_ttl(dynamodb_endpoint: str, tables: dict[str, str], table_prefix: str) -> None:
    client = dynamodb_client(dynamodb_endpoint)
    assert tables == {
        "ConnectionsTable": f"{table_prefix}ConnectionsTable",
        "OAuthStatesTable": f"{table_prefix}OAuthStatesTable",
        "IdempotencyTable": f"{table_prefix}IdempotencyTable",
    }
    connections = client.describe_table(TableName=tables["ConnectionsTable"])["Table"]
    assert connections["TableStatus"] == "ACTIVE"
    assert connections["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert connections["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = client.describe_time_to_live(TableName=tables["OAuthStatesTable"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    kept = client.describe_time_to_live(TableName=tables["IdempotencyTable"])["TimeToLiveDescription"]
    assert kept == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}
    no_ttl = client.describe_time_to_live(TableName=tables["ConnectionsTable"])["TimeToLiveDescription"]
    assert no_ttl["TimeToLiveStatus"] == "DISABLED"


def test_prefixes_isolate(dynamodb_endpoint: str, tables: dict[str, str]) -> None:
    client = dynamodb_client(dynamodb_endpoint)
    client.put_item(TableName=tables["OAuthStatesTable"], Item={"pk": {"S": "state-1"}})
    # The runtime stack's and any other test's tables are other tables.
    other = [name for name in client.list_tables()["TableNames"] if name.endswith("OAuthStatesTable")]
    for name in other:
        if name != tables["OAuthStatesTable"]:
            assert "Item" not in client.get_item(TableName=name, Key={"pk": {"S": "state-1"}})
    assert "Item" in client.get_item(TableName=tables["OAuthStatesTable"], Key={"pk": {"S": "state-1"}})


def test_runtime_stack_tables_have_the_gsi_and_ttl(runtime_stack: Stack) -> None:
    client = runtime_stack.aws_client("dynamodb")
    table = client.describe_table(TableName="rt_ItemsTable")["Table"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    ttl = client.describe_time_to_live(TableName="rt_ItemsTable")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_runtime_stack_queues_keys_and_secrets(runtime_stack: Stack) -> None:
    sqs = runtime_stack.aws_client("sqs")
    queue = runtime_stack.template.queues["WorkQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["VisibilityTimeout"] == "1"  # the stack's override
    assert '"maxReceiveCount": 2' in attributes["RedrivePolicy"] or '"maxReceiveCount":2' in attributes["RedrivePolicy"]
    kms = runtime_stack.aws_client("kms")
    key_id = runtime_stack.function_environment("EchoFunction")["KEY_ALIAS"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    secrets = runtime_stack.aws_client("secretsmanager")
    secret = runtime_stack.template.secrets["FixtureSecret"]
    value = secrets.get_secret_value(SecretId=secret.name)["SecretString"]
    assert len(value) == 20
    assert value.isalnum()
