"""Authorized google-api-python-client services, and Google's API errors as the ports'
neutral errors (:mod:`crmsync.ports.errors`).

One place builds every Google API client: static discovery documents (no network
discovery), our HTTP timeout, credentials that refresh themselves from the connection's
refresh token, and the endpoint from settings (the emulator locally, Google otherwise).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from crmsync.config import GoogleSettings
from crmsync.ports.errors import (
    AuthRevoked,
    CursorInvalid,
    PreconditionFailed,
    ProviderDuplicate,
    ProviderError,
    ProviderNotFound,
    RateLimited,
)

#: Where each API lives below ``GoogleSettings.api_root`` (the client library drops the
#: Calendar prefix unless the endpoint carries it).
API_PATHS = {"calendar": "/calendar/v3/", "gmail": "/", "people": "/"}
VERSIONS = {"calendar": "v3", "gmail": "v1", "people": "v1"}
_RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RESOURCE_EXHAUSTED"}
_RETRYABLE_REASONS = {"backendError"}


#: Access tokens outlive one sync (Google's last an hour): a warm function reuses them
#: instead of refreshing before every request. Keyed by a hash of the refresh token, so a
#: reconnect (new refresh token) or a revoked grant never reuses a stale entry for long:
#: a 401 makes the credentials refresh, and invalid_grant surfaces as usual.
_CREDENTIALS: OrderedDict[str, Any] = OrderedDict()
_CREDENTIALS_MAX = 256
_credentials_lock = threading.Lock()


def _credentials(settings: GoogleSettings, refresh_token: str, client_secret: Callable[[], str]) -> Any:
    from google.oauth2.credentials import Credentials

    key = hashlib.sha256(f"{settings.token_uri}|{settings.client_id}|{refresh_token}".encode()).hexdigest()
    with _credentials_lock:
        cached = _CREDENTIALS.get(key)
        if cached is not None:
            _CREDENTIALS.move_to_end(key)
            return cached
    credentials = Credentials(
        token=None,
        refresh_token=refresh_token,
        token_uri=settings.token_uri,
        client_id=settings.client_id,
        client_secret=client_secret(),
    )
    with _credentials_lock:
        credentials = _CREDENTIALS.setdefault(key, credentials)
        while len(_CREDENTIALS) > _CREDENTIALS_MAX:
            _CREDENTIALS.popitem(last=False)
    return credentials


def forget_credentials() -> None:
    """Drop every cached access token (tests; a process that must not reuse them)."""
    with _credentials_lock:
        _CREDENTIALS.clear()


def build_service(name: str, settings: GoogleSettings, refresh_token: str, client_secret: Callable[[], str]) -> Any:
    """A googleapiclient Resource for ``name`` acting with the connection's grant."""
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build

    credentials = _credentials(settings, refresh_token, client_secret)
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=settings.http_timeout_seconds))
    options = {"api_endpoint": settings.api_root.rstrip("/") + API_PATHS[name]} if settings.api_root else None
    return build(name, VERSIONS[name], http=http, client_options=options, static_discovery=True, cache_discovery=False)


def _reason(error: Any) -> str:
    try:
        details = error.error_details
    except AttributeError:
        details = None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        return str(details[0].get("reason", ""))
    return ""


def _all_reasons(error: Any) -> set[str]:
    """Every ``reason`` of the answer's ``errors`` or ``details`` (a ``google.rpc.ErrorInfo``
    need not come first), and its ``google.rpc.Code`` name (``status``)."""
    import json

    try:
        body = json.loads(error.content or b"{}").get("error", {})
    except (ValueError, AttributeError):
        return set()
    if not isinstance(body, dict):
        return set()
    found = {str(body["status"])} if body.get("status") else set()
    for key in ("errors", "details"):
        items = body.get(key)
        if isinstance(items, list):
            found |= {str(i["reason"]) for i in items if isinstance(i, dict) and i.get("reason")}
    return found


def _retry_after(error: Any) -> float | None:
    """Seconds from the answer's ``Retry-After`` (delta-seconds form), if it has one."""
    response = getattr(error, "resp", None)
    value = response.get("retry-after") if isinstance(response, dict) else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@contextmanager
def google_errors(what: str, *, stale_reasons: frozenset[str] = frozenset()) -> Iterator[None]:
    """Translate what the client library raises into domain errors, keeping the cause's
    kind (never its text, which may quote a request).

    People's expired sync token (reason ``EXPIRED_SYNC_TOKEN``, whatever the status) is
    ``CursorInvalid``. ``stale_reasons``: the reasons (or ``google.rpc.Code`` names) that
    mean "changed since you read it" for this call (People's ``updateContact`` answers 400
    ``failedPrecondition`` / ``FAILED_PRECONDITION``), raised as ``PreconditionFailed``;
    elsewhere a 400 stays a plain error."""
    import google.auth.exceptions
    import httplib2
    from googleapiclient.errors import HttpError

    try:
        yield
    except HttpError as error:
        status = int(error.status_code or 0)
        reason = _reason(error)
        reasons = _all_reasons(error) | {reason}
        if "EXPIRED_SYNC_TOKEN" in reasons:
            raise CursorInvalid() from None
        if status == 400 and reasons & stale_reasons:
            raise PreconditionFailed(f"{what}: the resource changed at Google.") from None
        if status == 410 and (reason == "fullSyncRequired" or what.endswith(".list")):
            raise CursorInvalid() from None
        if status in (404, 410):  # 410 "deleted": the resource is gone
            raise ProviderNotFound(f"{what}: not found at Google.") from None
        if status == 409:
            raise ProviderDuplicate(f"{what}: the id is already used at Google.") from None
        if status == 412:
            raise PreconditionFailed(f"{what}: the resource changed at Google.") from None
        if status == 429 or (status == 403 and reason in _RATE_LIMIT_REASONS):
            raise RateLimited(
                f"{what}: Google answered {status}{' ' + reason if reason else ''}.",
                retry_after=_retry_after(error),
                status=status,
            ) from None
        retryable = status in (500, 502, 503, 504) or (status == 403 and reason in _RETRYABLE_REASONS)
        raise ProviderError(
            f"{what}: Google answered {status}{' ' + reason if reason else ''}.", retryable=retryable, status=status
        ) from None
    except google.auth.exceptions.RefreshError as error:
        data = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else {}
        if data.get("error") == "invalid_grant":
            raise AuthRevoked() from None
        raise ProviderError(f"{what}: the token refresh failed.", retryable=True) from None
    except (TimeoutError, httplib2.HttpLib2Error, OSError, google.auth.exceptions.TransportError) as error:
        raise ProviderError(f"{what}: Google could not be reached ({type(error).__name__}).", retryable=True) from None
