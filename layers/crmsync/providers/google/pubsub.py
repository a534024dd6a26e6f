"""Gmail push notifications through a Cloud Pub/Sub push subscription (PROVIDERS.md §2.3).

Pub/Sub POSTs ``{"message": {"data": <base64 JSON>, "messageId", "publishTime"},
"subscription"}`` with ``Authorization: Bearer <OIDC JWT>``; ``data`` is Gmail's
``{"emailAddress", "historyId"}``. :class:`PubSubPush` authenticates the token as Google
says (signature by Google's published keys, ``aud``, ``iss``, ``email`` of the push service
account, ``email_verified``) and reads the envelope. Every refusal carries a reason for the
log that never quotes the request (the token is a bearer credential).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crmsync.ports.mail import MailboxNotification

__all__ = ["ISSUERS", "MAX_BODY_BYTES", "CachedCerts", "PubSubPush", "Refusal"]

#: The ``iss`` of Pub/Sub's OIDC tokens (Google documents both spellings for its id tokens).
ISSUERS = ("https://accounts.google.com", "accounts.google.com")
#: Gmail's envelope is a few hundred bytes; Pub/Sub adds attributes at most. Anything much
#: larger is not a Gmail push and is refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024
#: Google's id tokens are about 1 KB.
MAX_TOKEN_CHARS = 4096
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*([0-9]{1,9})\s*(?:,|$)", re.IGNORECASE)
#: Printable ASCII of bounded length (Pub/Sub's message ids are decimal strings).
_PRINTABLE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
#: An address as Gmail names the mailbox: no spaces or control characters, one ``@``.
_ADDRESS = re.compile(r"^[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]{1,255}$")
_HISTORY_ID = re.compile(r"^[0-9]{1,20}$")
#: Seconds of clock difference tolerated on ``iat``/``exp`` (as for sign-in id tokens).
CLOCK_SKEW_SECONDS = 10


@dataclass(frozen=True)
class Refusal:
    """Why a push is not acted on: the status to answer and a reason to log."""

    status: int
    reason: str


class _StoredResponse:
    """A kept answer, readable any number of times (google.auth's ``transport.Response``)."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status = status
        self.headers = dict(headers)
        self.data = data


class CachedCerts:
    """A google-auth transport ``Request`` that keeps each 200 answer to a GET as long as its
    ``Cache-Control: max-age`` allows (Google's certs URL sends hours), so a warm function
    verifies a push without fetching Google's keys again. Other requests pass through.

    ``inner`` is the transport (google-auth's urllib3 one by default: urllib3 is loaded with
    botocore anyway, requests is not).
    """

    def __init__(
        self,
        inner: Callable[..., Any] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout_seconds: float = 3.0,
    ) -> None:
        if inner is None:
            import google.auth.transport.urllib3
            import urllib3

            inner = google.auth.transport.urllib3.Request(urllib3.PoolManager())
        self._inner = inner
        self._clock = clock
        self._timeout = timeout_seconds
        self._kept: dict[str, tuple[float, _StoredResponse]] = {}

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        if method != "GET" or body is not None:
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout or self._timeout)
        now = self._clock()
        kept = self._kept.get(url)
        if kept is not None and kept[0] > now:
            return kept[1]
        response = self._inner(url, method="GET", headers=headers, timeout=timeout or self._timeout, **kwargs)
        if response.status == 200:
            # Header lookups are case-insensitive in urllib3 and requests alike.
            found = _MAX_AGE.search(str(response.headers.get("Cache-Control") or ""))
            if found and int(found.group(1)) > 0:
                stored = _StoredResponse(response.status, response.headers, response.data)
                self._kept[url] = (now + int(found.group(1)), stored)
                return stored
        return response


