from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import ValidationError

from crmsync import errors
from crmsync.api.problems import PROBLEM_JSON, from_error, status_for
from crmsync.config import CoreSettings, Settings
from crmsync.providers.google.scopes import IDENTITY, scopes_for
from crmsync.webhook_config import WebhookSettings

ENV = {
    "PUBLIC_BASE_URL": "https://sync.example.com/",
    "CONNECTIONS_TABLE": "c",
    "OAUTH_STATES_TABLE": "s",
    "TOKEN_KEY_ID": "k",
    "SYNC_QUEUE_URL": "q",
    "GOOGLE_CLIENT_ID": "id",
    "GOOGLE_CLIENT_SECRET_ARN": "arn",
    "GOOGLE_FEATURES": "calendar, email",
}


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.NotFound("x"), 404),
        (errors.InvalidRequest("x"), 400),
        (errors.Conflict("x"), 409),
        (errors.OAuthStateError(errors.OAuthStateError.EXPIRED, "x"), 400),
        (errors.ReauthorizationRequired(), 409),
        (errors.ProviderError("x", retryable=True), 502),
        (errors.AuthorizationDenied("access_denied"), 400),
    ],
)
def test_each_domain_error_has_one_status(exc: errors.CrmSyncError, status: int) -> None:
    assert status_for(exc) == status


def test_problem_document_shape() -> None:
    response = from_error(errors.NotFound("No integration with id 'x'."))
    body = json.loads(response.body)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert body == {
        "type": "urn:crmsync:problem:not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No integration with id 'x'.",
    }


def test_settings_parse_and_derive_urls() -> None:
    s = Settings.from_env(ENV)
    assert s.google.features == ("calendar", "email")
    assert s.google_redirect_uri == "https://sync.example.com/oauth/google/callback"
    assert s.cookie_secure


def test_missing_setting_is_an_error_naming_it() -> None:
    env = {k: v for k, v in ENV.items() if k != "TOKEN_KEY_ID"}
    with pytest.raises(ValidationError, match="token_key_id"):
        Settings.from_env(env)


CORE = {
    "PUBLIC_BASE_URL": "https://sync.example.com",
    "CONNECTIONS_TABLE": "connections",
    "OAUTH_STATES_TABLE": "states",
    "TOKEN_KEY_ID": "key",
    "SYNC_QUEUE_URL": "https://sqs.example.com/q.fifo",
}
PUSH = {
    "GMAIL_PUSH_AUDIENCE": "https://sync.example.com/webhooks/google/gmail",
    "GMAIL_PUSH_SERVICE_ACCOUNT": "push@project.iam.gserviceaccount.com",
    "PUBSUB_CERTS_URI": "http://127.0.0.1:9/certs",
}


@pytest.mark.parametrize(
    "env",
    [CORE, {**CORE, **PUSH}, {**CORE, **dict.fromkeys(PUSH, "")}],
    ids=["defaults", "set", "empty"],
)
def test_the_webhooks_settings_read_what_the_core_settings_read(env: dict[str, str]) -> None:
    """The webhooks parse their six settings without pydantic (their cold start): as
    CoreSettings would, field for field."""
    plain = WebhookSettings.from_env(env)
    typed = CoreSettings.from_env(env)
    fields = [f.name for f in dataclasses.fields(WebhookSettings)]
    assert {name: getattr(plain, name) for name in fields} == {name: getattr(typed, name) for name in fields}


@pytest.mark.parametrize(
    "env",
    [
        {k: v for k, v in CORE.items() if k != "CONNECTIONS_TABLE"},
        {k: v for k, v in CORE.items() if k != "SYNC_QUEUE_URL"},
        {**CORE, "GMAIL_PUSH_AUDIENCE": "a" * 2049},
        {**CORE, "GMAIL_PUSH_SERVICE_ACCOUNT": "a" * 321},
    ],
)
def test_the_webhooks_settings_refuse_what_the_core_settings_refuse(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CoreSettings.from_env(env)
    with pytest.raises(ValueError):  # noqa: PT011 - the plain settings say which, in plain words
        WebhookSettings.from_env(env)


def test_least_scopes_per_feature() -> None:
    assert scopes_for([]) == list(IDENTITY)
    calendar = scopes_for(["calendar"])
    assert "https://www.googleapis.com/auth/calendar.events" in calendar
    assert not [s for s in calendar if "gmail" in s or "contacts" in s]
    with pytest.raises(ValueError, match="unknown feature"):
        scopes_for(["fax"])
