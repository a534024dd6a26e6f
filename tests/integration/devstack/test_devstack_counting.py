"""The counting proxies of `Stack(count_requests=True)` (devstack/counting.py): each request
recorded by service and operation, DynamoDB's capacity units and partition keys, SQS's groups."""

from __future__ import annotations

import uuid

import pytest

from devstack.aws import aws_client
from devstack.counting import CountingProxy, RequestLog, hashed

pytestmark = pytest.mark.integration


def test_the_proxies_count_a_getitem_and_a_sendmessage_by_operation(stack, tables) -> None:
    # Given proxies in front of DynamoDB Local and moto
    log = RequestLog()
    table = tables["ConnectionsTable"]
    dynamodb_proxy = CountingProxy(stack.dynamodb_endpoint, log, "dynamodb").start()
    dynamodb_proxy.key_attributes[table] = ("pk",)
    aws_proxy = CountingProxy(stack.aws_endpoint, log, "aws").start()
    try:
        dynamodb = aws_client("dynamodb", dynamodb_proxy.endpoint)
        sqs = aws_client("sqs", aws_proxy.endpoint)
        pk = f"tenant#{uuid.uuid4().hex}"
        dynamodb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "a"}, "blob": {"S": "x" * 1500}})
        queue = sqs.create_queue(
            QueueName=f"count-{uuid.uuid4().hex[:8]}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        before = len(log)

        # When a function reads an item and sends a message
        dynamodb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "a"}}, ConsistentRead=True)
        sqs.send_message(QueueUrl=queue, MessageBody="hello", MessageGroupId="group-1")

        # Then each is recorded by its operation, with what the cost model needs
        get, send = log.snapshot()[before:]
        assert (get.service, get.operation, get.resources) == ("dynamodb", "GetItem", (table,))
        assert get.rcu == 1.0  # a strongly consistent read of under 4 KB
        assert get.wcu == 0.0
        assert get.keys == ((table, (("pk", hashed(pk)),)),)
        assert (send.service, send.operation) == ("sqs", "SendMessage")
        assert send.resources == (queue.rsplit("/", 1)[-1],)
        assert send.groups == (hashed("group-1"),)
        events = aws_client("events", aws_proxy.endpoint)
        events.put_events(Entries=[{"Source": "count", "DetailType": "t", "Detail": "{}"}] * 3)
        assert log.snapshot()[-1].operation == "PutEvents"
        assert log.snapshot()[-1].chunks == 3  # EventBridge bills each entry
        put = next(r for r in log.snapshot() if r.operation == "PutItem")
        assert put.wcu == 2.0  # 1.5 KB written: 2 write units
    finally:
        dynamodb_proxy.stop()
        aws_proxy.stop()
