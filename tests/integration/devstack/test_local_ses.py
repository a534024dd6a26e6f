"""The local SES: SMTP on loopback, receipt rules (S3 then Lambda), verdicts, async retries, the bus tap.

The fixture application (tests/fixtures/mail) has a logging rule (S3 + the recording function)
for `log.fixture.test`, an archive rule (S3 only) for another domain and one address, and a
disabled rule.
"""

from __future__ import annotations

import json
import smtplib
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
from aws_lambda_powertools.utilities.data_classes import SESEvent
from aws_lambda_powertools.utilities.parser.models import SesModel

from devstack.runtime.asyncinvoke import AsyncDelivery
from devstack.stack import Stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
MAIL_TEMPLATE = ROOT / "tests" / "fixtures" / "mail" / "template.yaml"
BCC = "u-ada@log.fixture.test"


@pytest.fixture(scope="module")
def mail_stack(dynamodb_endpoint: str) -> Iterator[Stack]:
    with Stack(
        ROOT, template_path=MAIL_TEMPLATE, google=False, dynamodb_endpoint=dynamodb_endpoint, concurrency=2
    ) as stack:
        yield stack


def message(subject: str, extra_headers: dict[str, str] | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ada Lovelace <ada@example.com>"
    mail["To"] = 'Bob <bob@example.com>, "Doe, Jane" <jane@example.org>'
    mail["Cc"] = "carol@example.net"
    mail["Subject"] = subject
    mail["Date"] = "Mon, 5 Aug 2019 21:29:57 +0000"
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    for name, value in (extra_headers or {}).items():
        mail[name] = value
    mail.set_content("Hello Bob,\nsee you tomorrow.\n")
    return mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))


def send_smtp(stack: Stack, raw: bytes, rcpt_to: list[str]) -> tuple[str, dict[str, int]]:
    """Send through the local SMTP server. Returns (SES message id, refused recipient -> code)."""
    refused: dict[str, int] = {}
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=10) as client:
        client.ehlo("mua.example.com")
        assert client.mail("ada@example.com")[0] == 250
        for address in rcpt_to:
            code, _ = client.rcpt(address)
            if code != 250:
                refused[address] = code
        code, reply = client.data(raw)
    assert code == 250, reply
    status, message_id = reply.decode().split()
    assert status == "Ok"
    return message_id, refused


def only_delivery(stack: Stack, message_id: str) -> AsyncDelivery:
    deliveries = stack.mail_drain(timeout=30)
    assert [d.source_id for d in deliveries] == [message_id]
    return deliveries[0]


def stored(stack: Stack, key: str) -> bytes:
    bucket = stack.template.buckets["MailBucket"].name
    body: bytes = stack.aws_client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def record(delivery: AsyncDelivery) -> dict[str, Any]:
    event: dict[str, Any] = delivery.event
    (only,) = event["Records"]
    return dict(only["ses"])


