"""The CRM-facing REST API (/v1) and the settings pages. Routes live in crmsync.api and
crmsync.web; each router is imported on the first request it may serve (crmsync.web.routing)."""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.api.http import gateway_response, screen_request
from crmsync.observability import build_logger, build_metrics
from crmsync.web.routing import Api

logger = build_logger()
metrics = build_metrics()
api = Api()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    refused = screen_request(event)
    if refused is not None:
        return gateway_response(refused)
    return api.resolve(event, context)
