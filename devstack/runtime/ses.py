"""SES email receiving on loopback: the template's receipt rules applied to each message.

`LocalSes.receive` does for one message what SES does once SMTP accepted it: it names the
message (a random 40-character id like SES's), prepends the headers SES adds (Return-Path,
Received, the spam/virus verdicts when a rule scans, Received-SPF, Authentication-Results), and
for every enabled rule matching an envelope recipient runs the rule's actions in order: `S3`
stores the message at `<ObjectKeyPrefix><messageId>`, `Lambda` queues the receipt event on the
asynchronous invoker (SES invokes with InvocationType Event; locally every Lambda action is run
that way). Other action kinds are logged and skipped.

Verdicts are not computed: each defaults to PASS and can be set per stack (`verdicts`) and per
message, with the header `X-Devstack-Verdicts: spf=FAIL, dkim=GRAY, dmarc=FAIL,
dmarc-policy=reject` (read and removed before the message is stored or described) or the
`verdicts` argument of `receive`, which wins over the header.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from devstack.runtime.asyncinvoke import AsyncInvoker
from devstack.template import ReceiptRule

__all__ = [
    "DEFAULT_VERDICTS",
    "VERDICT_HEADER",
    "LocalSes",
    "ReceivedMail",
    "parse_verdict_header",
    "remove_header",
    "split_addresses",
    "verdict_settings",
]

VERDICT_HEADER = "X-Devstack-Verdicts"
VERDICTS = ("spam", "virus", "spf", "dkim", "dmarc")
STATUSES = frozenset({"PASS", "FAIL", "GRAY", "PROCESSING_FAILED"})
DMARC_POLICIES = frozenset({"none", "quarantine", "reject"})
#: `dmarc_policy` is what the sending domain publishes; SES reports it only when DMARC fails.
DEFAULT_VERDICTS: Mapping[str, str] = {**dict.fromkeys(VERDICTS, "PASS"), "dmarc_policy": "none"}
# RFC 8601 result words for the Received-SPF and Authentication-Results headers.
_RESULT_WORDS = {"PASS": "pass", "FAIL": "fail", "GRAY": "none", "PROCESSING_FAILED": "temperror"}
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# The headers SES summarises in `commonHeaders`: header name -> (key, is an address list).
_COMMON_HEADERS = {
    "from": ("from", True),
    "to": ("to", True),
    "cc": ("cc", True),
    "bcc": ("bcc", True),
    "sender": ("sender", True),
    "reply-to": ("replyTo", True),
    "date": ("date", False),
    "message-id": ("messageId", False),
    "subject": ("subject", False),
}


def verdict_settings(values: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: all PASS) with `values` applied. Raises ValueError on unknown names or statuses.

    Names: spam, virus, spf, dkim, dmarc (PASS, FAIL, GRAY, PROCESSING_FAILED) and dmarc_policy
    (none, quarantine, reject); case and `-`/`_` do not matter.
    """
    result = dict(DEFAULT_VERDICTS if base is None else base)
    for name, value in values.items():
        key = str(name).strip().lower().replace("-", "_")
        if key == "dmarc_policy":
            setting = str(value).strip().lower()
            allowed: frozenset[str] = DMARC_POLICIES
        elif key in VERDICTS:
            setting = str(value).strip().upper()
            allowed = STATUSES
        else:
            raise ValueError(f"unknown verdict {name!r}; known: {', '.join((*VERDICTS, 'dmarc_policy'))}")
        if setting not in allowed:
            raise ValueError(f"verdict {name}={value!r} is not one of {', '.join(sorted(allowed))}")
        result[key] = setting
    return result


def parse_verdict_header(value: str) -> dict[str, str]:
    """`spf=FAIL, dkim=PASS` (commas or semicolons) as a mapping. Raises ValueError when malformed."""
    parsed: dict[str, str] = {}
    for item in re.split(r"[,;]", value):
        if not item.strip():
            continue
        name, sep, setting = item.partition("=")
        if not sep:
            raise ValueError(f"{VERDICT_HEADER}: expected name=STATUS, got {item.strip()!r}")
        parsed[name.strip()] = setting.strip()
    return parsed


def _split_header_block(raw: bytes) -> tuple[bytes, bytes]:
    """(the header fields with their line endings, the rest from the blank line on)."""
    match = _HEADER_END.search(raw)
    if match is None:
        return raw, b""
    newline = 2 if raw[match.start() : match.start() + 2] == b"\r\n" else 1
    return raw[: match.start() + newline], raw[match.start() + newline :]


