"""The SES receipt event: who the message was delivered to, and what SES thought of it.

Read with powertools' ``SESEvent`` data class (lazy, cheap to import). The parser model
``SesModel`` does not fit: it has no ``dkimVerdict`` and requires ``To`` and ``Message-ID``
headers that a message sent only to Bcc recipients, or without a Message-ID, does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import SESEvent

from crmsync.dal.mail_bucket import valid_ses_message_id
from crmsync.domain.message import Refusal

PASS = "PASS"  # noqa: S105 - an SES verdict, not a password
FAIL = "FAIL"


@dataclass(frozen=True)
class Verdicts:
    """SES statuses: PASS, FAIL, GRAY, PROCESSING_FAILED ("MISSING" when SES sent none,
    e.g. because scanning is off in the receipt rule)."""

    spam: str
    virus: str
    spf: str
    dkim: str
    dmarc: str

    def refusal(self) -> str | None:
        """Why the message must not be logged, or None. The rule (docs/MAIL.md):

        - spam and virus must be PASS: anything else means unscanned or suspicious, and a
          logged message lands in a CRM other people read;
        - SPF, DKIM and DMARC must not be FAIL: a FAIL is positive evidence of forgery;
        - SPF or DKIM must PASS: some domain took responsibility for the message (GRAY alone
          proves nothing). DMARC may be GRAY (the From domain publishes no policy).
        """
        if self.virus != PASS:
            return "virus"
        if self.spam != PASS:
            return "spam"
        if self.spf == FAIL:
            return "spf_fail"
        if self.dkim == FAIL:
            return "dkim_fail"
        if self.dmarc == FAIL:
            return "dmarc_fail"
        if PASS not in (self.spf, self.dkim):
            return "unauthenticated"
        return None

    @property
    def all_pass(self) -> bool:
        """Every verdict PASS, DMARC included: the From domain itself vouched for the sender
        (what verifying a sender address by mail requires)."""
        return all(v == PASS for v in (self.spam, self.virus, self.spf, self.dkim, self.dmarc))


@dataclass(frozen=True)
class Receipt:
    #: SES's id of the message: the raw message is stored under it in the mail bucket.
    ses_message_id: str
    received_at: datetime
    #: The envelope recipients of this receipt rule (Bcc recipients appear only here).
    recipients: tuple[str, ...]
    verdicts: Verdicts


def read_receipts(event: Mapping[str, Any]) -> list[Receipt] | Refusal:
    """The receipts of an SES event, or a ``malformed_event`` refusal (never raises)."""
    try:
        receipts = [_receipt(record) for record in SESEvent(dict(event)).records]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Refusal("malformed_event", f"{type(exc).__name__} reading the SES event")
    if not receipts:
        return Refusal("malformed_event", "the event has no records")
    return receipts


def _receipt(record: Any) -> Receipt:
    if record.event_source != "aws:ses":
        raise ValueError("not an SES record")
    mail, receipt = record.ses.mail, record.ses.receipt
    message_id = mail.message_id
    if not isinstance(message_id, str) or not valid_ses_message_id(message_id):
        raise ValueError("SES message id")
    recipients = receipt.recipients
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise TypeError("recipients")
    received_at = datetime.fromisoformat(str(mail.timestamp))
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    raw = receipt.raw_event

    def status(name: str) -> str:
        verdict = raw.get(name)
        value = verdict.get("status") if isinstance(verdict, dict) else None
        return value if isinstance(value, str) else "MISSING"

    return Receipt(
        ses_message_id=message_id,
        received_at=received_at,
        recipients=tuple(recipients),
        verdicts=Verdicts(
            spam=status("spamVerdict"),
            virus=status("virusVerdict"),
            spf=status("spfVerdict"),
            dkim=status("dkimVerdict"),
            dmarc=status("dmarcVerdict"),
        ),
    )
