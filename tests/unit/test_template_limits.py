"""What AWS refuses at deploy time and neither cfn-lint nor the local stack (moto does not
check IAM) would tell: checked on the real template.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def functions() -> dict[str, dict[str, Any]]:
    resources = load_template(ROOT / "template.yaml").data["Resources"]
    return {k: v.get("Properties") or {} for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}


def test_function_descriptions_fit_lambdas_256_characters() -> None:
    """Lambda CreateFunction: Description, "Length Constraints: Minimum length of 0. Maximum
    length of 256" (the scheduler's once had 350: a deploy would have failed)."""
    too_long = {name: len(p["Description"]) for name, p in functions().items() if len(p.get("Description", "")) > 256}
    assert too_long == {}


def seals(properties: dict[str, Any]) -> bool:
    """The function may make and open the credentials' data keys (crmsync.security.tokens)."""
    for policy in properties.get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = statement.get("Action", [])
            condition = statement.get("Condition", {}).get("StringEquals", {})
            if {"kms:GenerateDataKey", "kms:Decrypt"} <= set(actions) and condition.get(
                "kms:EncryptionContext:purpose"
            ) == "credential-data-key":
                return True
    return False


def test_the_functions_that_store_secrets_may_seal_them_under_a_data_key() -> None:
    """The API stores iCloud app-specific passwords (POST /v1/integrations/icloud), the OAuth
    callback stores tokens, the sync worker stores the token caches MSAL renewed: each seals
    them under the month's data key, which AWS refuses without kms:GenerateDataKey (to make it)
    and kms:Decrypt (to open one another function made) — only for data keys' context."""
    allowed = {name for name, p in functions().items() if seals(p)}
    assert {"ApiFunction", "OAuthCallbackFunction", "SyncWorkerFunction"} <= allowed


def test_the_sync_queue_is_a_high_throughput_fifo_queue() -> None:
    """A FIFO queue's default limit is 300 calls a second per action for the whole queue (3,000
    messages with batching): the capacity model's first AWS limit (docs/SCALE.md). High
    throughput applies the limits per message group; it needs deduplication per group."""
    queue = load_template(ROOT / "template.yaml").data["Resources"]["SyncQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert (queue["DeduplicationScope"], queue["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