def _header_fields(block: bytes) -> list[bytes]:
    """Each header field of a header block, with its continuation lines and line endings."""
    fields: list[bytes] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _field(field: bytes) -> tuple[str, str]:
    """A header field as SES lists it: name and unfolded value."""
    name, _, value = field.partition(b":")
    text = value.decode("utf-8", "replace")
    return name.decode("utf-8", "replace").strip(), _FOLD.sub("", text).strip()


def remove_header(raw: bytes, name: str) -> tuple[bytes, list[str]]:
    """`raw` without any `name` header field (bytes otherwise untouched), and the removed values."""
    block, rest = _split_header_block(raw)
    kept: list[bytes] = []
    values: list[str] = []
    for field in _header_fields(block):
        field_name, value = _field(field)
        if field_name.lower() == name.lower():
            values.append(value)
        else:
            kept.append(field)
    return b"".join(kept) + rest, values


def split_addresses(value: str) -> list[str]:
    """An address-list header split at its top-level commas, each address as written."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = comment = 0
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"' and not comment:
            quoted = not quoted
        elif not quoted:
            if char == "(":
                comment += 1
            elif char == ")" and comment:
                comment -= 1
            elif char == "<" and not comment:
                angle += 1
            elif char == ">" and angle:
                angle -= 1
            elif char == "," and not (angle or comment):
                parts.append("".join(current))
                current = []
                continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def new_message_id() -> str:
    """A message id shaped like SES's inbound ones (40 lowercase base32hex characters)."""
    return base64.b32hexencode(secrets.token_bytes(25)).decode().lower()


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class ReceivedMail:
    """What `LocalSes.receive` did with one message."""

    message_id: str
    recipients: tuple[str, ...]
    #: Envelope recipients no enabled rule matches (SMTP answers 550 for these).
    rejected: tuple[str, ...]
    rules: tuple[str, ...]
    #: `bucket/key` of every stored copy.
    objects: tuple[str, ...]
    #: Request ids of the queued Lambda invocations.
    invocations: tuple[str, ...]


