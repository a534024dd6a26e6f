"""Runs one unit of sync work per SQS FIFO message and reports partial batch failures."""

from typing import Any

from crmsync.app.worker import handle_record
from crmsync.batch import process_fifo_batch
from crmsync.light_logging import build_light_logger
from crmsync.metrics import build_metrics

# The standard library's logger in powertools' format, EMF metrics and the FIFO partial batch
# response without powertools' import (crmsync.light_logging, crmsync.metrics, crmsync.batch).
logger = build_light_logger()
metrics = build_metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    return process_fifo_batch(event, handle_record)
