"""Hypothesis: hostile MIME never makes the parser raise, let a script through or break a limit.

Two sources: messages generated part by part (random headers, boundaries, nesting, charsets,
transfer encodings, truncation), and the real-world corpus with random byte damage.
"""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crmsync.domain.message import MailLimits, ParsedMail, Refusal
from crmsync.mail.parse import parse_message
from tests.support.mail_corpus import corpus_messages

REASONS = {
    *("too_large", "too_many_headers", "too_many_parts", "too_deep", "too_complex", "no_sender", "bounce"),
    *("auto_reply", "unparseable"),
}
#: What no stored text may hold: lone surrogates (undecodable bytes), NUL and the other controls
#: (bodies keep tab and line feed).
BODY_JUNK = re.compile(r"[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f]")
LINE_JUNK = re.compile(r"[\ud800-\udfff\x00-\x1f\x7f-\x9f]")
TIGHT = MailLimits(
    max_message_bytes=200_000,
    max_attachment_bytes=300,
    max_attachments=2,
    max_recipients=3,
    max_headers=40,
    max_mime_depth=4,
    max_parts=25,
    max_subject_chars=30,
    max_text_chars=400,
    max_html_chars=400,
)
LIMITS = st.sampled_from([MailLimits(), TIGHT])
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CHARSETS = st.sampled_from(
    ["utf-8", "us-ascii", "iso-8859-1", "gb2312", "shift_jis", "utf-16", "utf-7", "x-unknown", "idna", "base64", ""]
)
ENCODINGS = st.sampled_from(["", "7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus"])
SCRIPTY = st.sampled_from(
    [
        b"<script>alert(1)</script>",
        b"<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
        b"<img src=x onerror=alert(1)>",
        b"<scr<script>ipt>alert(1)</scr</script>ipt>",
        b"<svg><script>alert(1)</script></svg>",
        b"<a href='javascript:alert(1)'>x</a>",
        b"<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        b"&lt;script&gt;alert(1)&lt;/script&gt;",
        b"<!--<script>-->alert(1)<!--</script>-->",
        b"---------- Forwarded message ---------\r\nFrom: Jane <jane@acme.example>\r\nDate: Mon, Jan 8, 2024"
        b" at 10:15 AM\r\nSubject: <script>x</script>\r\nTo: a@b.example\r\n\r\n<script>alert(1)</script>",
    ]
)
ADDRESSES = st.sampled_from(
    [
        b"ada@user.example",
        b"Ada <ada@user.example>",
        b"=?utf-8?b?w7Zyc3Q=?= <Ost@B\xc3\xbccher.Example>",
        b"<<<@@>>>",
        b"undisclosed-recipients:;",
        b'"quoted, name" <q@x.example>, b@y.example; c@z.example',
        b"\xff\xfe@\x00.example",
        b"a@b",
    ]
)
#: Well-formed names; NOISE ones (rarer) end the header block: everything after is body.
HEADER_NAMES = st.sampled_from(
    [b"From", b"To", b"Cc", b"Subject", b"Date", b"Message-ID", b"References", b"In-Reply-To", b"X-Junk"]
) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"), min_size=1).map(str.encode)
NOISE = st.binary(min_size=1, max_size=12)
HEADER_VALUES = (
    ADDRESSES
    | st.binary(max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b)
    | st.builds(lambda c, t: b"=?" + c.encode() + b"?B?" + t + b"?=", CHARSETS, st.binary(max_size=20))
    | st.sampled_from([b"Fwd: hello", b"Mon, 1 Jan 2024 10:00 AM", b"<id@x>", b"\t folded\r\n continuation"])
)


