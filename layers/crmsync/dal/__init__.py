"""Data access: the only code that touches PynamoDB. Returns domain objects."""

from functools import lru_cache
from typing import Any


def condition_failed(exc: Exception) -> bool:
    """Whether a PynamoDB write failed on its condition (a version or existence check)."""
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def get_many(keys: list[tuple[Any, str, str]]) -> list[Any]:
    """Read items of different models of one table in one BatchGetItem (consistent), each
    as its model or None. Keys are ``(model, pk, sk)``; at most 100, all in one table."""
    from pynamodb.constants import RESPONSES, UNPROCESSED_KEYS

    if not keys:
        return []
    table = keys[0][0].Meta.table_name
    if len(keys) > 100 or any(model.Meta.table_name != table for model, _, _ in keys):
        raise ValueError("one BatchGetItem reads at most 100 keys of one table")
    connection = keys[0][0]._get_connection()
    wanted = [{"pk": {"S": pk}, "sk": {"S": sk}} for _, pk, sk in keys]
    found: dict[tuple[str, str], dict] = {}
    while wanted:
        answer = connection.connection.batch_get_item(table, wanted, consistent_read=True)
        for raw in answer.get(RESPONSES, {}).get(table, []):
            found[(raw["pk"]["S"], raw["sk"]["S"])] = raw
        wanted = answer.get(UNPROCESSED_KEYS, {}).get(table, {}).get("Keys", [])
    return [model.from_raw_data(found[(pk, sk)]) if (pk, sk) in found else None for model, pk, sk in keys]


@lru_cache(maxsize=1)
def shared_connection() -> Any:
    """One PynamoDB connection (one botocore client) for transactions, per process: building
    one costs a botocore session (~0.4 s), far more than the transaction itself."""
    from pynamodb.connection import Connection

    return Connection()
