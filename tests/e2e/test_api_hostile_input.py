"""Inputs that once answered 500 through the local stack: each must now get its own 4xx
problem document (RFC 9457), and change nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import requests

from tests.support import clock

pytestmark = [pytest.mark.e2e]

PROBLEM = "application/problem+json"


class Client:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.token = stack.issue_token("t" + uuid.uuid4().hex[:10], "u" + uuid.uuid4().hex[:10])

    def call(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return requests.request(method, self.stack.api_url + path, headers=headers, timeout=30, **kw)

    def appointments(self) -> list[dict]:
        listed = self.call("GET", "/v1/appointments")
        assert listed.status_code == 200, listed.text
        return listed.json()["items"]


@pytest.fixture
def client(stack) -> Client:
    return Client(stack)


def _problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def _booking() -> dict:
    start = clock.next_weekday(clock.TUESDAY, 10)
    return {"title": "Intro", "start": clock.z(start), "end": clock.z(start + timedelta(hours=1)), "time_zone": "UTC"}


@pytest.mark.parametrize("path", ["/v1/appointments", "/v1/integrations/google/authorize"])
def test_a_json_body_sent_as_text_plain_is_415(client: Client, path: str) -> None:
    """What a cross-origin "simple" request sends: refused before anything is parsed."""
    body = _booking() if path == "/v1/appointments" else {}
    refused = client.call("POST", path, data=json.dumps(body), headers={"Content-Type": "text/plain"})
    problem = _problem(refused, 415)
    assert "application/json" in problem["detail"]
    assert client.appointments() == []


def test_a_body_without_content_type_is_415(client: Client) -> None:
    refused = client.call("POST", "/v1/appointments", data=json.dumps(_booking()).encode())
    _problem(refused, 415)


def test_invalid_utf8_inside_a_json_string_is_400(client: Client) -> None:
    raw = json.dumps(_booking()).replace('"Intro"', '"In\\u0074ro X"').encode().replace(b" X", b"\xff\xfe")
    refused = client.call("POST", "/v1/appointments", data=raw, headers={"Content-Type": "application/json"})
    assert "UTF-8" in _problem(refused, 400)["detail"]
    assert client.appointments() == []


@pytest.mark.parametrize("depth", [33, 50_000])
def test_json_nested_too_deep_is_400(client: Client, depth: int) -> None:
    body = '{"title": ' + "[" * depth + "]" * depth + "}"
    refused = client.call("POST", "/v1/appointments", data=body, headers={"Content-Type": "application/json"})
    assert "deep" in _problem(refused, 400)["detail"]


def test_json_nested_100000_deep_is_refused_by_its_size_before_parsing(client: Client) -> None:
    body = '{"title": ' + "[" * 100_000 + "]" * 100_000 + "}"
    refused = client.call("POST", "/v1/appointments", data=body, headers={"Content-Type": "application/json"})
    _problem(refused, 413)


def test_a_lone_surrogate_escape_is_400(client: Client) -> None:
    body = json.dumps(_booking()).replace('"Intro"', '"Intro \\ud800"')
    refused = client.call("POST", "/v1/appointments", data=body, headers={"Content-Type": "application/json"})
    assert "surrogate" in _problem(refused, 400)["detail"]
    assert client.appointments() == []


def test_a_body_over_the_size_limit_is_413(client: Client) -> None:
    big = {**_booking(), "description": "x" * 300_000}
    refused = client.call("POST", "/v1/appointments", json=big)
    _problem(refused, 413)
    assert client.appointments() == []


@pytest.mark.parametrize(
    "start",
    ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z", "1000-01-01T00:00:00Z"],
)
def test_dates_outside_a_sane_range_are_422(client: Client, start: str) -> None:
    booking = {**_booking(), "start": start}
    refused = client.call("POST", "/v1/appointments", json=booking)
    problem = _problem(refused, 422)
    assert problem["type"] == "urn:crmsync:problem:validation"
    listed = client.call("GET", "/v1/appointments", params={"start": start})
    _problem(listed, 422)
    window = client.call("GET", "/v1/availability", params={"start": start, "end": start, "duration": 30})
    _problem(window, 422)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/settings/sender-addresses/" + "a" * 5000 + "@example.com",
        "/v1/appointments/" + "a" * 5000,
        "/v1/integrations/" + "g" * 5000,
        "/v1/contacts/" + "c" * 5000 + "/conversation",
        "/v1/contacts/c1/conversation/" + "m" * 5000,
    ],
)
def test_an_overlong_path_parameter_is_refused_before_it_reaches_a_key(client: Client, path: str) -> None:
    method = "DELETE" if path.startswith(("/v1/settings", "/v1/integrations")) else "GET"
    refused = client.call(method, path)
    assert refused.status_code in (404, 422), refused.text
    assert refused.headers["Content-Type"] == PROBLEM


@pytest.mark.parametrize("answer", ["apply", "ignore"])
def test_an_answer_on_a_calendar_id_too_long_for_a_key_is_404(client: Client, answer: str) -> None:
    """A calendar id the body allows (1024 characters) but no key can hold: no such calendar
    of the user's, so nothing is looked up by it (schemathesis found it answering 500)."""
    body = {"connection_id": "0", "calendar_id": "0" * 1024}
    _problem(client.call("POST", f"/v1/calendars/pending-deletions/{answer}", json=body), 404)