class LocalSes:
    """The receipt rules of one stack, run against messages handed over by SMTP or by tests."""

    def __init__(
        self,
        rules: Sequence[ReceiptRule],
        s3_client: Any,
        invoker: AsyncInvoker,
        log: Callable[[str], None],
        region: str,
        verdicts: Mapping[str, str] | None = None,
    ) -> None:
        self.rules = [rule for rule in rules if rule.enabled]
        self.s3 = s3_client
        self.invoker = invoker
        self.log = log
        self.region = region
        self.verdicts = verdict_settings(verdicts or {})
        for rule in self.rules:
            for action in rule.actions:
                if action.kind not in ("S3", "Lambda"):
                    log(f"receipt rule {rule.name}: the {action.kind} action is not run locally")
                elif action.kind == "Lambda" and action.invocation_type != "Event":
                    log(f"receipt rule {rule.name}: {action.invocation_type} Lambda action runs as Event locally")

    @property
    def domains(self) -> list[str]:
        """Every recipient the rules name (addresses, domains, `.subdomains`)."""
        return [recipient for rule in self.rules for recipient in rule.recipients]

    def accepts(self, address: str) -> bool:
        """True when an enabled rule matches the envelope recipient `address`."""
        return any(rule.matches(address) for rule in self.rules)

    def receive(
        self,
        raw: bytes,
        mail_from: str,
        rcpt_to: Sequence[str],
        verdicts: Mapping[str, str] | None = None,
        helo: str = "localhost",
        peer_ip: str = "127.0.0.1",
    ) -> ReceivedMail:
        """Apply the rules to one message. Raises ValueError when no recipient is accepted or the
        verdicts are malformed."""
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        accepted = [address for address in rcpt_to if self.accepts(address)]
        rejected = tuple(address for address in rcpt_to if not self.accepts(address))
        if not accepted:
            raise ValueError(f"no receipt rule matches any recipient of {list(rcpt_to)}")
        raw, header_values = remove_header(raw, VERDICT_HEADER)
        settings = dict(self.verdicts)
        for value in header_values:
            settings = verdict_settings(parse_verdict_header(value), settings)
        if verdicts:
            settings = verdict_settings(verdicts, settings)

        rules = [rule for rule in self.rules if any(rule.matches(address) for address in accepted)]
        scanned = any(rule.scan_enabled for rule in rules)
        message_id = new_message_id()
        stored = self._ses_headers(raw, mail_from, accepted, message_id, received_at, settings, scanned, helo, peer_ip)
        mail = self._mail(stored, mail_from, accepted, message_id, received_at)
        objects: list[str] = []
        invocations: list[str] = []
        for rule in rules:
            recipients = [address for address in accepted if rule.matches(address)]
            for action in rule.actions:
                if action.kind == "S3":
                    key = f"{action.object_key_prefix}{message_id}"
                    self.s3.put_object(Bucket=action.bucket, Key=key, Body=stored)
                    objects.append(f"{action.bucket}/{key}")
                elif action.kind == "Lambda":
                    receipt = self._receipt(recipients, settings, rule.scan_enabled, received_at, started)
                    receipt["action"] = {
                        "type": "Lambda",
                        "functionArn": action.function_arn,
                        "invocationType": "Event",
                    }
                    event = {
                        "Records": [
                            {"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {"mail": mail, "receipt": receipt}}
                        ]
                    }
                    invocations.append(self.invoker.submit(action.function, event, message_id))
        self.log(
            f"received {message_id} from {mail_from or '<>'} for {', '.join(accepted)}: "
            f"rules {', '.join(rule.name for rule in rules)}"
        )
        return ReceivedMail(
            message_id=message_id,
            recipients=tuple(accepted),
            rejected=rejected,
            rules=tuple(rule.name for rule in rules),
            objects=tuple(objects),
            invocations=tuple(invocations),
        )

    # -- what SES adds and reports

    def _ses_headers(
        self,
        raw: bytes,
        mail_from: str,
        recipients: Sequence[str],
        message_id: str,
        received_at: datetime,
        settings: Mapping[str, str],
        scanned: bool,
        helo: str,
        peer_ip: str,
    ) -> bytes:
        """`raw` with the header fields SES prepends, in its order and line ending."""
        newline = "\r\n" if raw.split(b"\n", 1)[0].endswith(b"\r") else "\n"
        spf = _RESULT_WORDS[settings["spf"]]
        lines = [
            f"Return-Path: <{mail_from}>",
            f"Received: from {helo} ([{peer_ip}]) by inbound-smtp.{self.region}.amazonaws.com with SMTP id "
            f"{message_id} for {recipients[0]}; {format_datetime(received_at)} (UTC)",
        ]
        if scanned:
            lines += [f"X-SES-Spam-Verdict: {settings['spam']}", f"X-SES-Virus-Verdict: {settings['virus']}"]
        lines += [
            f"Received-SPF: {spf} (devstack: verdict set locally) client-ip={peer_ip}; "
            f"envelope-from={mail_from}; helo={helo};",
            f"Authentication-Results: amazonses.com; spf={spf} smtp.mailfrom={mail_from}; "
            f"dkim={_RESULT_WORDS[settings['dkim']]}; dmarc={_RESULT_WORDS[settings['dmarc']]};",
        ]
        return "".join(line + newline for line in lines).encode() + raw

    def _mail(
        self, stored: bytes, mail_from: str, recipients: Sequence[str], message_id: str, received_at: datetime
    ) -> dict[str, Any]:
        headers = [_field(field) for field in _header_fields(_split_header_block(stored)[0])]
        common: dict[str, Any] = {"returnPath": mail_from}
        for name, value in headers:
            key, is_list = _COMMON_HEADERS.get(name.lower(), (None, False))
            if key is not None and key not in common:
                common[key] = split_addresses(value) if is_list else value
        return {
            "timestamp": _timestamp(received_at),
            "source": mail_from,
            "messageId": message_id,
            "destination": list(recipients),
            "headersTruncated": False,
            "headers": [{"name": name, "value": value} for name, value in headers],
            "commonHeaders": common,
        }

    def _receipt(
        self,
        recipients: Sequence[str],
        settings: Mapping[str, str],
        scan_enabled: bool,
        received_at: datetime,
        started: float,
    ) -> dict[str, Any]:
        receipt: dict[str, Any] = {
            "timestamp": _timestamp(received_at),
            "processingTimeMillis": max(1, round((time.perf_counter() - started) * 1000)),
            "recipients": list(recipients),
            "spamVerdict": {"status": settings["spam"] if scan_enabled else "DISABLED"},
            "virusVerdict": {"status": settings["virus"] if scan_enabled else "DISABLED"},
            "spfVerdict": {"status": settings["spf"]},
            "dkimVerdict": {"status": settings["dkim"]},
            "dmarcVerdict": {"status": settings["dmarc"]},
        }
        if settings["dmarc"] == "FAIL":
            receipt["dmarcPolicy"] = settings["dmarc_policy"]
        return receipt
