"""BCC logging throughput (F9): messages/s through `inbound_mail` on the local stack — the local
SES stores each raw message in S3 (moto) and invokes the function asynchronously, which parses
it, stores bodies and attachments, matches or creates contacts and commits the log entry in
DynamoDB Local — against parse-only throughput (our parser, and mail-parser alone) over the
same public corpus in the same run.

Each corpus message is sent as the demo user would send it: From the user's connected
account, To a fresh contact, with its own Message-ID; everything else (bodies, attachments,
charsets) is the corpus sample's own.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import mail_parse, main_json

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 4


@dataclass(frozen=True)
class MailFigures:
    messages: int
    #: How many were logged; the others were refused (e.g. a sample with no readable body parts).
    logged: int
    inbound_per_second: float
    parse_per_second: float
    mailparser_per_second: float


def _as_sent_by(raw: bytes, sender: str, n: int) -> bytes:
    from devstack.runtime.ses import remove_header

    for name in ("From", "To", "Cc", "Bcc", "Message-ID", "Return-Path"):
        raw, _ = remove_header(raw, name)
    head = f"From: {sender}\r\nTo: contact-{n}@client.example\r\nMessage-ID: <bench-{n}@crmsync.test>\r\n"
    return head.encode() + raw


def measure(rounds: int = ROUNDS) -> MailFigures:
    from devstack.stack import Stack

    sys.path.insert(0, str(ROOT / "layers"))
    samples = mail_parse.corpus()
    with Stack(ROOT, prewarm=True) as stack:
        os.environ.update(stack.function_environment("ApiFunction"))
        from crmsync.app.wiring import Graph
        from crmsync.config import Settings
        from crmsync.domain import Principal
        from tests.support.google_consent import consent, query

        settings = Settings.from_env()
        principal = Principal("bench-tenant", "mail-user")
        sender = "mailer@example.com"
        integrations = Graph(settings).integrations
        start = integrations.start_connect("google", principal)
        params = query(consent(start.authorization_url, sender, typed=True))
        integrations.complete_connect(
            "google", state=params["state"], code=params["code"], error=None, binding=start.binding
        )
        token = stack.issue_token(principal.tenant_id, principal.user_id)
        answer = requests.get(
            f"{stack.api_url}/v1/settings/bcc-address", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        answer.raise_for_status()
        bcc = answer.json()["address"]

        # Warm the function's workers (imports, connections) with one message.
        stack.deliver_mail(_as_sent_by(samples[0], sender, -1), sender, [bcc])
        stack.mail_drain(120)

        messages = [_as_sent_by(raw, sender, n) for n, raw in enumerate(samples * rounds)]
        began = time.perf_counter()
        for raw in messages:
            stack.deliver_mail(raw, sender, [bcc])
        deliveries = stack.mail_drain(600)
        elapsed = time.perf_counter() - began
        outcomes = [o["outcome"] for d in deliveries if d.result.ok for o in d.result.payload["outcomes"]]
        logged = outcomes.count("logged")

    return MailFigures(
        messages=len(messages),
        logged=logged,
        inbound_per_second=len(messages) / elapsed,
        parse_per_second=mail_parse.parse_throughput(5.0),
        mailparser_per_second=mail_parse.mailparser_throughput(5.0),
    )


if __name__ == "__main__":
    main_json(measure)
