"""Counting proxies: every request the functions make to DynamoDB Local and to moto, by service
and operation, for the cost model (`bench/cost.py`).

A proxy is a small threaded HTTP server on loopback that forwards each request unchanged to
its target and records what it was. The stack points its functions at the proxies
(``Stack(count_requests=True)``) instead of at the servers, so the product still cannot tell
(its endpoints are configuration, as on AWS) and nothing changes for tests and ``make dev``,
which never start one.

What is recorded, per request:

- DynamoDB: the operation (``X-Amz-Target``), the tables, the capacity units AWS would bill
  (the proxy asks for ``ReturnConsumedCapacity: TOTAL`` when the caller did not, and reads
  ``ConsumedCapacity`` from the answer: DynamoDB Local computes it as AWS does) and, per item
  touched, the value of the key attributes named in the request (hashed), so that the busiest
  partition can be found.
- moto: the service (the SigV4 credential scope names it), the operation (``X-Amz-Target``, the
  query ``Action``, or for S3 the method and path), SQS's queue, MessageGroupIds and 64 KB
  payload chunks.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["CountingProxy", "Recorded", "RequestLog", "aws_operation", "dynamodb_keys", "hashed"]

#: Operations that accept ReturnConsumedCapacity.
CAPACITY_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
#: SQS bills each 64 KB chunk of a request's payload as one request.
SQS_CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


def hashed(value: str) -> str:
    """A short stable digest of a key value: partitions are told apart without being kept."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@dataclass
class Recorded:
    """One request as the cost model sees it."""

    service: str
    operation: str
    #: DynamoDB table names, SQS queue name, S3 bucket (the resource the request touched).
    resources: tuple[str, ...] = ()
    #: DynamoDB: capacity units read and written (from the answer's ConsumedCapacity).
    rcu: float = 0.0
    wcu: float = 0.0
    #: DynamoDB: per item touched, (table, {key attribute: hashed value}).
    keys: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    #: SQS: the MessageGroupIds sent (hashed) and the payload's 64 KB chunks; EventBridge
    #: PutEvents: its entries (each billed).
    groups: tuple[str, ...] = ()
    chunks: int = 1
    status: int = 0
    request_bytes: int = 0


@dataclass
class RequestLog:
    """Thread-safe list of `Recorded`, shared by the proxies of one stack."""

    items: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, item: Recorded) -> None:
        with self._lock:
            self.items.append(item)

    def snapshot(self) -> list[Recorded]:
        with self._lock:
            return list(self.items)

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)


# ---------------------------------------------------------------------- parsing (pure)


def _scalar(value: Any) -> str:
    """The text of a DynamoDB attribute value ({"S": "x"} → "x")."""
    if isinstance(value, dict) and len(value) == 1:
        inner = next(iter(value.values()))
        return inner if isinstance(inner, str) else json.dumps(inner, sort_keys=True)
    return json.dumps(value, sort_keys=True)


