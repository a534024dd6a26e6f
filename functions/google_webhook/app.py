"""Google Calendar push notifications: authenticate the channel, enqueue a sync, answer fast."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.observability import build_logger
from crmsync.sync.webhook import handle

logger = build_logger()


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event)