def test_smtp_message_is_stored_then_the_function_gets_a_faithful_receipt_event(mail_stack: Stack) -> None:
    raw = message("Quarterly numbers")
    rcpt = [BCC, "keep@other.fixture.test", "someone@archive.fixture.test"]
    message_id, refused = send_smtp(mail_stack, raw, rcpt)
    assert refused == {}
    assert len(message_id) == 40
    delivery = only_delivery(mail_stack, message_id)
    assert (delivery.function, delivery.attempts, delivery.ok) == ("RecorderFunction", 1, True)

    # S3 before Lambda: the function read the stored message, which is the sent one behind SES's headers.
    body = stored(mail_stack, f"inbound/{message_id}")
    assert body.endswith(raw)
    assert body.startswith(b"Return-Path: <ada@example.com>\r\nReceived: from mua.example.com ([127.0.0.1]) by ")
    assert delivery.result.payload == {"messageId": message_id, "storedBytes": len(body)}
    assert stored(mail_stack, f"archive/{message_id}") == body  # the second rule's S3 action

    event = SESEvent(delivery.event)
    assert event.record.event_source == "aws:ses"
    assert event.record.event_version == "1.0"
    mail, receipt = event.mail, event.receipt
    assert mail.message_id == message_id
    assert mail.source == "ada@example.com"
    assert mail.destination == rcpt  # every accepted envelope recipient
    assert receipt.recipients == [BCC]  # only those of the rule that invoked the function
    assert not mail.headers_truncated
    common = mail.common_headers
    assert common.return_path == "ada@example.com"
    assert common.get_from == ["Ada Lovelace <ada@example.com>"]
    assert common.to == ["Bob <bob@example.com>", '"Doe, Jane" <jane@example.org>']
    assert common.cc == ["carol@example.net"]
    assert common.subject == "Quarterly numbers"
    assert common.date.endswith("Aug 2019 21:29:57 +0000")
    assert b"\r\nDate: " + common.date.encode() + b"\r\n" in raw
    assert common.message_id.startswith("<")
    assert common.message_id.endswith("@example.com>")
    names = [header.name for header in mail.headers]
    assert names[:6] == [
        "Return-Path",
        "Received",
        "X-SES-Spam-Verdict",
        "X-SES-Virus-Verdict",
        "Received-SPF",
        "Authentication-Results",
    ]
    assert {"From", "To", "Cc", "Subject", "Message-ID", "Date"} <= set(names)
    for verdict in (receipt.spam_verdict, receipt.virus_verdict, receipt.spf_verdict, receipt.dkim_verdict):
        assert verdict.status == "PASS"
    assert receipt.dmarc_verdict.status == "PASS"
    assert receipt.dmarc_policy is None  # only reported when DMARC fails
    assert receipt.processing_time_millis >= 1
    assert receipt.action.get_type == "Lambda"
    assert receipt.action.invocation_type == "Event"
    assert receipt.action.function_arn.endswith(":function:crmsync-local-RecorderFunction")
    assert receipt.timestamp.endswith("Z")
    assert mail.timestamp == receipt.timestamp
    # The pydantic model of powertools' parser accepts it too.
    assert SesModel.model_validate(delivery.event).Records[0].ses.receipt.recipients == [BCC]


def test_recipients_no_enabled_rule_matches_are_refused(mail_stack: Stack) -> None:
    message_id, refused = send_smtp(
        mail_stack,
        message("Refusals"),
        [BCC, "nobody@elsewhere.test", "x@disabled.fixture.test", "drop@other.fixture.test", "u@sub.log.fixture.test"],
    )
    assert refused == {
        "nobody@elsewhere.test": 550,
        "x@disabled.fixture.test": 550,  # its rule is disabled
        "drop@other.fixture.test": 550,  # that rule names one address of the domain, not the domain
        "u@sub.log.fixture.test": 550,  # a domain recipient does not cover its subdomains
    }
    assert record(only_delivery(mail_stack, message_id))["mail"]["destination"] == [BCC]
    with smtplib.SMTP("127.0.0.1", mail_stack.smtp_port, timeout=10) as client:
        client.ehlo("mua.example.com")
        client.mail("ada@example.com")
        assert client.rcpt("nobody@elsewhere.test")[0] == 550
        with pytest.raises(smtplib.SMTPDataError) as refused_data:  # nothing accepted, no DATA
            client.data(b"Subject: x\r\n\r\nno recipient\r\n")
        assert refused_data.value.smtp_code == 503
    assert mail_stack.mail_drain(timeout=5) == []


def test_verdict_header_sets_this_message_verdicts_and_is_stripped(mail_stack: Stack) -> None:
    raw = message("Spoofed?", {"X-Devstack-Verdicts": "spf=FAIL, dmarc=fail, dmarc-policy=reject"})
    message_id, _ = send_smtp(mail_stack, raw, [BCC])
    ses = record(only_delivery(mail_stack, message_id))
    receipt = ses["receipt"]
    assert receipt["spfVerdict"] == {"status": "FAIL"}
    assert receipt["dmarcVerdict"] == {"status": "FAIL"}
    assert receipt["dmarcPolicy"] == "reject"
    assert receipt["dkimVerdict"] == {"status": "PASS"}
    headers = {h["name"]: h["value"] for h in ses["mail"]["headers"]}
    assert "X-Devstack-Verdicts" not in headers
    assert headers["Received-SPF"].startswith("fail ")
    assert "spf=fail" in headers["Authentication-Results"]
    body = stored(mail_stack, f"inbound/{message_id}")
    assert b"X-Devstack-Verdicts" not in body
    assert body.endswith(raw.replace(b"X-Devstack-Verdicts: spf=FAIL, dmarc=fail, dmarc-policy=reject\r\n", b""))

    # The next message is back to the stack's verdicts.
    message_id, _ = send_smtp(mail_stack, message("Next"), [BCC])
    assert record(only_delivery(mail_stack, message_id))["receipt"]["spfVerdict"] == {"status": "PASS"}


