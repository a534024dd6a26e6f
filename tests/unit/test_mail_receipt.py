"""The SES receipt event reader, the verdict rule and the BCC address formats (no I/O)."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import pytest

from crmsync.domain.message import ParsedMail, Refusal
from crmsync.mail.addresses import (
    codes_in,
    is_local_part,
    local_part_on,
    new_local_part,
    new_verification_code,
    on_domain,
)
from crmsync.mail.logbook import content_digest, message_key, message_keys, normalise_message_id
from crmsync.mail.receipt import Verdicts, read_receipts

EVENT: dict[str, Any] = {
    "Records": [
        {
            "eventSource": "aws:ses",
            "eventVersion": "1.0",
            "ses": {
                "mail": {
                    "timestamp": "2025-03-04T10:11:12.345Z",
                    "source": "ada@example.com",
                    "messageId": "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
                    "destination": ["bob@example.net", "uaaaa@log.example.com"],
                    "headersTruncated": False,
                    "headers": [],
                    "commonHeaders": {"from": ["ada@example.com"], "subject": "Hi"},
                },
                "receipt": {
                    "timestamp": "2025-03-04T10:11:12.345Z",
                    "processingTimeMillis": 222,
                    "recipients": ["uaaaa@log.example.com"],
                    "spamVerdict": {"status": "PASS"},
                    "virusVerdict": {"status": "PASS"},
                    "spfVerdict": {"status": "PASS"},
                    "dkimVerdict": {"status": "PASS"},
                    "dmarcVerdict": {"status": "PASS"},
                    "action": {
                        "type": "Lambda",
                        "functionArn": "arn:aws:lambda:::function:x",
                        "invocationType": "Event",
                    },
                },
            },
        }
    ]
}


def test_a_receipt_is_read_with_its_recipients_verdicts_and_message_id() -> None:
    [receipt] = read_receipts(EVENT)  # type: ignore[misc]
    assert receipt.ses_message_id == "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"
    assert receipt.recipients == ("uaaaa@log.example.com",)
    assert receipt.verdicts == Verdicts("PASS", "PASS", "PASS", "PASS", "PASS")
    assert receipt.received_at.isoformat() == "2025-03-04T10:11:12.345000+00:00"


def _without(path: list[str]) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    node: Any = event["Records"][0]
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return event


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": []},
        {"Records": "nope"},
        {"Records": [{"eventSource": "aws:sqs"}]},
        _without(["ses", "mail", "messageId"]),
        _without(["ses", "receipt", "recipients"]),
        _without(["ses", "mail", "timestamp"]),
        {
            "Records": [
                {
                    **EVENT["Records"][0],
                    "ses": {
                        "mail": {**EVENT["Records"][0]["ses"]["mail"], "messageId": "../x"},
                        "receipt": EVENT["Records"][0]["ses"]["receipt"],
                    },
                }
            ]
        },
    ],
    ids=[
        "empty",
        "no-records",
        "records-not-a-list",
        "not-ses",
        "no-message-id",
        "no-recipients",
        "no-timestamp",
        "path-in-id",
    ],
)
def test_a_malformed_event_is_a_refusal_not_a_crash(event: dict[str, Any]) -> None:
    refusal = read_receipts(event)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "malformed_event"


def test_a_missing_verdict_counts_as_not_passed() -> None:
    [receipt] = read_receipts(_without(["ses", "receipt", "spamVerdict"]))  # type: ignore[misc]
    assert receipt.verdicts.spam == "MISSING"
    assert receipt.verdicts.refusal() == "spam"


@pytest.mark.parametrize(
    ("spam", "virus", "spf", "dkim", "dmarc", "expected"),
    [
        ("PASS", "PASS", "PASS", "PASS", "PASS", None),
        ("PASS", "PASS", "GRAY", "PASS", "GRAY", None),  # DKIM alone authenticates; no DMARC policy
        ("PASS", "PASS", "PASS", "GRAY", "PROCESSING_FAILED", None),
        ("FAIL", "PASS", "PASS", "PASS", "PASS", "spam"),
        ("GRAY", "PASS", "PASS", "PASS", "PASS", "spam"),
        ("PROCESSING_FAILED", "PASS", "PASS", "PASS", "PASS", "spam"),
        ("PASS", "FAIL", "PASS", "PASS", "PASS", "virus"),
        ("PASS", "GRAY", "PASS", "PASS", "PASS", "virus"),
        ("PASS", "PASS", "FAIL", "PASS", "PASS", "spf_fail"),
        ("PASS", "PASS", "PASS", "FAIL", "PASS", "dkim_fail"),
        ("PASS", "PASS", "PASS", "PASS", "FAIL", "dmarc_fail"),
        ("PASS", "PASS", "GRAY", "GRAY", "GRAY", "unauthenticated"),
        ("PASS", "PASS", "PROCESSING_FAILED", "GRAY", "PASS", "unauthenticated"),
    ],
)
def test_the_verdict_rule(spam: str, virus: str, spf: str, dkim: str, dmarc: str, expected: str | None) -> None:
    assert Verdicts(spam, virus, spf, dkim, dmarc).refusal() == expected


def test_sender_verification_needs_every_verdict_to_pass() -> None:
    assert Verdicts("PASS", "PASS", "PASS", "PASS", "PASS").all_pass
    assert not Verdicts("PASS", "PASS", "PASS", "PASS", "GRAY").all_pass


def test_bcc_local_parts_are_unguessable_and_well_formed() -> None:
    parts = {new_local_part() for _ in range(2000)}
    assert len(parts) == 2000
    for part in parts:
        assert re.fullmatch(r"u[a-z2-7]{26}", part)
        assert is_local_part(part)
    assert not is_local_part("u" + "a" * 25)
    assert not is_local_part("postmaster")


def test_addresses_on_the_logging_domain() -> None:
    assert local_part_on("UAbc@Log.Example.COM", "log.example.com") == "uabc"
    assert local_part_on("uabc@evil.com", "log.example.com") is None
    assert local_part_on("uabc@sub.log.example.com", "log.example.com") is None
    assert local_part_on("uabc@log.example.com", "") is None
    assert on_domain("x@sub.log.example.com", "log.example.com")
    assert on_domain("x@LOG.example.com.", "log.example.com")
    assert not on_domain("x@notlog.example.com", "log.example.com")


def test_verification_codes_are_found_in_subjects_in_any_case() -> None:
    code = new_verification_code()
    assert re.fullmatch(r"CRM-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}", code)
    assert codes_in(f"Re: verify {code.lower()} please") == [code]
    assert codes_in("no code here, CRM-1234-5678-9999") == []


def _parsed(message_id: str, content_hash: str = "c" * 64) -> ParsedMail:
    return ParsedMail(None, (), (), "", None, message_id, "", (), "", "", (), content_hash)


def test_message_keys_follow_the_message_id_or_else_the_content() -> None:
    assert normalise_message_id(" <Abc.1@Mail.Example.COM> ") == "Abc.1@mail.example.com"
    assert message_key(_parsed("<Abc.1@MAIL.example.com>")) == message_key(_parsed("Abc.1@mail.example.com"))
    assert message_key(_parsed("abc.1@mail.example.com")) != message_key(_parsed("ABC.1@mail.example.com"))
    assert message_key(_parsed("x@y")).startswith("m")
    without = message_key(_parsed("", "d" * 64))
    assert without.startswith("h")
    assert without != message_key(_parsed("", "e" * 64))


def test_a_reused_message_id_gets_a_second_key_from_the_logged_content() -> None:
    mail = _parsed("<Abc.1@Mail.example.com>")
    other = dataclasses.replace(mail, text="another message reusing the id")
    assert content_digest(mail) == content_digest(dataclasses.replace(mail, content_hash="f" * 64))  # raw differs
    assert content_digest(mail) != content_digest(other)
    first, second = message_keys(mail, content_digest(mail))
    assert first == message_key(mail)  # the key messages were always logged under
    assert message_keys(other, content_digest(other)) == (first, message_keys(other, content_digest(other))[1])
    assert second != message_keys(other, content_digest(other))[1]
    assert message_keys(_parsed(""), content_digest(_parsed(""))) == (message_key(_parsed("")),)