def headers(draw: st.DrawFn, count: int) -> bytes:
    names = draw(st.sampled_from([HEADER_NAMES] * 9 + [HEADER_NAMES | NOISE]))  # now and then a broken one
    pairs = draw(st.lists(st.tuples(names, HEADER_VALUES), max_size=count))
    return b"".join(name + b": " + value + b"\r\n" for name, value in pairs)


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    content_type = draw(
        st.sampled_from(
            [b"text/plain", b"text/html"] * 3 + [b"image/png", b"application/pdf", b"text/calendar", b"x/y"]
        )
    )
    charset = draw(CHARSETS).encode()
    encoding = draw(ENCODINGS).encode()
    head = b"Content-Type: " + content_type + (b"; charset=" + charset if charset else b"") + b"\r\n"
    if encoding:
        head += b"Content-Transfer-Encoding: " + encoding + b"\r\n"
    if draw(st.sampled_from([False, False, True])):
        name = draw(st.binary(max_size=20).filter(lambda b: b'"' not in b and b"\n" not in b))
        head += b'Content-Disposition: attachment; filename="' + name + b'"\r\n'
    head += headers(draw, 3)
    words = st.sampled_from([b"", b"<p>Hello <b>Bob</b>", b"Dear Bob,\r\n", b"\xe2\x82\xac 5"]) | st.binary(
        max_size=200
    )
    body = draw(st.builds(lambda *chunks: b"".join(chunks), words, SCRIPTY | st.just(b""), words))
    return head + b"\r\n" + body


@st.composite
def multipart(draw: st.DrawFn, children: st.SearchStrategy[bytes]) -> bytes:
    sane = st.sampled_from([b"B", b"b1", b"=_x", b"", b"--"])
    boundary = draw(draw(st.sampled_from([sane] * 4 + [st.binary(min_size=1, max_size=8)])))
    subtype = draw(st.sampled_from([b"mixed", b"alternative", b"related", b"digest", b"report"]))
    parts = draw(st.lists(children, max_size=4))
    body = draw(st.binary(max_size=20))  # preamble
    for part in parts:
        body += b"\r\n--" + boundary + b"\r\n" + part
    if draw(st.booleans()):
        body += b"\r\n--" + boundary + b"--\r\n" + draw(st.binary(max_size=20))  # close, then epilogue
    return b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\r\n\r\n' + body


@st.composite
def attached_message(draw: st.DrawFn, children: st.SearchStrategy[bytes]) -> bytes:
    inner = draw(st.sampled_from([b"From: orig@vendor.example\r\n", b""])) + headers(draw, 4) + draw(children)
    return (
        b"Content-Type: message/rfc822\r\n"
        + draw(st.sampled_from([b"", b"Content-Disposition: attachment\r\n"]))
        + (b"\r\n" + inner)
    )


TREES = st.recursive(leaf(), lambda children: multipart(children) | attached_message(children), max_leaves=10)
#: What most mail looks like (text and HTML alternatives), with hostile HTML inside.
ALTERNATIVES = st.builds(
    lambda text, html, encoding: (
        b'Content-Type: multipart/alternative; boundary="A"\r\n\r\n--A\r\nContent-Type: text/plain\r\n\r\n'
        + text
        + b"\r\n--A\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: "
        + encoding
        + b"\r\n\r\n"
        + html
        + b"\r\n--A--\r\n"
    ),
    st.binary(max_size=100),
    st.builds(lambda *chunks: b"".join(chunks), st.binary(max_size=40), SCRIPTY, st.binary(max_size=40), SCRIPTY),
    st.sampled_from([b"8bit", b"quoted-printable"]),
)


@st.composite
def hostile_messages(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from([b"From: ada@user.example\r\n"] * 4 + [b""])) + headers(draw, 8)
    raw += draw(st.sampled_from([b"", b"Subject: Fwd: x\r\n"])) + draw(TREES | ALTERNATIVES)
    if draw(st.sampled_from([False, False, False, True])):  # truncated in transit, anywhere
        raw = raw[: draw(st.randoms(use_true_random=True)).randint(0, len(raw))]
    return raw


