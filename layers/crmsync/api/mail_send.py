"""Routes that send mail from the CRM through the user's Gmail (F8): ``POST /v1/uploads``
(an attachment's presigned PUT) and ``POST /v1/contacts/{id}/messages``."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel

from crmsync.api.http import principal_of
from crmsync.api.idempotency import HEADER, IdempotencyKeyHeader, idempotent_create
from crmsync.api.mail_schemas import MessageIn, MessageOut, UploadIn, UploadOut
from crmsync.api.openapi import ContactId, answer, responses
from crmsync.api.problems import Answered, problem
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.logic.mail_send import OutgoingDraft

router = APIGatewayHttpRouter()


class _SendRequest(BaseModel):
    """What one Idempotency-Key stands for: the message and the contact it is sent to."""

    contact_id: str
    message: MessageIn


@router.post("/v1/uploads", responses=responses(201, UploadOut, body=True))
def create_upload(body: Annotated[UploadIn, Body()]) -> Response[UploadOut]:
    """A presigned S3 PUT for one attachment of a message to send (at most 25 MB, Gmail's
    limit), valid 15 minutes. Send the bytes with exactly the ``headers`` given (the size and
    type are signed), then name ``upload_id`` in a message's ``attachments``."""
    principal = principal_of(router.current_event, get_settings())
    ticket = graph().uploads.start(principal, body.filename, body.content_type, body.size)
    return answer(
        201,
        UploadOut(
            upload_id=ticket.upload_id,
            url=ticket.url,
            method="PUT",
            headers=ticket.headers,
            expires_at=ticket.expires_at,
        ),
    )


@router.post("/v1/contacts/<contact_id>/messages", responses=responses(201, MessageOut, 404, 409, 502, 503, body=True))
def send_message(
    contact_id: ContactId, body: Annotated[MessageIn, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> Response[MessageOut]:
    """Send a message from the user's synced Gmail and log it in the conversation at once;
    the answer is the conversation entry. ``Idempotency-Key`` is required: a retry with the
    same key never sends twice. 409 ``mail-send-unavailable`` when Email sync is off or its
    account may not send."""
    settings = get_settings()
    principal = principal_of(router.current_event, settings)
    if idempotency_key is None:
        raise Answered(
            problem(
                400,
                f"Sending mail requires an {HEADER} header (a new UUID per message): a retry never sends twice.",
                slug="idempotency-key-missing",
            )
        )
    key = idempotency_key
    draft = OutgoingDraft(
        subject=body.subject,
        text=body.text,
        html=body.html,
        to=body.to,
        cc=body.cc,
        bcc=body.bcc,
        attachments=body.attachments,
        in_reply_to=body.in_reply_to,
    )
    return idempotent_create(
        "contacts.messages.send",
        principal,
        key,
        _SendRequest(contact_id=contact_id, message=body),
        lambda: answer(201, MessageOut.of_content(graph().mail_send.send(principal, contact_id, draft, key))),
        settings=settings,
        lambda_context=getattr(router, "lambda_context", None),
    )
