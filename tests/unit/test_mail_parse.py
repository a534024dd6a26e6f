"""Each parsing rule of docs/MAIL.md on a message written for it."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from crmsync.domain.message import MailLimits, ParsedMail, Refusal
from crmsync.mail.parse import parse_message


def message(
    body: str = "Hello",
    *,
    subject: str = "Hello",
    sender: str = "Ada <ada@user.example>",
    to: str = "Bob <bob@client.example>",
    html: str | None = None,
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


DEFAULT = MailLimits()
#: Hand-written messages in the shapes real mailers send (docs/MAIL.md says what each must give).
SHAPES = Path(__file__).resolve().parent.parent / "fixtures" / "mail" / "messages"


def shape(name: str) -> bytes:
    return (SHAPES / name).read_bytes()


def parsed(raw: bytes | EmailMessage, limits: MailLimits = DEFAULT) -> ParsedMail:
    result = parse_message(raw if isinstance(raw, bytes) else raw.as_bytes(), limits)
    assert isinstance(result, ParsedMail), result
    return result


def refused(raw: bytes, limits: MailLimits = DEFAULT) -> Refusal:
    result = parse_message(raw, limits)
    assert isinstance(result, Refusal), result
    return result


# ---------------------------------------------------------------- headers


def test_a_plain_message() -> None:
    mail = parsed(
        message(
            "Hi Bob",
            subject="Quote",
            Cc="Carol <Carol@Client.Example>",
            Message_ID="<m1@user.example>",
            In_Reply_To="<p1@client.example>",
            References="<p0@client.example> <p1@client.example>",
            Date="Mon, 08 Jan 2024 10:15:00 +0100",
        )
    )
    assert mail.sender is not None
    assert (mail.sender.email, mail.sender.name) == ("ada@user.example", "Ada")
    assert [(a.email, a.name) for a in mail.to] == [("bob@client.example", "Bob")]
    assert [a.email for a in mail.cc] == ["carol@client.example"]
    assert mail.subject == "Quote"
    assert mail.date == datetime(2024, 1, 8, 9, 15, tzinfo=UTC)
    assert (mail.message_id, mail.in_reply_to) == ("m1@user.example", "p1@client.example")
    assert mail.references == ("p0@client.example", "p1@client.example")
    assert mail.text.strip() == "Hi Bob"
    assert mail.forwarded is None
    assert mail.notes == ()


def test_missing_headers_are_empty_not_errors() -> None:
    mail = parsed(b"From: ada@user.example\r\n\r\nJust a body\r\n")
    assert mail.sender is not None
    assert mail.sender.email == "ada@user.example"
    assert (mail.to, mail.cc, mail.subject, mail.date) == ((), (), "", None)
    assert (mail.message_id, mail.in_reply_to, mail.references) == ("", "", ())
    assert mail.text.strip() == "Just a body"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\nno headers at all",
        b"To: bob@client.example\r\nSubject: no From\r\n\r\nbody",
        b"From: <<<@@>>> \x00garbage\r\n\r\nbody",
        b"From: undisclosed-recipients:;\r\n\r\nbody",
        b"From: Ada <ada@>\r\n\r\nbody",
        b"From: =?utf-8?q?=FF=FE?=\r\n\r\nbody",
    ],
    ids=["empty", "no-headers", "no-from", "garbage", "group", "no-domain", "encoded-garbage"],
)
def test_no_readable_sender_is_refused(raw: bytes) -> None:
    assert refused(raw).reason == "no_sender"


def test_addresses_are_lower_cased_idna_deduplicated_and_invalid_ones_ignored() -> None:
    raw = (
        "From: ada@user.example\r\n"
        "To: Jörg <Joerg@Bücher.Example>, BOB@client.example, not-an-address, x@-bad-.example, bob@client.example\r\n"
        "Cc: joerg@xn--bcher-kva.example, carol@client.example, Carol <CAROL@client.example>\r\n\r\nbody"
    )
    mail = parsed(raw.encode())  # raw UTF-8 headers, as SMTPUTF8 clients send them
    assert [a.email for a in mail.to] == ["joerg@xn--bcher-kva.example", "bob@client.example"]
    assert mail.to[0].name == "Jörg"
    assert [a.email for a in mail.cc] == ["carol@client.example"]


def test_thousands_of_recipients_are_capped_with_a_note() -> None:
    to = ",\r\n ".join(f"person{i}@client.example" for i in range(3000))
    cc = ",\r\n ".join(f"other{i}@client.example" for i in range(2000))
    mail = parsed(f"From: ada@user.example\r\nTo: {to}\r\nCc: {cc}\r\n\r\nbody".encode())
    assert len(mail.to) == 100
    assert mail.cc == ()
    assert mail.to[-1].email == "person99@client.example"
    assert "recipients capped: 5000 addresses, only the first 100 kept" in mail.notes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Mon, 08 Jan 2024 10:15:00 -0500", datetime(2024, 1, 8, 15, 15, tzinfo=UTC)),
        ("Mon, 08 Jan 2024 10:15:00", datetime(2024, 1, 8, 10, 15, tzinfo=UTC)),  # no zone: UTC
        ("8 Jan 2024 10:15 GMT", datetime(2024, 1, 8, 10, 15, tzinfo=UTC)),
        ("yesterday-ish", None),
        ("Mon, 32 Jan 2024 10:15:00 +0000", None),
        ("", None),
    ],
)
def test_dates_are_utc_or_none(header: str, expected: datetime | None) -> None:
    raw = f"From: ada@user.example\r\nDate: {header}\r\n\r\nbody".encode()
    assert parsed(raw).date == expected


def test_message_ids_lose_their_brackets_and_junk() -> None:
    raw = (
        b"From: ada@user.example\r\nMessage-ID:   bare-id@user.example  \r\nIn-Reply-To: junk <a@b> more <c@d>\r\n"
        b"References: <r1@x> <r2@x>\r\n\t<r1@x> <r3@x>\r\n\r\nbody"
    )
    mail = parsed(raw)
    assert mail.message_id == "bare-id@user.example"
    assert mail.in_reply_to == "a@b"
    assert mail.references == ("r1@x", "r2@x", "r3@x")


def test_without_message_id_the_content_hash_is_the_key() -> None:
    first = b"From: ada@user.example\r\nSubject: no id\r\n\r\nbody one"
    second = b"From: ada@user.example\r\nSubject: no id\r\n\r\nbody two"
    a, b = parsed(first), parsed(second)
    assert a.message_id == ""
    assert parsed(first).content_hash == a.content_hash
    assert b.content_hash != a.content_hash
    # SES stamps every delivery with its own trace fields; a second delivery is the same message.
    redelivered = (
        b"Return-Path: <ada@user.example>\r\nReceived: from mx (mx [192.0.2.1]) by inbound-smtp id abc123;\r\n"
        b"\tSun, 22 Nov 2026 01:00:00 +0000\r\nX-SES-Spam-Verdict: PASS\r\n"
        b"Authentication-Results: amazonses.com; spf=pass\r\n" + first
    )
    assert parsed(redelivered).content_hash == a.content_hash


def test_long_subjects_texts_and_html_are_truncated_with_notes() -> None:
    limits = MailLimits(max_subject_chars=10, max_text_chars=50, max_html_chars=80)
    mail = parsed(message("x" * 500, subject="A very long subject indeed", html="<p>" + "y" * 500 + "</p>"), limits)
    assert mail.subject == "A very lon"
    assert len(mail.text) == 50
    assert len(mail.html) <= 80
    assert mail.html.startswith("<p>yyy")
    assert "subject truncated to 10 characters" in mail.notes
    assert "text truncated to 50 of 500 characters" in mail.notes
    assert "HTML truncated to 80 characters" in mail.notes


# ---------------------------------------------------------------- charsets


def test_unknown_charsets_and_invalid_bytes_decode_with_replacement() -> None:
    raw = (
        b"From: ada@user.example\r\nSubject: =?x-no-such-charset?Q?caf=E9?= ok\r\n"
        b"Content-Type: multipart/alternative; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nbonjour \xff\xfe caf\xe9\r\n"
        b"--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>invalid \xc3\x28 utf-8</p>\r\n--B--\r\n"
    )
    mail = parsed(raw)
    assert "bonjour" in mail.text
    assert "ok" in mail.subject
    assert "invalid" in mail.html
    mail.text.encode("utf-8")  # no lone surrogates: storable as UTF-8
    mail.html.encode("utf-8")


def test_8bit_headers_and_a_garbled_from_display_name() -> None:
    raw = b"From: \xff\xfe J\xf6rg <joerg@user.example>\r\nSubject: caf\xe9 \xe2\x82\xac\r\n\r\nbody"
    mail = parsed(raw)
    assert mail.sender is not None
    assert mail.sender.email == "joerg@user.example"
    mail.sender.name.encode("utf-8")
    assert "€" in mail.subject


def test_gb2312_labels_decode_as_gb18030() -> None:
    text = "你好，镕"  # 镕 is in GBK/GB18030 but not in GB2312
    raw = (
        b"From: ada@user.example\r\nSubject: =?gb2312?B?" + base64.b64encode(text.encode("gb18030")) + b"?=\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\n\r\n" + text.encode("gb18030")
    )
    mail = parsed(raw)
    assert mail.subject == text
    assert mail.text.strip() == text


# ---------------------------------------------------------------- HTML


def test_script_laden_html_is_sanitised() -> None:
    hostile = """<html><head><title>x</title><style>body{background:url(https://evil.example/x)}</style>
    <script>alert(1)</script></head><body onload="alert(2)">
    <p style="position:fixed" onclick="alert(3)">Hello <b>Bob</b></p>
    <img src="https://tracker.example/pixel.gif" onerror="alert(4)"><img src="cid:logo@user">
    <img src="data:image/svg+xml;base64,PHN2Zz4=">
    <a href="javascript:alert(5)">a</a><a href=" JaVaScRiPt:alert(6)">b</a>
    <a href="data:text/html,<script>x</script>">c</a>
    <a href="https://ok.example/page">ok</a><iframe src="https://evil.example"></iframe>
    <form action="https://evil.example"><input name="p"><button>Send</button></form>
    <svg><script>alert(7)</script></svg><object data="x.swf"></object>
    <SCRIPT SRC=https://evil.example/x.js></SCRIPT><scr<script>ipt>alert(8)</script>
    </body></html>"""
    mail = parsed(message("Hello Bob", html=hostile))
    lowered = mail.html.lower()
    for forbidden in ("<script", "onerror", "onload", "onclick", "javascript:", "<iframe", "<form", "<input"):
        assert forbidden not in lowered
    for forbidden in ("style=", "<style", "https://tracker.example", "data:text", "<svg", "<object"):
        assert forbidden not in lowered
    assert "<b>Bob</b>" in mail.html
    assert '<a href="https://ok.example/page" rel="noopener noreferrer">ok</a>' in mail.html
    assert '<img src="cid:logo@user">' in mail.html


def test_an_html_only_message_gets_a_text_rendering() -> None:
    raw = (
        b"From: ada@user.example\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style></head><body><p>First &amp; line</p><div>Second<br>Third</div>"
        b"<script>alert(1)</script></body></html>"
    )
    mail = parsed(raw)
    assert mail.text == "First & line\nSecond\nThird"


# ---------------------------------------------------------------- attachments


def with_attachments(*files: tuple[bytes, str, str, str | None]) -> EmailMessage:
    msg = message("See attached")
    for data, maintype, subtype, filename in files:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def test_attachments_are_decoded_with_hash_and_size() -> None:
    pdf = b"%PDF-1.4 fake" + bytes(range(256))
    mail = parsed(with_attachments((pdf, "application", "pdf", "Offer Ü.pdf"), (b"a,b", "text", "csv", None)))
    assert [(a.filename, a.content_type, a.size) for a in mail.attachments] == [
        ("Offer Ü.pdf", "application/pdf", len(pdf)),
        ("attachment-2.csv", "text/csv", 3),
    ]
    assert mail.attachments[0].content == pdf
    assert mail.attachments[0].sha256 == hashlib.sha256(pdf).hexdigest()
    assert mail.text.strip() == "See attached"


def test_an_oversized_attachment_is_dropped_with_a_note_and_the_message_kept() -> None:
    big = b"\x00" * (10 * 1024 * 1024 + 1)
    mail = parsed(with_attachments((big, "application", "pdf", "report.pdf"), (b"small", "text", "plain", "a.txt")))
    report, small = mail.attachments
    assert (report.filename, report.size, report.content) == ("report.pdf", len(big), None)
    assert report.sha256 == hashlib.sha256(big).hexdigest()
    assert small.content == b"small"
    assert mail.notes == ("attachment report.pdf (10 MB) dropped: over the 10 MB limit",)
    assert mail.text.strip() == "See attached"


def test_attachments_beyond_the_count_limit_keep_only_their_metadata() -> None:
    files = [(bytes([i]) * 10, "application", "octet-stream", f"f{i}.bin") for i in range(4)]
    mail = parsed(with_attachments(*files), MailLimits(max_attachments=2))
    assert [a.content is not None for a in mail.attachments] == [True, True, False, False]
    assert all(a.size == 10 for a in mail.attachments)
    assert "2 attachment(s) dropped (f2.bin, f3.bin): over the limit of 2" in mail.notes


def test_inline_images_count_only_when_named_or_attached() -> None:
    msg = message("body", html='<p><img src="cid:logo"></p>')
    html_part = msg.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(b"\x89PNG unnamed", maintype="image", subtype="png", cid="<logo>")
    html_part.add_related(b"\x89PNG named", maintype="image", subtype="png", cid="<sig>", filename="sig.png")
    mail = parsed(msg)
    assert [a.filename for a in mail.attachments] == ["sig.png"]


def test_attachment_filenames_are_display_names_only() -> None:
    mail = parsed(with_attachments((b"x", "application", "octet-stream", "../../etc/pass\x01wd")))
    assert mail.attachments[0].filename == "passwd"


# ---------------------------------------------------------------- forwards


def test_a_gmail_forward_is_the_original_from_its_sender() -> None:
    body = (
        "FYI, see below.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Jane Doe <Jane@Acme.example>\n"
        "Date: Mon, Jan 8, 2024 at 10:15 AM\n"
        "Subject: Quote for 2024\n"
        "To: Ada <ada@user.example>\n"
        "Cc: <carol@acme.example>, Dan <dan@acme.example>\n\n"
        "Hello Ada,\nhere is the quote.\n"
    )
    msg = message(body, subject="Fwd: Quote for 2024")
    msg.add_attachment(b"%PDF quote", maintype="application", subtype="pdf", filename="quote.pdf")
    mail = parsed(msg)
    original = mail.forwarded
    assert original is not None
    assert original.sender is not None
    assert (original.sender.email, original.sender.name) == ("jane@acme.example", "Jane Doe")
    assert original.subject == "Quote for 2024"
    assert original.date == datetime(2024, 1, 8, 10, 15, tzinfo=UTC)
    assert [a.email for a in original.to] == ["ada@user.example"]
    assert [a.email for a in original.cc] == ["carol@acme.example", "dan@acme.example"]
    assert original.text == "Hello Ada,\nhere is the quote."
    assert [a.filename for a in original.attachments] == ["quote.pdf"]
    assert original.message_id == ""
    assert len(original.content_hash) == 64
    assert original.content_hash != mail.content_hash


@pytest.mark.parametrize(
    ("separator", "from_line", "sent_line"),
    [
        (
            "-----Original Message-----",
            "From: John Smith [mailto:john@corp.example]",
            "Sent: Tuesday, March 5, 2024 3:04 PM",
        ),
        ("________________________________", "From: John Smith <john@corp.example>", "Sent: 05 March 2024 15:04"),
        ("", "*From:* John Smith <john@corp.example>", "*Sent:* Tuesday, March 5, 2024 3:04 PM"),
    ],
    ids=["original-message", "underscores", "bare-from-lines"],
)
def test_an_outlook_forward(separator: str, from_line: str, sent_line: str) -> None:
    block = f"{separator}\n{from_line}\n{sent_line}\nTo: Ada <ada@user.example>\nSubject: Contract\n"
    body = f"Please handle.\n\n{block}\nSigned copy attached.\n"
    original = parsed(message(body, subject="FW: Contract")).forwarded
    assert original is not None
    assert original.sender is not None
    assert original.sender.email == "john@corp.example"
    assert original.subject == "Contract"
    assert original.date == datetime(2024, 3, 5, 15, 4, tzinfo=UTC)
    assert original.text == "Signed copy attached."


def test_an_apple_mail_forward_in_html_only() -> None:
    html = (
        "<div>Look at this</div><div><br><blockquote type='cite'><div>Begin forwarded message:</div><br>"
        "<div><b>From: </b>Ann Lee &lt;ann@shop.example&gt;</div><div><b>Subject: </b>Lunch</div>"
        "<div><b>Date: </b>5 March 2024 at 12:00:00 CET</div><div><b>To: </b>Ada &lt;ada@user.example&gt;</div>"
        "<br><div>Lunch on Friday?</div></blockquote></div>"
    )
    raw = f"From: ada@user.example\r\nSubject: Fwd: Lunch\r\nContent-Type: text/html\r\n\r\n{html}".encode()
    original = parsed(raw).forwarded
    assert original is not None
    assert original.sender is not None
    assert (original.sender.email, original.sender.name) == ("ann@shop.example", "Ann Lee")
    assert original.date == datetime(2024, 3, 5, 11, 0, tzinfo=UTC)  # 12:00 CET
    assert original.text == "Lunch on Friday?"


def test_a_block_without_a_forward_subject_is_not_a_forward() -> None:
    body = "---------- Forwarded message ---------\nFrom: Jane <jane@acme.example>\nSubject: x\n\nhello"
    assert parsed(message(body, subject="Re: x")).forwarded is None
    assert parsed(message("Nothing forwarded here", subject="Fwd: x")).forwarded is None


def test_a_block_whose_sender_cannot_be_read_is_noted() -> None:
    body = "---------- Forwarded message ---------\nFrom: Jane <jane@>\nSubject: x\n\nhello"
    mail = parsed(message(body, subject="Fwd: x"))
    assert mail.forwarded is None
    assert "a forwarded block was found but its sender could not be read" in mail.notes


def original_message() -> EmailMessage:
    inner = message(
        "Original text",
        subject="Invoice 42",
        sender="Vendor <billing@vendor.example>",
        to="ada@user.example",
        Message_ID="<inv42@vendor.example>",
        Date="Tue, 05 Mar 2024 08:00:00 +0000",
    )
    inner.add_attachment(b"%PDF invoice", maintype="application", subtype="pdf", filename="invoice.pdf")
    return inner


def test_an_attached_message_is_the_original() -> None:
    outer = message("Forwarding as attachment", subject="Invoice")
    outer.add_attachment(original_message())
    mail = parsed(outer)
    original = mail.forwarded
    assert original is not None
    assert original.sender is not None
    assert original.sender.email == "billing@vendor.example"
    assert (original.subject, original.message_id) == ("Invoice 42", "inv42@vendor.example")
    assert original.date == datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    assert original.text.strip() == "Original text"
    assert [a.filename for a in original.attachments] == ["invoice.pdf"]
    # The forwarder's own message: its text only, and the .eml is not also an attachment.
    assert mail.text.strip() == "Forwarding as attachment"
    assert mail.attachments == ()


def test_a_second_attached_message_and_one_without_sender_stay_attachments() -> None:
    outer = message("Two originals", subject="Fwd: two")
    nameless = EmailMessage()
    nameless["Subject"] = "no sender"
    nameless.set_content("orphan")
    outer.add_attachment(nameless)
    outer.add_attachment(original_message())
    outer.add_attachment(original_message())
    mail = parsed(outer)
    assert mail.forwarded is not None
    assert mail.forwarded.message_id == "inv42@vendor.example"
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("forwarded-message-1.eml", "message/rfc822"),
        ("forwarded-message-3.eml", "message/rfc822"),
    ]
    assert b"orphan" in (mail.attachments[0].content or b"")


# ---------------------------------------------------------------- limits and hostile structure


def test_a_message_over_the_size_limit_is_refused_before_parsing() -> None:
    refusal = refused(message("x" * 2000).as_bytes(), MailLimits(max_message_bytes=1000))
    assert refusal.reason == "too_large"


def test_a_huge_header_count_is_refused() -> None:
    head = b"From: ada@user.example\r\n" + b"X-Spam: 1\r\n" * 999
    assert isinstance(parse_message(head + b"\r\nbody"), ParsedMail)  # exactly 1000 fields
    assert refused(head + b"X-Spam: 1\r\n\r\nbody").reason == "too_many_headers"
    assert refused(b"From: ada@user.example\r\n" + b"X: y\r\n" * 1_000_000 + b"\r\n").reason == "too_many_headers"


def test_a_part_with_too_many_headers_is_refused() -> None:
    raw = (
        b"From: ada@user.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        + b"X-Part: 1\r\n" * 1001
        + b"\r\nbody\r\n--B--\r\n"
    )
    assert refused(raw).reason == "too_many_headers"


def nested(depth: int) -> bytes:
    head = b"From: ada@user.example\r\nSubject: deep\r\n"
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\ndeep text" + closing


def test_multiparts_nested_100_deep_are_refused() -> None:
    refusal = refused(nested(100))
    assert (refusal.reason, refusal.detail) == ("too_deep", "MIME parts nested more than 20 deep")


def test_nesting_up_to_the_limit_is_parsed() -> None:
    assert parsed(nested(20)).text.strip() == "deep text"


def test_thousands_of_nested_levels_are_refused_without_exhausting_the_stack() -> None:
    assert refused(nested(5000)).reason in {"too_deep", "too_complex"}
    assert refused(nested(5000), MailLimits(max_parse_work=10**12)).reason == "too_deep"


def test_too_many_parts_are_refused() -> None:
    parts = b"".join(b"--B\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(600))
    raw = b"From: ada@user.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" + parts + b"--B--\r\n"
    assert refused(raw).reason == "too_many_parts"


def test_a_pathological_line_count_is_refused_before_parsing() -> None:
    raw = b"From: ada@user.example\r\n\r\n" + b"a\n" * 3_000_001
    refusal = refused(raw)
    assert refusal.reason == "too_complex"


def test_an_internal_error_becomes_an_unparseable_refusal() -> None:
    refusal = parse_message("not bytes", MailLimits())  # type: ignore[arg-type]
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "unparseable"


# ---------------------------------------------------------------- shapes real mailers send


def test_a_nul_in_a_charset_name_decodes_instead_of_refusing() -> None:
    """charset="utf\\x008" made mail-parser's codec lookup raise ValueError: the message was refused."""
    mail = parsed(shape("charset-with-nul.eml"))
    assert mail.text.strip() == "Le café est prêt."  # the NUL dropped: "utf8"
    assert mail.html == "<p>Le caf\ufffd est pr\ufffdt.</p>"  # still unknown: replacement characters


NOT_STORABLE = re.compile(r"[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_undecodable_header_bytes_and_encoded_words_become_replacement_characters() -> None:
    mail = parsed(shape("header-bytes.eml"))
    # Raw 8-bit bytes that are not UTF-8 came out as literal "\\udcff" text, and an encoded word
    # with invalid UTF-8 as its raw "=?utf-8?b?...?=" form.
    assert [(a.email, a.name) for a in mail.to] == [("bob@client.example", "Bad\ufffd\ufffdName")]
    assert [(a.email, a.name) for a in mail.cc] == [("carol@client.example", "Carol \ufffd\ufffd Client")]
    assert mail.subject == "Quote for caf\ufffd"  # the NUL is gone
    assert mail.text == "Line one with a NUL and a bell\n\tindented line two \ufffd"  # tab and line feed kept
    for value in (mail.subject, mail.text, *(a.name for a in (*mail.to, *mail.cc))):
        assert not NOT_STORABLE.search(value), value


def test_controls_and_undecodable_bytes_never_reach_names_filenames_or_ids() -> None:
    raw = (
        b"From: Ada\x01\x00 <ada@user.example>\r\nTo: Bob\tClient <bob@client.example>\r\n"
        b"Subject: =?utf-8?q?a=00b=1Bc?=\r\nMessage-ID: <id\x85\xff@user.example>\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\x1b[31m red\r\n"
        b'--B\r\nContent-Type: application/pdf; name="re\xffport\x00.pdf"\r\n\r\n%PDF\r\n--B--\r\n'
    )
    mail = parsed(raw)
    assert mail.sender is not None
    assert mail.sender.name == "Ada"
    assert mail.to[0].name == "Bob Client"
    assert mail.subject == "abc"
    assert mail.text == "hi[31m red"
    assert [a.filename for a in mail.attachments] == ["re\ufffdport.pdf"]
    assert mail.message_id == "id\ufffd\ufffd@user.example"


def test_a_digest_keeps_its_text_and_every_message_as_an_eml_attachment() -> None:
    """It was logged as its first message only, the digest's text and the others dropped."""
    mail = parsed(shape("digest.eml"))
    assert mail.forwarded is None
    assert mail.text == "Bob, here are the three messages we talked about."
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("message-1.eml", "message/rfc822"),
        ("message-2.eml", "message/rfc822"),
        ("message-3.eml", "message/rfc822"),
    ]
    contents = [a.content or b"" for a in mail.attachments]
    assert [c.count(b"Subject: ") for c in contents] == [1, 1, 1]
    assert [b"Is the offer still valid?" in contents[0], b"two parts" in contents[1], b"contract" in contents[2]] == [
        True
    ] * 3


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bounce-report.eml", "bounce"),  # multipart/report; report-type=delivery-status
        ("bounce-postmaster.eml", "bounce"),  # no report: postmaster, a bounce's subject
        ("bounce-forwarded.eml", "bounce"),  # the user forwarded the bounce
        ("auto-reply.eml", "auto_reply"),  # Auto-Submitted: auto-replied (an Outlook out-of-office)
        ("auto-reply-forwarded.eml", "auto_reply"),  # the user forwarded it: it was logged from Bob
    ],
)
def test_bounces_and_automatic_replies_are_refused_with_their_own_reason(name: str, reason: str) -> None:
    assert refused(shape(name)).reason == reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("X-Autoreply: yes\r\n", "auto_reply"),
        ("X-Autorespond: vacation\r\n", "auto_reply"),
        ("Precedence: auto_reply\r\n", "auto_reply"),
        ("Auto-Submitted: auto-generated; owner-email=x@y.example\r\n", "auto_reply"),
        ("X-Failed-Recipients: bob@client.example\r\n", "bounce"),
        ("Content-Type: multipart/report; report-type=disposition-notification; boundary=R\r\n", "auto_reply"),
    ],
    ids=["x-autoreply", "x-autorespond", "precedence", "auto-generated", "exim-bounce", "read-receipt"],
)
def test_automatic_messages_are_known_by_their_headers(headers: str, reason: str) -> None:
    body = "--R\r\nContent-Type: text/plain\r\n\r\nbody\r\n--R--\r\n"
    raw = f"From: bob@client.example\r\nTo: ada@user.example\r\nSubject: Re: Quote\r\n{headers}\r\n{body}"
    assert refused(raw.encode()).reason == reason


