"""Logs a message received at a user's BCC address (SES receipt rule: S3 action, then this)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.app.inbound_mail import handle
from crmsync.observability import build_logger, build_metrics

logger = build_logger()
metrics = build_metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event)
