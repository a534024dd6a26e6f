"""Microsoft Graph's change and lifecycle notifications: answer the validation handshake,
authenticate, request a coalesced sync, answer fast."""

from typing import Any

from crmsync.app.graph_webhook import handle
from crmsync.light_logging import build_light_logger

# The standard library's logger in powertools' format: powertools' import is a third of a
# webhook's cold start (crmsync.light_logging).
logger = build_light_logger()


@logger.inject_lambda_context
def lambda_handler(event: dict, context: Any) -> dict:
    return handle(event)
