"""Microsoft Graph's change and lifecycle notifications: answer the validation handshake,
authenticate, request a coalesced sync, answer fast."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.app.graph_webhook import handle
from crmsync.observability import build_logger

logger = build_logger()


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event)
