"""Periodic jobs fired by EventBridge Scheduler (the job name is the schedule's Input)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.app.jobs import run_job
from crmsync.observability import build_logger, build_metrics

logger = build_logger()
metrics = build_metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return run_job(event, metrics)
