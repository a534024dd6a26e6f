"""GET /oauth/{provider}/callback: check state, exchange the code, store the connection."""

from typing import Any

from crmsync.api.oauth_callback import handle
from crmsync.light_logging import build_light_logger
from crmsync.metrics import build_metrics

# The standard library's logger in powertools' format and EMF metrics, without powertools'
# import (crmsync.light_logging, crmsync.metrics).
logger = build_light_logger()
metrics = build_metrics()


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    return handle(event)
