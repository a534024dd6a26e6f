"""Runs one unit of sync work per SQS FIFO message and reports partial batch failures."""

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.app.worker import handle_record, make_processor
from crmsync.observability import build_logger, build_metrics

logger = build_logger()
metrics = build_metrics()
processor = make_processor()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