def _key_of(item: Mapping[str, Any], attributes: Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    names = list(attributes) if attributes is not None else list(item)
    return tuple(sorted((name, hashed(_scalar(item[name]))) for name in names if name in item))


def _equalities(body: Mapping[str, Any]) -> dict[str, Any]:
    """``attr = :value`` pairs of a Query's KeyConditionExpression, names and values resolved."""
    expression = str(body.get("KeyConditionExpression") or "")
    names = body.get("ExpressionAttributeNames") or {}
    values = body.get("ExpressionAttributeValues") or {}
    found: dict[str, Any] = {}
    for name, placeholder in re.findall(r"([#\w.]+)\s*=\s*(:\w+)", expression):
        attribute = names.get(name, name)
        if placeholder in values:
            found[attribute] = values[placeholder]
    return found


def dynamodb_keys(
    operation: str, body: Mapping[str, Any], key_attributes: Mapping[str, Iterable[str]] | None = None
) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Per item a request touches: (table, its key attributes with hashed values).

    ``key_attributes`` names each table's key attributes (its primary key's and its indexes'
    hash keys); without it, a written item's every attribute would be kept, so Put items keep
    only what it names (or nothing for an unknown table)."""

    def keyed(table: str, item: Mapping[str, Any], exact: bool) -> tuple[str, tuple[tuple[str, str], ...]]:
        known = (key_attributes or {}).get(table)
        if known is None:
            return table, (_key_of(item, None) if exact else ())
        return table, _key_of(item, known)

    table = str(body.get("TableName") or "")
    if operation in {"GetItem", "UpdateItem", "DeleteItem"}:
        return [keyed(table, body.get("Key") or {}, True)]
    if operation == "PutItem":
        return [keyed(table, body.get("Item") or {}, False)]
    if operation == "Query":
        return [keyed(table, _equalities(body), True)]
    if operation == "Scan":
        return [(table, ())]
    out: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    if operation == "BatchGetItem":
        for name, request in (body.get("RequestItems") or {}).items():
            out += [keyed(name, key, True) for key in request.get("Keys") or []]
    elif operation == "BatchWriteItem":
        for name, requests in (body.get("RequestItems") or {}).items():
            for request in requests:
                if "PutRequest" in request:
                    out.append(keyed(name, request["PutRequest"].get("Item") or {}, False))
                elif "DeleteRequest" in request:
                    out.append(keyed(name, request["DeleteRequest"].get("Key") or {}, True))
    elif operation in {"TransactWriteItems", "TransactGetItems"}:
        for entry in body.get("TransactItems") or []:
            for kind, part in entry.items():
                if kind == "Put":
                    out.append(keyed(str(part.get("TableName") or ""), part.get("Item") or {}, False))
                else:
                    out.append(keyed(str(part.get("TableName") or ""), part.get("Key") or {}, True))
    return out


def consumed(operation: str, answer: Mapping[str, Any]) -> tuple[float, float]:
    """(read units, write units) from an answer's ConsumedCapacity (a dict or a list of them)."""
    capacity = answer.get("ConsumedCapacity")
    entries = capacity if isinstance(capacity, list) else [capacity] if isinstance(capacity, dict) else []
    read = write = 0.0
    for entry in entries:
        units = float(entry.get("CapacityUnits") or 0.0)
        if "ReadCapacityUnits" in entry or "WriteCapacityUnits" in entry:
            read += float(entry.get("ReadCapacityUnits") or 0.0)
            write += float(entry.get("WriteCapacityUnits") or 0.0)
        elif operation in WRITE_OPERATIONS:
            write += units
        else:
            read += units
    return read, write


