"""The local Lambda runtime: workers and pools, the HTTP API, SQS event sources, schedules."""