class PubSubPush:
    """Authenticates and reads Gmail's Pub/Sub pushes. Without an audience or a push service
    account configured, every push is refused (fail closed)."""

    def __init__(
        self,
        *,
        audience: str,
        service_account: str,
        certs_url: str,
        issuers: tuple[str, ...] = ISSUERS,
        request: Callable[..., Any] | None = None,
    ) -> None:
        """``request``: the google-auth transport for the certs (a :class:`CachedCerts` made
        on first use by default; keep this object for the process's life so the cache is)."""
        self._audience = audience
        self._service_account = service_account.strip().lower()
        self._certs_url = certs_url
        self._issuers = issuers
        self._request: Any = request

    @property
    def configured(self) -> bool:
        return bool(self._audience and self._service_account)

    def authenticate(self, authorization: str | None) -> Refusal | None:
        """None when ``authorization`` (the header's value) carries a token Pub/Sub signed for
        our subscription; otherwise why not (401 unauthenticated or not verifiable, 403 an
        authentic Google token of someone else, 503 Google's keys could not be read)."""
        if not self.configured:
            return Refusal(403, "gmail push is not configured (GmailPushAudience / GmailPushServiceAccount unset)")
        if not authorization:
            return Refusal(401, "no authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or len(token) > MAX_TOKEN_CHARS or not _JWT.fullmatch(token):
            return Refusal(401, "malformed authorization header")
        import google.auth.exceptions
        from google.oauth2 import id_token

        if self._request is None:
            self._request = CachedCerts()
        try:
            claims = id_token.verify_token(
                token,
                self._request,
                audience=self._audience,
                certs_url=self._certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except google.auth.exceptions.TransportError:
            return Refusal(503, "google's certificates could not be read")
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            # google-auth's messages may quote the token: log our reading of it instead.
            return Refusal(401, f"token did not verify ({type(exc).__name__}: {self._why(token)})")
        if claims.get("iss") not in self._issuers:
            return Refusal(401, "token has an unexpected issuer")
        email = claims.get("email")
        if not isinstance(email, str) or email.strip().lower() != self._service_account:
            return Refusal(403, "token names another service account")
        if claims.get("email_verified") is not True:
            return Refusal(403, "token's email is not verified")
        return None

    def _why(self, token: str) -> str:
        """The likely cause of a failed verification, read from the unverified claims."""
        import google.auth.jwt

        try:
            claims = google.auth.jwt.decode(token, verify=False)
        except (ValueError, TypeError):
            return "malformed"
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp + CLOCK_SKEW_SECONDS < time.time():
            return "expired"
        if claims.get("aud") != self._audience:
            return "wrong audience"
        return "signature, key or times"

    @staticmethod
    def read(body: object, is_base64: bool) -> MailboxNotification | str:
        """The notification an (authenticated) push carries, or why the envelope is refused
        (never quoting it)."""
        if not isinstance(body, str) or not body:
            return "no body"
        if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
            return "body too large"
        raw: bytes
        if is_base64:
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                return "body is not base64"
        else:
            raw = body.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_BODY_BYTES:
            return "body too large"
        try:
            envelope = json.loads(raw)
        except (ValueError, RecursionError):
            return "body is not JSON"
        message = envelope.get("message") if isinstance(envelope, dict) else None
        if not isinstance(message, dict):
            return "no message in the envelope"
        message_id = message.get("messageId", message.get("message_id"))
        if not isinstance(message_id, str) or not _PRINTABLE_ID.fullmatch(message_id):
            return "malformed messageId"
        data = message.get("data")
        if not isinstance(data, str) or not data:
            return "no data in the message"
        try:
            # Pub/Sub sends standard base64; accept the URL-safe alphabet and missing padding too.
            decoded = base64.b64decode(data.translate(_URLSAFE) + "=" * (-len(data) % 4), validate=True)
            payload = json.loads(decoded)
        except (binascii.Error, ValueError, RecursionError):
            return "data is not base64 JSON"
        if not isinstance(payload, dict):
            return "data is not a JSON object"
        address = payload.get("emailAddress")
        if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
            return "malformed emailAddress"
        # Gmail's guide shows a string; payloads with a number have been seen.
        history = payload.get("historyId")
        if isinstance(history, int) and not isinstance(history, bool) and history >= 0:
            history = str(history)
        if not isinstance(history, str) or not _HISTORY_ID.fullmatch(history):
            return "malformed historyId"
        return MailboxNotification(email=address.lower(), cursor=history, message_id=message_id)


_URLSAFE = str.maketrans("-_", "+/")
