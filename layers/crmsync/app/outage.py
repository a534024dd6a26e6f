"""When a webhook's own store or queue fails (DynamoDB or SQS unreachable, throttled past the
retries, answering 5xx): a 503 with Retry-After and one logged reason, not an unhandled error.

Google (Calendar channels, Pub/Sub) and Microsoft Graph retry a notification their endpoint
failed with backoff, so the change is not lost either way; a 503 says what happened ("try again
later") where Lambda's unhandled error is API Gateway's bare 500, and the log line names the
dependency instead of a stack trace through the handler.
"""

from __future__ import annotations

import sys
from typing import Any

#: The answer while a dependency is down; Retry-After is a hint (Google's backoff is its own).
UNAVAILABLE: dict[str, Any] = {"statusCode": 503, "headers": {"Retry-After": "30"}}


def dependency_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed DynamoDB or SQS call (botocore's, or PynamoDB's wrapping)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError | ClientError):
        return True
    pynamodb = sys.modules.get("pynamodb.exceptions")  # loaded only if a PynamoDB call was made
    return pynamodb is not None and isinstance(exc, pynamodb.PynamoDBException)
