"""The CRM-facing REST API (/v1) and the settings pages. Routes live in crmsync.api."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.api import (
    appointments,
    availability,
    calendars,
    contact_review,
    contacts,
    contacts_sync,
    email_settings,
    integrations,
    mail_send,
    mail_sync,
    settings,
)
from crmsync.api.http import (
    gateway_response,
    refuse_unknown_query_parameters,
    register_error_handlers,
    screen_request,
)
from crmsync.observability import build_logger, build_metrics
from crmsync.web import pages

logger = build_logger()
metrics = build_metrics()
app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)
app.use(middlewares=[refuse_unknown_query_parameters])
app.include_router(integrations.router)
app.include_router(calendars.router)
app.include_router(settings.router)
app.include_router(appointments.router)
app.include_router(availability.router)
app.include_router(email_settings.router)
app.include_router(mail_sync.router)
app.include_router(mail_send.router)
# Before contacts.router: /v1/contacts/review and /v1/contacts/sync are not contact ids.
app.include_router(contact_review.router)
app.include_router(contacts_sync.router)
app.include_router(contacts.router)
app.include_router(pages.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    refused = screen_request(event)
    if refused is not None:
        return gateway_response(refused)
    return app.resolve(event, context)
