"""Routes of /v1/contacts: CRM contacts and their conversations of logged mail (F9)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import json_response, principal_of
from crmsync.api.mail_schemas import (
    DEFAULT_PAGE,
    MAX_PAGE,
    ContactOut,
    ContactPage,
    ConversationEntryOut,
    ConversationPage,
    MessageOut,
)
from crmsync.config import get_settings
from crmsync.logic.contacts import Contacts
from crmsync.logic.wiring import build_contacts

router = APIGatewayHttpRouter()

Cursor = Annotated[str | None, Query(max_length=2048)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@lru_cache(maxsize=1)
def contacts() -> Contacts:
    return build_contacts(get_settings())


@router.get("/v1/contacts")
def list_contacts(cursor: Cursor = None, limit: Limit = DEFAULT_PAGE) -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    page = contacts().page(principal, cursor, limit)
    body = ContactPage(items=[ContactOut.of(c) for c in page.items], next_cursor=page.next_cursor)
    return json_response(200, body.model_dump_json())


@router.get("/v1/contacts/<contact_id>/conversation")
def get_conversation(contact_id: str, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE) -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    page = contacts().conversation(principal, contact_id, cursor, limit)
    body = ConversationPage(items=[ConversationEntryOut.of(m) for m in page.items], next_cursor=page.next_cursor)
    return json_response(200, body.model_dump_json(by_alias=True))


@router.get("/v1/contacts/<contact_id>/conversation/<message_key>")
def get_conversation_message(contact_id: str, message_key: str) -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    content = contacts().message(principal, contact_id, message_key)
    return json_response(200, MessageOut.of_content(content).model_dump_json(by_alias=True))
