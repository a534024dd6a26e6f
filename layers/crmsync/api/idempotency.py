"""Idempotent creates: the optional ``Idempotency-Key`` request header (docs/API.md).

A create route declares ``idempotency_key: IdempotencyKeyHeader = None`` and hands its work to
:func:`idempotent_create`. With a key, the first request's answer is kept for 24 hours in the
idempotency table (powertools' idempotency utility, DynamoDB, removed by TTL), under the
tenant, the user, the operation and the key, so two users' keys never meet:

- the same key with the same body again: the first answer (status, body, headers) is
  replayed, marked ``Idempotent-Replayed: true``, and nothing is created twice;
- the same key with another body: 422 ``idempotency-key-reused``;
- the first request with that key still running: 409 ``idempotency-key-in-progress`` with
  ``Retry-After``. The in-progress record lasts as long as the Lambda invocation can (its
  remaining time), so a request whose function died does not block the key for 24 hours.

Only a successful answer is kept: a refused or failed request (the route raised) leaves no
record, so retrying it with the same key runs it again. Without a key nothing changes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header
from pydantic import BaseModel

from crmsync.api.problems import Answered, problem
from crmsync.config import Settings
from crmsync.domain import Principal
from crmsync.errors import InvalidRequest

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
#: 1 to 255 printable ASCII characters (a UUID is the usual choice).
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
KEPT_SECONDS = 24 * 60 * 60
#: What a request that finds its key in progress is told to wait; a create takes well under it.
RETRY_AFTER_SECONDS = 1
REPLAYED_HEADER = "Idempotent-Replayed"

#: The route parameter: ``idempotency_key: IdempotencyKeyHeader = None``. A malformed key is
#: refused by request validation (422 ``validation``) before the route runs.
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=1,
        max_length=255,
        pattern=KEY_PATTERN,
        description=(
            "Makes the create safe to retry for 24 hours: the same key with the same body replays the "
            "first answer; with another body the answer is 422; while the first is running, 409."
        ),
    ),
]


@lru_cache(maxsize=4)
def _persistence(table_name: str) -> tuple[Any, Any]:
    """The persistence layer and its configuration, once per process (and table)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    config = IdempotencyConfig(
        event_key_jmespath="[tenant, user, key]",
        payload_validation_jmespath="payload",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=KEPT_SECONDS,
        hash_function="sha256",
    )
    return DynamoDBPersistenceLayer(table_name=table_name), config


def check_key(key: str) -> str:
    import re

    if not isinstance(key, str) or not re.fullmatch(KEY_PATTERN, key):
        raise InvalidRequest(f"The {HEADER} header must be 1 to 255 printable ASCII characters.")
    return key


def idempotent_create(
    operation: str,
    principal: Principal,
    key: str | None,
    payload: BaseModel,
    create: Callable[[], Response],
    *,
    settings: Settings,
    lambda_context: Any = None,
) -> Response:
    """Run ``create`` (which answers the request) at most once per (user, operation, key).

    ``operation`` names the route (e.g. ``appointments.create``): one key may be used for
    different operations. ``payload``: the validated body; equal bodies (as JSON values)
    are the same request. ``lambda_context``: the invocation's, so an in-progress record
    expires with the invocation."""
    if key is None:
        return create()
    check_key(key)
    if not settings.idempotency_table:
        raise RuntimeError("IDEMPOTENCY_TABLE is not configured")
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    store, config = _persistence(settings.idempotency_table)
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    request = {
        "tenant": principal.tenant_id,
        "user": principal.user_id,
        "key": key,
        "payload": payload.model_dump(mode="json"),
    }
    ran: list[bool] = []

    def run(request: dict[str, Any]) -> dict[str, Any]:
        ran.append(True)
        return _kept(create())

    once = idempotent_function(
        run, data_keyword_argument="request", persistence_store=store, config=config, key_prefix=f"crmsync.{operation}"
    )
    try:
        kept = once(request=request)
    except IdempotencyValidationError:
        log.info("idempotency key reused with another body", extra={"operation": operation})
        raise Answered(
            problem(
                422,
                f"This {HEADER} was used for a different request; use a new key for a new request.",
                slug="idempotency-key-reused",
            )
        ) from None
    except IdempotencyAlreadyInProgressError:
        log.info("idempotency key in progress", extra={"operation": operation})
        raise Answered(
            problem(
                409,
                f"A request with this {HEADER} is still being processed; retry shortly.",
                slug="idempotency-key-in-progress",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        ) from None
    except IdempotencyPersistenceLayerError:
        log.exception("idempotency store unavailable", extra={"operation": operation})
        raise Answered(
            problem(
                503,
                "The request could not be made safe to retry right now; try again shortly.",
                slug="unavailable",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        ) from None
    return _answer(kept, replayed=not ran)


def _kept(response: Response) -> dict[str, Any]:
    """What is stored of an answer: enough to give it again."""
    body = response.body
    if isinstance(body, BaseModel):
        body = body.model_dump_json()
    return {
        "status": response.status_code,
        "content_type": response.headers.get("Content-Type") or "application/json",
        "headers": {k: v for k, v in response.headers.items() if k != "Content-Type" and isinstance(v, str)},
        "body": body.decode() if isinstance(body, bytes) else (body or ""),
    }


def _answer(kept: dict[str, Any], *, replayed: bool) -> Response:
    headers = dict(kept.get("headers") or {})
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    body = kept["body"]
    if kept["content_type"] == "application/json" and body:
        body = json.loads(body)  # validated against the route's model again, like a first answer
    return Response(status_code=int(kept["status"]), content_type=kept["content_type"], body=body, headers=headers)
