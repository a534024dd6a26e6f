"""The parser over real-world mail: mail-parser's public sample corpus (malformed, Outlook,
spam, non-Latin charsets), fetched by `make corpus`. The facts asserted were read off the files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crmsync.domain.message import MailLimits, ParsedMail, Refusal
from crmsync.mail.parse import parse_message
from tests.support.mail_corpus import corpus_messages

#: The only refusals the corpus should produce: mail_outlook_1 is an Outlook .msg (OLE2 binary),
#: not MIME, so it has no From header to read; mail_malformed_2 is a bounce (a postmaster's
#: multipart/report; report-type=delivery-status), which is not conversation.
EXPECTED_REFUSALS = {"mail_outlook_1": "no_sender", "mail_malformed_2": "bounce"}


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return corpus_messages()


@pytest.fixture(scope="module")
def parsed(corpus: dict[str, bytes]) -> dict[str, ParsedMail | Refusal]:
    return {name: parse_message(raw) for name, raw in corpus.items()}


def mail(parsed: dict[str, ParsedMail | Refusal], name: str) -> ParsedMail:
    result = parsed[name]
    assert isinstance(result, ParsedMail), result
    return result


def test_the_corpus_is_complete(corpus: dict[str, bytes]) -> None:
    assert len(corpus) == 23
    assert {"mail_malformed_1", "mail_outlook_1", "mail_test_7"} <= corpus.keys()


def test_every_sample_parses_or_is_refused_for_a_documented_reason(parsed: dict[str, ParsedMail | Refusal]) -> None:
    refusals = {name: r.reason for name, r in parsed.items() if isinstance(r, Refusal)}
    assert refusals == EXPECTED_REFUSALS
    for name, result in parsed.items():
        if isinstance(result, ParsedMail):
            assert result.sender is not None, name
            assert "<script" not in result.html.lower(), name
            assert len(result.content_hash) == 64, name


def test_every_sample_is_parsed_the_same_way_twice(corpus: dict[str, bytes]) -> None:
    for name, raw in corpus.items():
        assert parse_message(raw) == parse_message(raw), name


def test_an_italian_outlook_forward_is_logged_as_its_original(parsed: dict[str, ParsedMail | Refusal]) -> None:
    """mail_test_7: "I: Ordine", forwarded from Outlook with Italian labels (Da/Inviato/A/Oggetto)."""
    message = mail(parsed, "mail_test_7")
    assert message.sender is not None
    assert message.sender.email == "geronazzo@voidstudicom.it"
    assert message.subject == "I: Ordine"
    assert message.message_id == "ed264cf8.1d2e138.18e5b8f.29@voidstudicom.it"
    assert message.in_reply_to == "EEDDF5F5-2786-4B3F-B15A-124A9A29A8D3@agade.info"
    assert message.date == datetime(2017, 6, 9, 15, 56, tzinfo=UTC)
    assert [a.filename for a in message.attachments] == [
        "image001.jpg",
        "att24916.htm",
        "image002.jpg",
        "att09558.htm",
        "image003.jpg",
        "att04803.htm",
        "20170609091403417.pdf",
        "att18831.htm",
    ]
    pdf = message.attachments[6]
    assert pdf.content is not None
    assert pdf.content.startswith(b"%PDF")

    original = message.forwarded
    assert original is not None
    # "Da: export@agade.info [mailto:chiarodiluce@gmail.com]": Outlook names the real mailbox in brackets.
    assert original.sender is not None
    assert original.sender.email == "chiarodiluce@gmail.com"
    assert original.subject == "Ordine"
    assert original.date == datetime(2017, 6, 9, 15, 50, tzinfo=UTC)  # "venerdì 9 giugno 2017 15:50", no zone
    assert [a.email for a in original.to] == ["geronazzo@voidstudicom.it"]
    assert original.text.startswith("Buongiorno Mariachiara")
    assert original.attachments == message.attachments


def test_attachments_names_and_invalid_recipients(parsed: dict[str, ParsedMail | Refusal]) -> None:
    """mail_test_2: three named attachments; "Porcile, M." <mporcile@server_mail.it> has an
    underscore in its domain, so it cannot be a contact."""
    message = mail(parsed, "mail_test_2")
    assert message.sender is not None
    assert message.sender.email == "meteo@regione.vda.it"
    assert message.subject == "Bollettino Meteorologico del 29/11/2015"
    assert message.message_id == "4516257BC5774408ADC1263EEBBBB73F@ad.regione.vda.it"
    assert message.date == datetime(2015, 11, 29, 8, 45, 18, tzinfo=UTC)
    assert [a.email for a in message.to] == ["echo@tu-berlin.de"]
    assert [a.filename for a in message.attachments] == ["intestazione.jpg", "logometeo.jpg", "Bollettino.pdf"]
    assert all(a.content is not None and a.size == len(a.content) for a in message.attachments)


def test_encoded_names_and_filenames(parsed: dict[str, ParsedMail | Refusal]) -> None:
    polish = mail(parsed, "mail_test_11")  # an RFC 2047 encoded, folded filename
    assert polish.attachments[0].filename.startswith("Prokuratura Rejonowa Warszawa-Śródmieście północ")
    russian = mail(parsed, "mail_test_1")  # raw UTF-8 filename, and no Date header at all
    assert [a.filename for a in russian.attachments] == ["ФНС_РФ558.zip"]
    assert russian.date is None
    assert russian.sender is not None
    assert russian.sender.name == "служба ФНС Даниил Суворов"
    commas = mail(parsed, "mail_test_18")
    assert commas.sender is not None
    assert commas.sender.name == "LastßlName, FirstName"
    assert [a.email for a in commas.cc] == ["simple@example.net", "john.doe@example.com"]


def test_chinese_subjects_are_decoded_through_the_gb_superset(parsed: dict[str, ParsedMail | Refusal]) -> None:
    """mail_test_9 labels its subject gb2312 but uses characters only GBK/GB18030 have."""
    message = mail(parsed, "mail_test_9")
    assert message.subject.startswith("我把镜头拉近些")
    assert "\ufffd" not in message.subject
    assert len(message.to) == 21
    assert mail(parsed, "mail_test_12").subject == "代开各地增值税发票"


def test_an_email_address_as_display_name_does_not_fool_the_sender(parsed: dict[str, ParsedMail | Refusal]) -> None:
    message = mail(parsed, "mail_test_19")  # From: alice@example.com <bob@example.com>
    assert message.sender is not None
    assert message.sender.email == "bob@example.com"
    assert message.message_id == "test-email-as-name@example.com"


def test_malformed_boundaries_keep_the_attachment(parsed: dict[str, ParsedMail | Refusal]) -> None:
    """mail_malformed_1 reuses the outer boundary inside, which leaves the zip in the epilogue."""
    message = mail(parsed, "mail_malformed_1")
    assert message.message_id == "791407.263728.a23f87@y.ewreqr.org"
    assert [(a.filename, a.content_type) for a in message.attachments] == [
        ("20160523_916527.jpg_.zip", "application/zip")
    ]
    assert message.attachments[0].content is not None
    assert message.attachments[0].content.startswith(b"PK")


def test_newsletter_html_loses_remote_images_and_keeps_links(parsed: dict[str, ParsedMail | Refusal]) -> None:
    message = mail(parsed, "mail_test_13")  # a Mailchimp newsletter full of remote images
    assert message.subject == "New Webinar: So, You Have A Disaster... Now What?"
    assert 'src="http' not in message.html
    assert '<a href="https://mailchi.mp/' in message.html
    assert 'rel="noopener noreferrer"' in message.html
    assert "<style" not in message.html


def test_gtube_text(parsed: dict[str, ParsedMail | Refusal]) -> None:
    message = mail(parsed, "mail_test_16")
    assert message.message_id == "GTUBE1.1010101@example.net"
    assert "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X" in message.text


def test_limits_apply_to_real_mail(corpus: dict[str, bytes]) -> None:
    limits = MailLimits(max_recipients=5, max_attachment_bytes=100_000, max_attachments=1)
    many = parse_message(corpus["mail_test_9"], limits)
    assert isinstance(many, ParsedMail)
    assert len(many.to) == 5
    assert "recipients capped: 21 addresses, only the first 5 kept" in many.notes
    weather = parse_message(corpus["mail_test_2"], limits)
    assert isinstance(weather, ParsedMail)
    kept = [a.filename for a in weather.attachments if a.content is not None]
    assert kept == ["intestazione.jpg"]
    assert "attachment Bollettino.pdf (1 MB) dropped: over the 97.7 KB limit" in weather.notes
    assert "1 attachment(s) dropped (logometeo.jpg): over the limit of 1" in weather.notes
