"""The local SES's message handling (no servers) and the sample SES events in events/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import SESEvent
from aws_lambda_powertools.utilities.parser.models import SesModel

from devstack.runtime.ses import (
    DEFAULT_VERDICTS,
    parse_verdict_header,
    remove_header,
    split_addresses,
    verdict_settings,
)
from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def test_address_lists_split_at_top_level_commas_only() -> None:
    value = '"Doe, Jane" <jane@example.org>, Bob <bob@example.com> (work, mostly),carol@example.net, ,'
    assert split_addresses(value) == [
        '"Doe, Jane" <jane@example.org>',
        "Bob <bob@example.com> (work, mostly)",
        "carol@example.net",
    ]
    assert split_addresses('"quoted \\" comma, inside" <q@example.com>') == [
        '"quoted \\" comma, inside" <q@example.com>'
    ]
    assert split_addresses("") == []


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_remove_header_drops_every_folded_occurrence_and_nothing_else(newline: bytes) -> None:
    lines = [
        b"From: ada@example.com",
        b"x-devstack-verdicts: spf=FAIL,",
        b"\tdkim=GRAY",
        b"Subject: hello",
        b"X-Devstack-Verdicts: dmarc=FAIL",
        b"",
        b"X-Devstack-Verdicts: in the body stays",
        b"",
    ]
    raw = newline.join(lines)
    stripped, values = remove_header(raw, "X-Devstack-Verdicts")
    assert values == ["spf=FAIL,\tdkim=GRAY", "dmarc=FAIL"]
    assert stripped == newline.join([lines[0], lines[3], *lines[5:]])
    assert remove_header(stripped, "X-Devstack-Verdicts") == (stripped, [])


def test_verdicts_are_checked_and_layered() -> None:
    assert verdict_settings({}) == dict(DEFAULT_VERDICTS)
    assert DEFAULT_VERDICTS["spf"] == "PASS"
    base = verdict_settings({"spf": "fail", "DMARC-Policy": "Reject"})
    assert (base["spf"], base["dmarc_policy"], base["dkim"]) == ("FAIL", "reject", "PASS")
    assert verdict_settings({"spf": "GRAY"}, base)["dmarc_policy"] == "reject"
    assert parse_verdict_header(" spf=FAIL; dkim = GRAY ,") == {"spf": "FAIL", "dkim": "GRAY"}
    with pytest.raises(ValueError, match="colour"):
        verdict_settings({"colour": "PASS"})
    with pytest.raises(ValueError, match="spf"):
        verdict_settings({"spf": "MAYBE"})
    with pytest.raises(ValueError, match="dmarc_policy"):
        verdict_settings({"dmarc_policy": "PASS"})
    with pytest.raises(ValueError, match="name=STATUS"):
        parse_verdict_header("spf")


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return event


def test_sample_ses_events_parse_and_use_the_templates_logging_domain() -> None:
    domain = load_template(ROOT / "template.yaml").data["Parameters"]["LoggingDomain"]["Default"]
    passing, failing = sample("ses_inbound_pass.json"), sample("ses_inbound_spf_fail.json")
    for event in (passing, failing):
        parsed = SESEvent(event)
        (recipient,) = parsed.receipt.recipients
        assert recipient.endswith(f"@{domain}")
        assert parsed.mail.destination == [recipient]
        assert parsed.receipt.action.invocation_type == "Event"
        assert SesModel.model_validate(event).Records[0].ses.mail.messageId == parsed.mail.message_id
    ok = SESEvent(passing).receipt
    assert {ok.spf_verdict.status, ok.dkim_verdict.status, ok.dmarc_verdict.status} == {"PASS"}
    assert ok.dmarc_policy is None
    bad = SESEvent(failing).receipt
    assert (bad.spf_verdict.status, bad.dmarc_verdict.status, bad.dmarc_policy) == ("FAIL", "FAIL", "reject")
    assert (bad.spam_verdict.status, bad.virus_verdict.status) == ("PASS", "PASS")
