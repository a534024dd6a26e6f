"""Routes of the email logging settings: the BCC address and the sender addresses (F9), and the
never-log list (F8/F9: addresses and domains whose mail is never logged)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import principal_of
from crmsync.api.mail_schemas import (
    BccAddressOut,
    NeverLogEntryIn,
    NeverLogEntryOut,
    NeverLogList,
    SenderAddressIn,
    SenderAddressList,
    SenderAddressOut,
    SenderVerificationOut,
)
from crmsync.api.openapi import EmailInPath, NeverLogEntryInPath, answer, no_content, responses
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.logic.bcc_settings import BccSettings
from crmsync.logic.never_log import NeverLogSettings

router = APIGatewayHttpRouter()


def bcc_settings() -> BccSettings:
    return graph().bcc_settings


@router.get("/v1/settings/bcc-address", responses=responses(200, BccAddressOut))
def get_bcc_address() -> Response[BccAddressOut]:
    principal = principal_of(router.current_event, get_settings())
    return answer(200, BccAddressOut.of(bcc_settings().address(principal)))


@router.post("/v1/settings/bcc-address/rotate", responses=responses(200, BccAddressOut, body=True))
def rotate_bcc_address() -> Response[BccAddressOut]:
    principal = principal_of(router.current_event, get_settings())
    return answer(200, BccAddressOut.of(bcc_settings().rotate(principal)))


@router.get("/v1/settings/sender-addresses", responses=responses(200, SenderAddressList))
def list_sender_addresses() -> Response[SenderAddressList]:
    principal = principal_of(router.current_event, get_settings())
    items = [SenderAddressOut.of(s) for s in bcc_settings().sender_addresses(principal)]
    return answer(200, SenderAddressList(items=items))


@router.post("/v1/settings/sender-addresses", responses=responses(201, SenderVerificationOut, 409, body=True))
def add_sender_address(body: Annotated[SenderAddressIn, Body()]) -> Response[SenderVerificationOut]:
    principal = principal_of(router.current_event, get_settings())
    verification = bcc_settings().add_sender(principal, body.email)
    return answer(201, SenderVerificationOut.of_verification(verification))


@router.delete("/v1/settings/sender-addresses/<email>", responses=responses(204, None, 404))
def delete_sender_address(email: EmailInPath) -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    bcc_settings().remove_sender(principal, unquote(email))
    return no_content()


def never_log_settings() -> NeverLogSettings:
    return graph().never_log_settings


@router.get("/v1/settings/never-log", responses=responses(200, NeverLogList))
def list_never_log() -> Response[NeverLogList]:
    principal = principal_of(router.current_event, get_settings())
    items = [NeverLogEntryOut.of(e) for e in never_log_settings().entries(principal)]
    return answer(200, NeverLogList(items=items))


#: 201 when added; 200 with the same body when it was on the list already (adding is idempotent).
_ADD_NEVER_LOG = {
    **responses(201, NeverLogEntryOut, body=True),
    200: {
        "description": "Already on the list: nothing changed.",
        "content": {"application/json": {"model": NeverLogEntryOut}},
    },
}


@router.post("/v1/settings/never-log", responses=_ADD_NEVER_LOG)
def add_never_log(body: Annotated[NeverLogEntryIn, Body()]) -> Response[NeverLogEntryOut]:
    principal = principal_of(router.current_event, get_settings())
    entry, added = never_log_settings().add(principal, body.entry)
    return answer(201 if added else 200, NeverLogEntryOut.of(entry))


@router.delete("/v1/settings/never-log/<entry>", responses=responses(204, None, 404))
def delete_never_log(entry: NeverLogEntryInPath) -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    never_log_settings().remove(principal, unquote(entry))
    return no_content()