def test_a_malformed_verdict_header_is_refused(mail_stack: Stack) -> None:
    with smtplib.SMTP("127.0.0.1", mail_stack.smtp_port, timeout=10) as client:
        client.ehlo("mua.example.com")
        client.mail("ada@example.com")
        client.rcpt(BCC)
        code, reply = client.data(message("bad", {"X-Devstack-Verdicts": "spf=MAYBE"}))
    assert code == 554
    assert b"spf" in reply
    assert mail_stack.mail_drain(timeout=5) == []


def test_stack_verdicts_from_the_control_route_and_per_call(mail_stack: Stack) -> None:
    url = f"{mail_stack.api_url}/.devstack/ses/verdicts"
    answer = requests.post(url, json={"dkim": "GRAY", "spam": "FAIL"}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["dkim"] == "GRAY"
    assert requests.post(url, json={"colour": "PASS"}, timeout=10).status_code == 400
    try:
        received = mail_stack.deliver_mail(
            message("via the stack"), "ada@example.com", [BCC], verdicts={"spam": "PASS"}
        )
        receipt = record(only_delivery(mail_stack, received.message_id))["receipt"]
        assert receipt["dkimVerdict"] == {"status": "GRAY"}  # the stack's
        assert receipt["spamVerdict"] == {"status": "PASS"}  # the call's wins
        assert b"X-SES-Spam-Verdict: PASS" in stored(mail_stack, f"inbound/{received.message_id}")
    finally:
        assert requests.post(url, json={}, timeout=10).json()["dkim"] == "PASS"


def test_deliver_mail_refuses_like_smtp(mail_stack: Stack) -> None:
    received = mail_stack.deliver_mail(message("direct"), "ada@example.com", [BCC, "nobody@elsewhere.test"])
    assert received.recipients == (BCC,)
    assert received.rejected == ("nobody@elsewhere.test",)
    assert received.rules == ("fixture-local-logging",)
    bucket = mail_stack.template.buckets["MailBucket"].name
    assert received.objects == (f"{bucket}/inbound/{received.message_id}",)
    only_delivery(mail_stack, received.message_id)
    with pytest.raises(ValueError, match="no receipt rule"):
        mail_stack.deliver_mail(message("nobody"), "ada@example.com", ["nobody@elsewhere.test"])


def test_a_failing_function_is_retried_twice_then_dead_lettered(mail_stack: Stack) -> None:
    received = mail_stack.deliver_mail(message("fail-always"), "ada@example.com", [BCC])
    delivery = only_delivery(mail_stack, received.message_id)
    assert (delivery.attempts, delivery.ok, delivery.dead_lettered) == (3, False, True)
    assert delivery.result.error is not None
    assert delivery.result.error["errorType"] == "RuntimeError"
    attempts = [
        line
        for line in mail_stack.logs.lines("RecorderFunction")
        if line.startswith("EVENT ") and received.message_id in line
    ]
    assert len(attempts) == 3

    sqs = mail_stack.aws_client("sqs")
    url = mail_stack.template.queues["MailDeadLetterQueue"].url
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    records = [json.loads(m["Body"]) for m in messages]
    sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    )
    (dead,) = [r for r in records if r["requestPayload"] == delivery.event]
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    assert dead["requestContext"]["approximateInvokeCount"] == 3
    assert dead["requestContext"]["functionArn"].endswith(":function:crmsync-local-RecorderFunction:$LATEST")
    assert dead["responseContext"]["functionError"] == "Unhandled"
    assert dead["responsePayload"]["errorMessage"] == f"failing on {received.message_id}"


def test_bus_events_shows_what_a_function_put_on_the_bus(mail_stack: Stack) -> None:
    received = mail_stack.deliver_mail(message("publish this"), "ada@example.com", [BCC])
    assert only_delivery(mail_stack, received.message_id).ok
    events = [e for e in mail_stack.bus_events("MailRecorded") if e["detail"]["messageId"] == received.message_id]
    assert len(events) == 1  # the event of the other source does not match the tap
    (event,) = events
    assert event["source"] == "crmsync"
    assert event["detail-type"] == "MailRecorded"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["id"]
    assert event["time"]
    # Drained events are kept: asking again returns them again, and other types are filtered out.
    assert event in mail_stack.bus_events()
    assert mail_stack.bus_events("SomethingElse") == []
