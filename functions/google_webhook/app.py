"""Google's pushes (Calendar channel notifications, Gmail's Pub/Sub pushes): authenticate,
enqueue a sync, answer fast."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.app.google_webhook import handle
from crmsync.observability import build_logger

logger = build_logger()


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event)