def test_an_inline_forward_of_a_bounce_or_an_auto_reply_is_refused() -> None:
    block = "---------- Forwarded message ---------\nFrom: {sender}\nSubject: {subject}\nTo: ada@user.example\n\nx\n"
    bounce = block.format(sender="Mail Delivery Subsystem <mailer-daemon@googlemail.com>", subject="Failure")
    away = block.format(sender="Bob <bob@client.example>", subject="Automatic reply: Quote")
    assert refused(message(bounce, subject="Fwd: Failure").as_bytes()).reason == "bounce"
    assert refused(message(away, subject="Fwd: Automatic reply: Quote").as_bytes()).reason == "auto_reply"


def test_ordinary_mail_is_not_taken_for_an_automatic_one() -> None:
    assert parsed(message("Hi", Auto_Submitted="no", X_Auto_Response_Suppress="All", Precedence="bulk"))
    assert parsed(message("Your question", sender="postmaster@user.example", subject="Re: our mail server"))
    assert parsed(message("Undeliverable? No, it arrived.", subject="Delivery failure"))


def test_another_named_message_part_stays_an_attachment_with_its_text() -> None:
    raw = (
        b"From: ada@user.example\r\nTo: bob@client.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nSee the report.\r\n"
        b'--B\r\nContent-Type: message/feedback-report\r\nContent-Disposition: attachment; filename="arf.txt"\r\n\r\n'
        b"Feedback-Type: abuse\r\nUser-Agent: x/1\r\n\r\n--B--\r\n"
    )
    mail = parsed(raw)
    assert [(a.filename, a.content_type) for a in mail.attachments] == [("arf.txt", "message/feedback-report")]
    assert b"Feedback-Type: abuse" in (mail.attachments[0].content or b"")


