"""Key builders. Separators cannot appear in ids (ids are validated at the edge).

Plain functions without PynamoDB, so that the webhooks' low-level reads and writes
(:mod:`crmsync.dal.notifications`) build the very keys the models use.
"""

from __future__ import annotations

from crmsync.domain.ids import check_id

__all__ = [
    "CHANNEL_SK",
    "SYNC_REQUEST_SK_PREFIX",
    "channel_pk",
    "check_id",
    "sync_request_sk",
    "user_pk",
]

SYNC_REQUEST_SK_PREFIX = "SYNCREQ#"  # not under SYNC_SK_PREFIX: "SYNCREQ#" does not start with "SYNC#"
#: The sort key of every push channel record (its partition names the channel).
CHANNEL_SK = "CHANNEL"


def user_pk(tenant_id: str, user_id: str) -> str:
    return f"T#{check_id('tenant', tenant_id)}#U#{check_id('user', user_id)}"


def sync_request_sk(connection_id: str, calendar_id: str) -> str:
    return f"{SYNC_REQUEST_SK_PREFIX}{connection_id}#{calendar_id}"


def channel_pk(channel_id: str) -> str:
    return f"CHANNEL#{channel_id}"
