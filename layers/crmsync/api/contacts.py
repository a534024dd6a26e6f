"""Routes of /v1/contacts: CRM contacts and their conversations of logged mail (F9)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import principal_of
from crmsync.api.mail_schemas import (
    DEFAULT_PAGE,
    MAX_PAGE,
    ContactOut,
    ContactPage,
    ConversationEntryOut,
    ConversationPage,
    MessageOut,
)
from crmsync.api.openapi import ContactId, MessageKey, answer, responses
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.logic.contacts import Contacts

router = APIGatewayHttpRouter()

Cursor = Annotated[str | None, Query(max_length=2048)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def contacts() -> Contacts:
    return graph().contacts


@router.get("/v1/contacts", responses=responses(200, ContactPage, 400))
def list_contacts(cursor: Cursor = None, limit: Limit = DEFAULT_PAGE) -> Response[ContactPage]:
    principal = principal_of(router.current_event, get_settings())
    page = contacts().page(principal, cursor, limit)
    return answer(200, ContactPage(items=[ContactOut.of(c) for c in page.items], next_cursor=page.next_cursor))


@router.get("/v1/contacts/<contact_id>/conversation", responses=responses(200, ConversationPage, 400, 404))
def get_conversation(
    contact_id: ContactId, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Response[ConversationPage]:
    principal = principal_of(router.current_event, get_settings())
    page = contacts().conversation(principal, contact_id, cursor, limit)
    body = ConversationPage(items=[ConversationEntryOut.of(m) for m in page.items], next_cursor=page.next_cursor)
    return answer(200, body)


@router.get("/v1/contacts/<contact_id>/conversation/<message_key>", responses=responses(200, MessageOut, 404))
def get_conversation_message(contact_id: ContactId, message_key: MessageKey) -> Response[MessageOut]:
    principal = principal_of(router.current_event, get_settings())
    content = contacts().message(principal, contact_id, message_key)
    return answer(200, MessageOut.of_content(content))
