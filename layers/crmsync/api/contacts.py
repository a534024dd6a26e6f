"""Routes of /v1/contacts: CRM contacts (F10) and their conversations of logged mail (F9);
/v1/contact-types; /v1/settings/contacts."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.contact_schemas import (
    ContactChoicesOut,
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ContactSettingsIn,
)
from crmsync.api.http import admin_of, principal_of
from crmsync.api.idempotency import IdempotencyKeyHeader, idempotent_create
from crmsync.api.mail_schemas import (
    DEFAULT_PAGE,
    MAX_PAGE,
    ConversationEntryOut,
    ConversationPage,
    MessageOut,
)
from crmsync.api.openapi import ContactId, MessageKey, answer, no_content, responses
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.domain import Principal
from crmsync.domain.contacts import Contact
from crmsync.logic.contacts import Contacts

router = APIGatewayHttpRouter()

Cursor = Annotated[str | None, Query(max_length=2048)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def contacts() -> Contacts:
    return graph().contacts


def shown(principal: Principal, items: list[Contact]) -> list[ContactOut]:
    """The contacts as the API shows them, with whether two-way email sync brings their mail
    in (read once per request: the user's mail sync and never-log list)."""
    root = graph()
    if not items or not root.mail_sync_store.get(principal).enabled:
        return [ContactOut.of(c) for c in items]
    never = root.never_log.get(principal)
    return [ContactOut.of(c, email_sync=any(not never.blocks(e) for e in c.fields.emails)) for c in items]


def one(principal: Principal, contact: Contact) -> ContactOut:
    return shown(principal, [contact])[0]


@router.get("/v1/contacts", responses=responses(200, ContactPage, 400))
def list_contacts(cursor: Cursor = None, limit: Limit = DEFAULT_PAGE) -> Response[ContactPage]:
    principal = principal_of(router.current_event, get_settings())
    page = contacts().page(principal, cursor, limit)
    return answer(200, ContactPage(items=shown(principal, page.items), next_cursor=page.next_cursor))


@router.post("/v1/contacts", responses=responses(201, ContactOut, 409, 503, body=True))
def create_contact(
    body: Annotated[ContactIn, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> Response[ContactOut]:
    """A new contact. 409 (``duplicate-contact``, naming it) when one of its emails or phones
    already belongs to another contact."""
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    return idempotent_create(
        "contacts.create",
        principal,
        idempotency_key,
        body,
        lambda: answer(201, one(principal, contacts().create(principal, body.as_input()))),
        settings=settings,
        lambda_context=getattr(router, "lambda_context", None),
    )


@router.get("/v1/contacts/<contact_id>", responses=responses(200, ContactOut, 404))
def get_contact(contact_id: ContactId) -> Response[ContactOut]:
    principal = principal_of(router.current_event, get_settings())
    return answer(200, one(principal, contacts().get(principal, contact_id)))


@router.patch("/v1/contacts/<contact_id>", responses=responses(200, ContactOut, 404, 409, body=True))
def change_contact(contact_id: ContactId, body: Annotated[ContactPatch, Body()]) -> Response[ContactOut]:
    principal = principal_of(router.current_event, get_settings())
    return answer(200, one(principal, contacts().change(principal, contact_id, body.as_input())))


@router.delete("/v1/contacts/<contact_id>", responses=responses(204, None, 404, 409))
def delete_contact(contact_id: ContactId) -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    contacts().delete(principal, contact_id)
    return no_content()


@router.get("/v1/contact-types", responses=responses(200, ContactChoicesOut))
def contact_types() -> Response[ContactChoicesOut]:
    """The tenant's contact types and consent choices, and its region for phone numbers."""
    principal = principal_of(router.current_event, get_settings())
    return answer(200, ContactChoicesOut.of(contacts().choices(principal)))


@router.put("/v1/settings/contacts", responses=responses(200, ContactChoicesOut, 403, body=True))
def set_contact_settings(body: Annotated[ContactSettingsIn, Body()]) -> Response[ContactChoicesOut]:
    """The tenant's region for phone numbers without a country code: its admins only (the
    JWT claim ``JWT_ADMIN_CLAIM``). Numbers already stored are not read again."""
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    admin_of(router.current_event, settings)
    contacts().set_region(principal.tenant_id, body.default_region)
    return answer(200, ContactChoicesOut.of(contacts().choices(principal)))


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
