"""Routes of the BCC logging settings (F9): the address and the sender addresses."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import principal_of
from crmsync.api.mail_schemas import (
    BccAddressOut,
    SenderAddressIn,
    SenderAddressList,
    SenderAddressOut,
    SenderVerificationOut,
)
from crmsync.api.openapi import EmailInPath, answer, no_content, responses
from crmsync.app.wiring import graph
from crmsync.config import get_settings
from crmsync.logic.bcc_settings import BccSettings

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
