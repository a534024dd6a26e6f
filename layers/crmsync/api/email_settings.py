"""Routes of the BCC logging settings (F9): the address and the sender addresses."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from crmsync.api.http import json_response, principal_of
from crmsync.api.mail_schemas import (
    BccAddressOut,
    SenderAddressIn,
    SenderAddressList,
    SenderAddressOut,
    SenderVerificationOut,
)
from crmsync.config import get_settings
from crmsync.logic.bcc_settings import BccSettings
from crmsync.logic.wiring import build_bcc_settings

router = APIGatewayHttpRouter()


@lru_cache(maxsize=1)
def bcc_settings() -> BccSettings:
    return build_bcc_settings(get_settings())


@router.get("/v1/settings/bcc-address")
def get_bcc_address() -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    return json_response(200, BccAddressOut.of(bcc_settings().address(principal)).model_dump_json())


@router.post("/v1/settings/bcc-address/rotate")
def rotate_bcc_address() -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    return json_response(200, BccAddressOut.of(bcc_settings().rotate(principal)).model_dump_json())


@router.get("/v1/settings/sender-addresses")
def list_sender_addresses() -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    items = [SenderAddressOut.of(s) for s in bcc_settings().sender_addresses(principal)]
    return json_response(200, SenderAddressList(items=items).model_dump_json())


@router.post("/v1/settings/sender-addresses")
def add_sender_address(body: Annotated[SenderAddressIn, Body()]) -> Response[str]:
    principal = principal_of(router.current_event, get_settings())
    verification = bcc_settings().add_sender(principal, body.email)
    return json_response(201, SenderVerificationOut.of_verification(verification).model_dump_json())


@router.delete("/v1/settings/sender-addresses/<email>")
def delete_sender_address(email: str) -> Response[None]:
    principal = principal_of(router.current_event, get_settings())
    bcc_settings().remove_sender(principal, unquote(email))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