def _s3_operation(method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> str:
    parts = [p for p in path.split("/") if p]
    has_key = len(parts) > 1
    if method == "PUT":
        if not has_key:
            return "CreateBucket"
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "GET":
        if has_key:
            return "GetObject"
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "DELETE":
        return "DeleteObject" if has_key else "DeleteBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return f"{method} {'object' if has_key else 'bucket'}"


def aws_operation(method: str, target: str, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    """(service, operation) of a request to moto; ``target`` is the request's path and query,
    ``headers`` lower-cased."""
    match = _SCOPE.search(headers.get("authorization", ""))
    service = match.group(1) if match else "unknown"
    amz_target = headers.get("x-amz-target", "")
    if amz_target:
        return service, amz_target.rsplit(".", 1)[-1]
    split = urlsplit(target)
    query = parse_qs(split.query, keep_blank_values=True)
    if service == "s3":
        return service, _s3_operation(method, split.path, query, headers)
    if "Action" in query:
        return service, query["Action"][0]
    if "x-www-form-urlencoded" in headers.get("content-type", ""):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return service, form["Action"][0]
    return service, f"{method} {split.path}"


def sqs_details(operation: str, headers: Mapping[str, str], body: bytes) -> tuple[str, tuple[str, ...], int]:
    """(queue name, hashed MessageGroupIds, 64 KB chunks) of an SQS request (JSON or query)."""
    if headers.get("x-amz-target"):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        url = str(doc.get("QueueUrl") or "")
        entries = doc.get("Entries") if operation.endswith("Batch") else [doc]
        groups = [str(e["MessageGroupId"]) for e in entries or [] if isinstance(e, dict) and e.get("MessageGroupId")]
    else:
        form = parse_qs(body.decode("utf-8", "replace"))
        url = (form.get("QueueUrl") or [""])[0]
        groups = [values[0] for name, values in form.items() if name.endswith("MessageGroupId")]
    chunks = max(1, -(-len(body) // SQS_CHUNK)) if operation.startswith("SendMessage") else 1
    return url.rstrip("/").rsplit("/", 1)[-1], tuple(hashed(g) for g in groups), chunks


def put_events_entries(body: bytes) -> int:
    """EventBridge bills each entry of a PutEvents (per 64 KB), not the request."""
    try:
        entries = json.loads(body or b"{}").get("Entries") or []
    except (ValueError, AttributeError):
        return 1
    return sum(max(1, -(-len(json.dumps(e)) // SQS_CHUNK)) for e in entries) or 1


# ---------------------------------------------------------------------- the proxy


class CountingProxy:
    """A loopback HTTP proxy in front of ``target`` (``http://host:port``) that records each
    request in ``log``. ``kind``: ``"dynamodb"`` or ``"aws"`` (moto)."""

    def __init__(self, target: str, log: RequestLog, kind: str) -> None:
        self.target = urlsplit(target)
        self.log = log
        self.kind = kind
        #: DynamoDB: table name → the key attributes whose values are recorded.
        self.key_attributes: dict[str, tuple[str, ...]] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"counting-{kind}", daemon=True)
        self._local = threading.local()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.target.hostname or "127.0.0.1", self.target.port, timeout=120)
            self._local.connection = connection
        return connection

    def _read_body(self, handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            return b"".join(chunks)
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = self._read_body(handler)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        sent = body
        operation = ""
        request_doc: dict[str, Any] = {}
        if self.kind == "dynamodb":
            operation = headers.get("x-amz-target", "").rsplit(".", 1)[-1]
            try:
                request_doc = json.loads(body or b"{}")
            except ValueError:
                request_doc = {}
            if operation in CAPACITY_OPERATIONS and request_doc.get("ReturnConsumedCapacity") in (None, "NONE"):
                sent = json.dumps({**request_doc, "ReturnConsumedCapacity": "TOTAL"}).encode()
        forward = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        forward["Content-Length"] = str(len(sent))
        forward["Host"] = self.target.netloc
        status, reason, answer_headers, answer = self._forward(handler.command, handler.path, sent, forward)
        try:
            self._record(handler.command, handler.path, headers, body, operation, request_doc, status, answer)
        finally:
            handler.send_response_only(status, reason)
            for name, value in answer_headers:
                if name.lower() not in _HOP_BY_HOP:
                    handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(answer)

    def _forward(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=dict(headers))
                response = connection.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _record(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        operation: str,
        request_doc: Mapping[str, Any],
        status: int,
        answer: bytes,
    ) -> None:
        if self.kind == "dynamodb":
            try:
                answer_doc = json.loads(answer or b"{}")
            except ValueError:
                answer_doc = {}
            rcu, wcu = consumed(operation, answer_doc) if status == 200 else (0.0, 0.0)
            keys = tuple(dynamodb_keys(operation, request_doc, self.key_attributes))
            tables = tuple(sorted({table for table, _ in keys if table}))
            self.log.add(
                Recorded("dynamodb", operation, tables, rcu, wcu, keys, status=status, request_bytes=len(body))
            )
            return
        service, operation = aws_operation(method, path, headers, body)
        resources: tuple[str, ...] = ()
        groups: tuple[str, ...] = ()
        chunks = 1
        if service == "sqs":
            queue, groups, chunks = sqs_details(operation, headers, body)
            resources = (queue,) if queue else ()
        elif service == "events" and operation == "PutEvents":
            chunks = put_events_entries(body)
        elif service == "s3":
            bucket = urlsplit(path).path.strip("/").split("/", 1)[0]
            resources = (bucket,) if bucket else ()
        self.log.add(
            Recorded(
                service, operation, resources, groups=groups, chunks=chunks, status=status, request_bytes=len(body)
            )
        )
