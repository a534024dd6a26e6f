"""Response builders in the shapes Google's servers use."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

# Google sends these on every token-endpoint answer; clients and proxies must not cache tokens.
NO_STORE = {
    "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
    "Pragma": "no-cache",
}

# google.rpc.Code names for the HTTP statuses Google APIs answer with.
_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response with Google's content type."""
    return Response(
        json.dumps(body, indent=2) + "\n",
        status=status,
        headers=dict(headers or {}),
        content_type="application/json; charset=utf-8",
    )


def oauth_error(status: int, error: str, description: str | None = None) -> Response:
    """An OAuth 2.0 error body (RFC 6749 §5.2), as oauth2.googleapis.com returns it."""
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return json_response(body, status, NO_STORE)


def api_error(status: int, message: str, reason: str | None = None) -> Response:
    """A Google API error body (``{"error": {"code", "message", "errors", "status"}}``)."""
    error: dict[str, Any] = {"code": status, "message": message}
    if reason is not None:
        error["errors"] = [{"message": message, "domain": "global", "reason": reason}]
    error["status"] = _RPC_STATUS.get(status, "UNKNOWN")
    return json_response({"error": error}, status)


def html_response(body: str, status: int = 200) -> Response:
    """An HTML page."""
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def redirect_with_params(base: str, params: Mapping[str, str | None]) -> Response:
    """A 302 to ``base`` with ``params`` appended to its query string (``None`` values dropped)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in base else "?"
    response = Response(status=302)
    # Set the header directly: the target is the client's registered URI, never rewritten.
    response.headers["Location"] = f"{base}{separator}{query}"
    return response