@pytest.mark.parametrize("value", ["a\u0000b", "a\nb", "ab%", "é" * 10])
def test_path_parameters_outside_their_alphabet_are_refused(client: Client, value: str) -> None:
    refused = client.call("GET", "/v1/appointments/" + requests.utils.quote(value, safe=""))
    assert refused.status_code in (404, 422), refused.text
    assert refused.headers["Content-Type"] == PROBLEM


def test_a_path_that_matches_no_route_gets_the_gateways_answer(client: Client) -> None:
    """Documented in docs/API.md: API Gateway answers unmatched routes itself."""
    missing = client.call("GET", "/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.json() == {"message": "Not Found"}


@pytest.mark.parametrize("body", ["[null, null]", "null", '"x"', "[{}]"])
def test_a_body_that_is_not_a_json_object_is_422(client: Client, body: str) -> None:
    """powertools alone would read a list's first item as the body (or a list of nulls as no body)."""
    for path in ("/v1/integrations/google/authorize", "/v1/appointments"):
        refused = client.call("POST", path, data=body, headers={"Content-Type": "application/json"})
        assert "JSON object" in _problem(refused, 422)["detail"]


def test_an_unknown_query_parameter_is_422_not_ignored(client: Client) -> None:
    refused = client.call("GET", "/v1/contacts", params={"limt": "5"})
    problem = _problem(refused, 422)
    assert "'limt'" in problem["detail"]
    assert "limit" in problem["detail"]
    assert client.call("GET", "/v1/contacts", params={"limit": "5"}).status_code == 200


def test_a_boolean_is_not_a_number_of_days(client: Client) -> None:
    preferences = {"direction": "two_way", "external_deletion": "cancel", "window_days_back": False}
    _problem(client.call("PUT", "/v1/settings/sync-preferences", json=preferences), 422)


@pytest.mark.parametrize("start", ["0.5", "1700000000"])
def test_a_number_is_not_a_date(client: Client, start: str) -> None:
    _problem(client.call("GET", "/v1/appointments", params={"start": start}), 422)


@pytest.mark.parametrize(
    "query",
    [
        {"state": "s" * 5000, "code": "c"},
        {"state": "\x00\n", "code": "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")},
        {"error": "access_denied", "state": "x" * 3000},
        {},
        {"state": "a", "code": "b", "scope": "x" * 10000},
    ],
)
def test_the_oauth_callback_answers_hostile_queries_without_a_5xx(stack, query: dict) -> None:
    answer = requests.get(stack.api_url + "/oauth/google/callback", params=query, allow_redirects=False, timeout=30)
    assert answer.status_code < 500, answer.text
    assert answer.status_code in (303, 400, 404)


@pytest.mark.parametrize("provider", ["x" * 3000, "google%00", "GOOGLE"])
def test_the_oauth_callback_refuses_unknown_providers(stack, provider: str) -> None:
    answer = requests.get(
        stack.api_url + f"/oauth/{provider}/callback",
        params={"state": "a", "code": "b"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code in (303, 404), answer.text
    if answer.status_code == 303:
        assert "error=unsupported_provider" in answer.headers["Location"]
