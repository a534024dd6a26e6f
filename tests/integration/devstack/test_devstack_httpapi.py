"""The local API Gateway: payload format 2.0, routing, JWT authorizer, errors."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.stack import Stack

pytestmark = pytest.mark.integration


def echo(stack: Stack, path: str, **kwargs: Any) -> dict[str, Any]:
    response = requests.request(kwargs.pop("method", "GET"), stack.api_url + path, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def reports(stack: Stack, function: str) -> int:
    return sum(1 for line in stack.logs.lines(function) if line.startswith("REPORT "))


def test_payload_format_2_fields(runtime_stack: Stack) -> None:
    url = urllib.parse.urlsplit(runtime_stack.api_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    connection.putrequest("GET", "/public/items/42?tag=a&tag=b&x=1&empty=")
    connection.putheader("Cookie", "session=abc; theme=dark")
    connection.putheader("X-Multi", "one")
    connection.putheader("X-Multi", "two")
    connection.putheader("User-Agent", "devstack-test")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 200
    event = json.loads(response.read())["event"]
    connection.close()

    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /public/items/{id}"
    assert event["rawPath"] == "/public/items/42"
    assert event["rawQueryString"] == "tag=a&tag=b&x=1&empty="
    assert event["queryStringParameters"] == {"tag": "a,b", "x": "1", "empty": ""}
    assert event["pathParameters"] == {"id": "42"}
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "one,two"
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["routeKey"] == "ANY /public/items/{id}"
    assert context["stage"] == "$default"
    assert context["accountId"] == "123456789012"
    assert context["apiId"]
    assert context["http"] == {
        "method": "GET",
        "path": "/public/items/42",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "devstack-test",
    }
    assert isinstance(context["timeEpoch"], int)
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
    assert context["requestId"]
    assert "authorizer" not in context


def test_no_query_no_cookies_omits_those_fields(runtime_stack: Stack) -> None:
    event = echo(runtime_stack, "/public/echo")["event"]
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event
    assert "cookies" not in event
    assert "pathParameters" not in event


def test_text_body_stays_text_and_binary_body_is_base64(runtime_stack: Stack) -> None:
    text = echo(runtime_stack, "/public/echo", method="POST", json={"hello": "wörld"})["event"]
    assert text["isBase64Encoded"] is False
    assert json.loads(text["body"]) == {"hello": "wörld"}

    payload = bytes(range(256))
    binary = echo(
        runtime_stack,
        "/public/echo",
        method="POST",
        data=payload,
        headers={"Content-Type": "application/octet-stream"},
    )["event"]
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == payload


@pytest.mark.parametrize(
    ("method", "path", "route_key", "params"),
    [
        ("GET", "/public/items/special", "GET /public/items/special", None),
        ("POST", "/public/items/special", "ANY /public/items/{id}", {"id": "special"}),
        ("GET", "/public/items/7", "ANY /public/items/{id}", {"id": "7"}),
        ("GET", "/public/files/a/b/c.txt", "GET /public/files/{proxy+}", {"proxy": "a/b/c.txt"}),
    ],
)
def test_most_specific_route_wins(
    runtime_stack: Stack, method: str, path: str, route_key: str, params: dict[str, str] | None
) -> None:
    event = echo(runtime_stack, path, method=method)["event"]
    assert event["routeKey"] == route_key
    assert event.get("pathParameters") == params


def test_no_route_is_404(runtime_stack: Stack) -> None:
    for method, path in [("GET", "/nowhere"), ("DELETE", "/public/items/special/extra"), ("POST", "/public/files/x")]:
        response = requests.request(method, runtime_stack.api_url + path, timeout=10)
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}


def _foreign_token(stack: Stack) -> str:
    """Right claims and kid, but signed by another key."""
    assert stack.issuer is not None
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": stack.issuer.issuer, "aud": "crmsync", "sub": "u", "tenant_id": "t", "iat": now, "exp": now + 60}
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": stack.issuer.kid})


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda s: None, id="missing"),
        pytest.param(lambda s: "Bearer not-a-jwt", id="malformed"),
        pytest.param(lambda s: "Bearer " + _foreign_token(s), id="bad-signature"),
        pytest.param(lambda s: "Bearer " + s.issue_token("t", "u", aud="someone-else"), id="wrong-audience"),
        pytest.param(lambda s: "Bearer " + s.issue_token("t", "u", iss="https://evil.example"), id="wrong-issuer"),
        pytest.param(lambda s: "Bearer " + s.issue_token("t", "u", ttl=-10), id="expired"),
        pytest.param(lambda s: "Bearer " + s.issue_token("t", "u", nbf=int(time.time()) + 600), id="not-yet-valid"),
    ],
)
def test_jwt_authorizer_refuses_without_invoking(runtime_stack: Stack, make_header: Any) -> None:
    header = make_header(runtime_stack)
    before = reports(runtime_stack, "EchoFunction")
    headers = {"Authorization": header} if header else {}
    response = requests.get(runtime_stack.api_url + "/private/echo", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert reports(runtime_stack, "EchoFunction") == before


def test_jwt_authorizer_passes_claims_as_strings(runtime_stack: Stack) -> None:
    token = runtime_stack.issue_token("tenant-1", "user-1", roles=["admin", "viewer"], scope="read write")
    event = echo(runtime_stack, "/private/echo", headers={"Authorization": f"Bearer {token}"})["event"]
    jwt_context = event["requestContext"]["authorizer"]["jwt"]
    claims = jwt_context["claims"]
    assert claims["tenant_id"] == "tenant-1"
    assert claims["sub"] == "user-1"
    assert claims["aud"] == "crmsync"
    assert claims["roles"] == "[admin viewer]"
    assert isinstance(claims["exp"], str)
    assert int(claims["exp"]) > time.time()
    assert jwt_context["scopes"] == ["read", "write"]


def test_second_audience_of_the_list_is_accepted(runtime_stack: Stack) -> None:
    token = runtime_stack.issue_token("t", "u", aud="other-audience")
    response = requests.get(
        runtime_stack.api_url + "/private/echo", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200


def test_public_route_needs_no_token(runtime_stack: Stack) -> None:
    event = echo(runtime_stack, "/public/echo")["event"]
    assert "authorizer" not in event["requestContext"]


def test_handler_exception_is_500_and_logged(runtime_stack: Stack) -> None:
    response = requests.get(runtime_stack.api_url + "/public/boom", timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    logs = runtime_stack.logs.text()
    assert "FixtureBoomError" in logs
    assert "the fixture function failed on purpose" in logs


def test_timeout_is_500_and_the_worker_is_replaced(runtime_stack: Stack) -> None:
    url = runtime_stack.api_url + "/public/slow"
    first_pid = requests.get(url, params={"fast": "1"}, timeout=10).json()["pid"]
    started = time.monotonic()
    response = requests.get(url, timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert time.monotonic() - started < 5
    assert "Task timed out after 1.00 seconds" in runtime_stack.logs.text()
    second_pid = requests.get(url, params={"fast": "1"}, timeout=10).json()["pid"]
    assert second_pid != first_pid


@pytest.mark.parametrize(
    ("result", "status", "body", "content_type"),
    [
        ({"statusCode": 201, "headers": {"content-type": "text/plain"}, "body": "made"}, 201, b"made", "text/plain"),
        (
            {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True},
            200,
            b"\x00\x01",
            None,
        ),
        ({"hello": "world"}, 200, b'{"hello": "world"}', "application/json"),
        ([1, 2, 3], 200, b"[1, 2, 3]", "application/json"),
        ({"statusCode": "nope"}, 500, b'{"message": "Internal Server Error"}', "application/json"),
    ],
)
def test_response_mapping(
    runtime_stack: Stack, result: Any, status: int, body: bytes, content_type: str | None
) -> None:
    response = requests.post(runtime_stack.api_url + "/public/respond", json=result, timeout=10)
    assert response.status_code == status
    assert response.content == body
    if content_type:
        assert response.headers["content-type"] == content_type


def test_response_cookies_become_set_cookie_headers(runtime_stack: Stack) -> None:
    result = {"statusCode": 204, "cookies": ["a=1; Path=/; HttpOnly", "b=2"], "headers": {"x-extra": "yes"}}
    response = requests.post(runtime_stack.api_url + "/public/respond", json=result, timeout=10)
    assert response.status_code == 204
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/; HttpOnly", "b=2"]
    assert response.headers["x-extra"] == "yes"


def test_query_strings_are_not_logged(runtime_stack: Stack) -> None:
    echo(runtime_stack, "/public/echo", params={"code": "SECRET-CODE-4711"})
    assert "SECRET-CODE-4711" not in runtime_stack.logs.text()
    assert any(line.startswith("GET /public/echo 200") for line in runtime_stack.logs.lines("httpapi"))


def test_issuer_discovery_and_health(runtime_stack: Stack) -> None:
    assert runtime_stack.issuer is not None
    base = runtime_stack.issuer.issuer
    discovery = requests.get(base + "/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == base == runtime_stack.api_url + "/.devstack/issuer"
    keys = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert [key["kid"] for key in keys] == [runtime_stack.issuer.kid]
    health = requests.get(runtime_stack.api_url + "/.devstack/health", timeout=10).json()
    assert health["status"] == "ok"
    assert "EchoFunction" in health["functions"]
