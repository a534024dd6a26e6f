"""Gmail's batch endpoint (``POST /batch/gmail/v1``): multipart/mixed of ``application/http``
parts, each an ordinary Gmail request, answered with one ``application/http`` part per
request whose ``Content-ID`` is ``response-`` + the request's Content-ID.

The outer request must carry a valid bearer token; each part is then served exactly like a
direct call (faults, scopes, validation), authenticated by its own ``Authorization`` header
or, when it has none, by the outer one (batch parts inherit outer headers).
"""

from __future__ import annotations

import email
import email.policy
import secrets
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from devstack.google.apis.discovery import ApiError
from devstack.google.apis.gmail import mime
from devstack.google.apis.service import error_response
from devstack.google.responses import api_error

if TYPE_CHECKING:
    from devstack.google.apis.gmail.service import GmailApi

BATCH_PATH = "/batch/gmail/v1"
#: Google's documented limit of calls in one batch request.
MAX_PARTS = 100


class BatchEndpoint:
    """Serves the batch path by dispatching each part to the Gmail API's own handlers."""

    def __init__(self, api: GmailApi) -> None:
        self.api = api
        self._handlers = {}
        rules = []
        for index, route in enumerate(api.api_routes()):
            self._handlers[str(index)] = route.handler
            rules.append(Rule(route.rule, methods=list(route.methods), endpoint=str(index)))
        self._map = Map(rules, strict_slashes=False)

    def handle(self, request: Request) -> Response:
        """POST /batch/gmail/v1."""
        outer = request.headers.get("Authorization", "")
        token = outer[7:].strip() if outer[:7].lower() == "bearer " else ""
        if not token or self.api.state.live_access_token(token) is None:
            return error_response(
                ApiError(401, "Request had invalid authentication credentials.", "authError"), "UNAUTHENTICATED"
            )
        if request.mimetype != "multipart/mixed":
            return api_error(400, "Batch requests must be multipart/mixed.", "badRequest")
        parts = mime.multipart_parts(request.headers.get("Content-Type", ""), request.get_data())
        if parts is None:
            return api_error(400, "Batch requests must be multipart/mixed.", "badRequest")
        if len(parts) > MAX_PARTS:
            return api_error(400, f"A batch request may contain at most {MAX_PARTS} calls.", "badRequest")
        boundary = "batch_" + secrets.token_urlsafe(18)
        chunks: list[bytes] = []
        for part in parts:
            content_id = str(part.get("Content-ID", "")).strip()
            answer = self._serve(str(part.get_payload()), outer)
            response_id = f"<response-{content_id[1:]}" if content_id.startswith("<") else f"response-{content_id}"
            chunks.append(
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {response_id}\r\n\r\n".encode()
                + answer
                + b"\r\n"
            )
        chunks.append(f"--{boundary}--\r\n".encode())
        return Response(b"".join(chunks), content_type=f"multipart/mixed; boundary={boundary}")

    def _serve(self, text: str, outer_authorization: str) -> bytes:
        response = self._dispatch(text, outer_authorization)
        status_line = f"HTTP/1.1 {response.status}\r\n"
        headers = "".join(
            f"{name}: {value}\r\n" for name, value in response.headers.items() if name.lower() != "content-length"
        )
        return (status_line + headers + "\r\n").encode() + response.get_data()

    def _dispatch(self, text: str, outer_authorization: str) -> Response:
        request_line, _, rest = text.replace("\r\n", "\n").partition("\n")
        pieces = request_line.split()
        if len(pieces) < 2:
            return api_error(400, "Malformed batch part.", "badRequest")
        method, target = pieces[0].upper(), pieces[1]
        head, _, body = rest.partition("\n\n")
        inner = email.message_from_string(head + "\n\n", policy=email.policy.compat32)
        headers = {name: str(value) for name, value in inner.items() if name.lower() not in ("host", "content-length")}
        if not any(name.lower() == "authorization" for name in headers) and outer_authorization:
            headers["Authorization"] = outer_authorization
        path, _, query = target.partition("?")
        builder = EnvironBuilder(
            method=method,
            path=path,
            query_string=query,
            headers=list(headers.items()),
            data=body.encode() if body else None,
        )
        environ = builder.get_environ()
        adapter = self._map.bind_to_environ(environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            return api_error(404, "Not Found", "notFound")
        except MethodNotAllowed:
            return api_error(405, "Method Not Allowed", "httpMethodNotAllowed")
        except HTTPException as exc:
            return api_error(exc.code or 400, exc.name, "badRequest")
        return self._handlers[str(endpoint)](Request(environ), **values)