def test_a_cut_off_boundary_keeps_the_text() -> None:
    """boundary="----=_Part_4711 (the value cut off): the body was stored empty."""
    mail = parsed(shape("boundary-cut-off.eml"))
    assert mail.text == "The text that must not get lost."
    assert mail.html == "<p>The text that must not get lost.</p>"


def test_a_multipart_without_any_boundary_keeps_its_text() -> None:
    headless = b"From: ada@user.example\r\nTo: bob@client.example\r\nContent-Type: multipart/mixed\r\n\r\n"
    with_delimiters = headless + b"--XYZ\r\nContent-Type: text/plain\r\n\r\nFirst part.\r\n--XYZ--\r\n"
    assert parsed(with_delimiters).text == "First part."
    assert parsed(headless + b"Just words, no parts.\r\n").text == "Just words, no parts."


def test_repeated_to_and_cc_fields_keep_every_address() -> None:
    mail = parsed(shape("two-to-fields.eml"))
    assert [(a.email, a.name) for a in mail.to] == [
        ("bob@client.example", "Bob Client"),
        ("carol@client.example", "Carol Client"),
    ]
    assert [a.email for a in mail.cc] == ["dan@client.example", "eve@client.example"]


def test_a_message_whose_whole_body_is_a_message_is_a_forward_of_it() -> None:
    """Content-Type: message/rfc822 at the top: it was logged as the forwarder's own, empty message."""
    mail = parsed(shape("rfc822-body.eml"))
    original = mail.forwarded
    assert original is not None
    assert original.sender is not None
    assert (original.sender.email, original.subject) == ("dave@customer.example", "Question about the offer")
    assert original.message_id == "q-2019@customer.example"
    assert original.text == "Is the price negotiable?"
    assert (mail.text, mail.attachments) == ("", ())
