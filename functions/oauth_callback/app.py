"""GET /oauth/{provider}/callback: check state, exchange the code, store the connection."""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.api.oauth_callback import handle
from crmsync.observability import build_logger, build_metrics

logger = build_logger()
metrics = build_metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event)