def mutated(raw: bytes, data: st.DataObject) -> bytes:
    damaged = bytearray(raw)
    uniform = data.draw(st.randoms(use_true_random=True))
    for _ in range(data.draw(st.integers(1, 6))):
        if not damaged:
            break
        at = uniform.randrange(len(damaged))  # Hypothesis' own integers crowd the start (the headers)
        action = data.draw(st.sampled_from(["flip"] * 4 + ["insert"] * 4 + ["delete"] * 2 + ["duplicate", "truncate"]))
        if action == "flip":
            damaged[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            damaged[at:at] = data.draw(st.binary(min_size=1, max_size=40) | SCRIPTY)
        elif action == "delete":
            del damaged[at : at + data.draw(st.integers(1, 200))]
        elif action == "duplicate":
            damaged[at:at] = damaged[at : at + data.draw(st.integers(1, 400))]
        else:
            del damaged[at:]
    return bytes(damaged)


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.values += [value for _, value in attrs if value]


def script_urls(html: str) -> list[str]:
    """Attribute values (entities decoded, as a browser reads them) that are script URLs."""
    parser = _Attributes()
    parser.feed(html)
    parser.close()
    return [v for v in parser.values if re.sub(r"[\x00-\x20]", "", v).lower().startswith(("javascript:", "vbscript:"))]


def assert_sound(result: ParsedMail | Refusal, limits: MailLimits) -> None:
    assert isinstance(result, ParsedMail | Refusal)
    event(
        f"refused: {result.reason}"
        if isinstance(result, Refusal)
        else f"parsed, forwarded={result.forwarded is not None}"
    )
    if isinstance(result, Refusal):
        assert result.reason in REASONS
        return
    kept = 0
    parent: ParsedMail | None = None
    chain: ParsedMail | None = result
    while chain is not None:
        assert "<script" not in chain.html.lower()
        # "javascript:" in the mail's text is text (the fuzzer inserts it anywhere); in a link
        # or a source it would run.
        assert not script_urls(chain.html), chain.html
        assert len(chain.to) + len(chain.cc) <= limits.max_recipients
        assert len(chain.subject) <= limits.max_subject_chars
        assert len(chain.text) <= limits.max_text_chars
        assert len(chain.html) <= limits.max_html_chars
        for body in (chain.text, chain.html):
            assert not BODY_JUNK.search(body), body
        names = [a.name for a in (*chain.to, *chain.cc)] + [chain.sender.name if chain.sender else ""]
        lines = [chain.subject, chain.message_id, chain.in_reply_to, *chain.references, *chain.notes, *names]
        for line in lines + [a.filename for a in chain.attachments]:
            assert not LINE_JUNK.search(line), line
        assert chain.date is None or chain.date.tzinfo is not None
        assert all(c not in chain.message_id for c in "<> \r\n")
        for attachment in chain.attachments:
            if attachment.content is not None:
                assert attachment.size == len(attachment.content) <= limits.max_attachment_bytes
                assert attachment.sha256 == hashlib.sha256(attachment.content).hexdigest()
        if parent is None or chain.attachments != parent.attachments:  # an inline forward shares its parent's
            kept += sum(a.content is not None for a in chain.attachments)
        parent, chain = chain, chain.forwarded
    assert kept <= limits.max_attachments


@FAST
@given(raw=hostile_messages(), limits=LIMITS)
def test_generated_hostile_mime(raw: bytes, limits: MailLimits) -> None:
    assert_sound(parse_message(raw, limits), limits)


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {name: raw for name, raw in corpus_messages().items() if len(raw) < 400_000}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), limits=LIMITS)
def test_damaged_real_world_mail(corpus: dict[str, bytes], data: st.DataObject, limits: MailLimits) -> None:
    name = data.draw(st.sampled_from(sorted(corpus)))
    raw = mutated(corpus[name], data)
    assert_sound(parse_message(raw, limits), limits)
