"""Google's pushes (Calendar channel notifications, Gmail's Pub/Sub pushes): authenticate,
enqueue a sync, answer fast."""

from typing import Any

from crmsync.app.google_webhook import handle
from crmsync.light_logging import build_light_logger

# The standard library's logger in powertools' format: powertools' import is a third of a
# webhook's cold start (crmsync.light_logging).
logger = build_light_logger()


@logger.inject_lambda_context
def lambda_handler(event: dict, context: Any) -> dict:
    return handle(event)
