"""Hypothesis drives inbound_mail with generated hostile MIME, end to end on DynamoDB Local and S3.

Whatever arrives, the handler answers (never raises on content), every outcome is "logged",
"duplicate" or "refused: <reason>", a refusal writes nothing, and a logged message is complete:
its MAIL# item, one conversation entry per contact, and every S3 object it references.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crmsync.domain import Principal
from tests.integration.test_inbound_mail import ALICE, World, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

NEW_ID = "NEW-MESSAGE-ID"

SENDERS = [
    "Ada <ada@example.com>",
    "ada@example.com",
    "ADA@EXAMPLE.COM",
    "=?utf-8?B?QcSRYQ==?= <ada@example.com>",
    "=?x-bogus?Q?Ada?= <ada@example.com>",
    "<ada@example.com",
    "ada@example.com, mallory@evil.example",
    "mallory@evil.example",
    "",
    "\udcff",
]
ADDRESSES = st.one_of(
    st.sampled_from(["bob@client.example", "Dan <dan@d.example>"]),
    st.builds(lambda n, d: f"q{n}@c{d}.example", st.integers(0, 5000), st.integers(0, 9)),
    st.sampled_from(
        ["bob@client.example", "Carol <carol@other.example>", "ada@example.com", "undisclosed-recipients:;"]
    ),
    st.builds(lambda n, d: f"p{n}@c{d}.example", st.integers(0, 5000), st.integers(0, 9)),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
)
CHARSETS = st.sampled_from(["utf-8", "iso-8859-1", "utf-7", "x-unknown", "shift_jis", "", "utf-8\x00"])
TEXT = st.text(max_size=300)
HTML = st.sampled_from(
    [
        "<p>Hi <script>alert(1)</script><img src=x onerror=alert(2)></p>",
        "<iframe src='javascript:alert(1)'></iframe><form action=//evil><input></form>",
        "<a href='javascript:alert(1)'>x</a><style>body{background:url(//evil)}</style>",
        "<div" * 200,
        "",
    ]
)


@st.composite
def parts(draw: st.DrawFn, depth: int = 0) -> str:
    kinds = ["text", "html", "base64", "attachment", "broken"]
    if depth < 25:
        kinds += ["multipart", "multipart", "rfc822"]
    kind = draw(st.sampled_from(kinds))
    charset = draw(CHARSETS)
    if kind == "text":
        return f"Content-Type: text/plain; charset={charset}\n\n{draw(TEXT)}\n"
    if kind == "html":
        return f"Content-Type: text/html; charset={charset}\n\n{draw(HTML)}\n"
    if kind == "base64":
        body = draw(st.sampled_from(["SGVsbG8=", "not base64 at all ===", base64.b64encode(b"\xff\xfe\x00").decode()]))
        return f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: base64\n\n{body}\n"
    if kind == "attachment":
        name = draw(st.sampled_from(["a.pdf", "../../etc/passwd", "=?utf-8?B?8J+Ssy5leGU=?=", "", "x" * 400]))
        size = draw(st.sampled_from([0, 10, 5000]))
        data = base64.b64encode(b"\x89PNG" * size).decode()
        return (
            f'Content-Type: application/octet-stream; name="{name}"\n'
            f'Content-Disposition: attachment; filename="{name}"\nContent-Transfer-Encoding: base64\n\n{data}\n'
        )
    if kind == "broken":
        return draw(
            st.sampled_from(["Content-Type: multipart/mixed\n\nno boundary\n", "Content-Type: ;;;\n\n\n", "\n"])
        )
    if kind == "rfc822":
        return f"Content-Type: message/rfc822\n\n{draw(messages(depth + 1))}"
    boundary = draw(st.sampled_from(["b1", "b1", "", "x" * 80, "=?"]))
    children = draw(st.lists(parts(depth + 1), min_size=0, max_size=3))
    body = "".join(f"--{boundary}\n{child}" for child in children)
    closing = draw(st.sampled_from([f"--{boundary}--\n", ""]))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n{body}{closing}'


@st.composite
def messages(draw: st.DrawFn, depth: int = 0) -> str:
    """Headers that are mostly plausible (so the write path is exercised), or anything at all."""
    if draw(st.integers(0, 3)):
        sender = "Ada <ada@example.com>"
        to = draw(st.lists(ADDRESSES, min_size=1, max_size=draw(st.sampled_from([3, 3, 150]))))
        message_id = f"<{NEW_ID}@fuzz.example>"  # a fresh id per delivery (see the test)
        flood = draw(st.sampled_from([0, 0, 50]))
    else:
        sender = draw(st.sampled_from(SENDERS))
        to = draw(st.lists(ADDRESSES, max_size=draw(st.sampled_from([0, 3, 150]))))
        message_id = draw(st.sampled_from(["<a@b>", "garbled", "", None, "<" + "m" * 2000 + "@x>"]))
        flood = draw(st.sampled_from([0, 50, 1200]))
    headers = [f"From: {sender}"]
    if to or draw(st.booleans()):
        headers.append("To: " + ", ".join(to))
    if draw(st.booleans()):
        headers.append("Cc: " + ", ".join(draw(st.lists(ADDRESSES, max_size=3))))
    headers.append("Subject: " + draw(st.sampled_from(["Hello", "=?x-bogus?B?////?=", "Fwd: offer", "\x00\x01"])))
    if message_id is not None:
        headers.append(f"Message-ID: {message_id}")
    headers.append("Date: " + draw(st.sampled_from(["Tue, 4 Mar 2025 10:00:00 +0000", "yesterday", "Tue, 4 Mar 2025"])))
    headers.extend(f"X-Flood-{n}: {n}" for n in range(flood))
    return "\n".join(headers) + "\nMIME-Version: 1.0\n" + draw(parts(depth))


def _mutate(raw: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(raw)
    for position, value in flips:
        if data:
            data[position % len(data)] = value
    return bytes(data)


def _objects_of(message: dict[str, Any]) -> list[str]:
    keys = [message[k]["S"] for k in ("text_key", "html_key") if k in message]
    for attachment in message.get("attachments", {}).get("L", []):
        if "s3_key" in attachment["M"]:
            keys.append(attachment["M"]["s3_key"]["S"])
    return keys


def _items(of: World, principal: Principal, prefix: str) -> list[dict[str, Any]]:
    return [i for i in of.partition(principal) if i["sk"]["S"].startswith(prefix)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    text=messages(),
    flips=st.one_of(st.just([]), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3)),
)
def test_hostile_mime_is_logged_or_refused_never_half_written(world: World, text: str, flips: list) -> None:  # noqa: F811
    address = world.bcc.address(ALICE).address
    text = text.replace(NEW_ID, uuid.uuid4().hex)
    raw = _mutate(text.encode("utf-8", errors="surrogateescape"), flips)
    before = (world.partition(ALICE), world.stored_content())

    outcomes = world.deliver(raw, [address])

    assert len(outcomes) == 1
    [outcome] = outcomes
    event(outcome.label)
    assert outcome.status in ("logged", "refused", "duplicate"), outcome
    if outcome.status != "logged":
        assert outcome.reason or outcome.status == "duplicate"
        assert (world.partition(ALICE), world.stored_content()) == before
        return
    [message] = [m for m in _items(world, ALICE, "MAIL#") if m["message_key"]["S"] == outcome.message_key]
    contact_ids = [c["S"] for c in message["contact_ids"]["L"]]
    assert contact_ids
    assert sorted(contact_ids) == sorted(outcome.contact_ids)
    entries = [e for e in _items(world, ALICE, "CONV#") if e["message_key"]["S"] == outcome.message_key]
    assert sorted(e["sk"]["S"].split("#")[1] for e in entries) == sorted(contact_ids)
    stored = set(world.stored_content())
    assert set(_objects_of(message)) <= stored
