"""F9 inbound_mail on DynamoDB Local and moto S3: logged exactly once, refused with nothing written.

Each test delivers messages as SES does: the raw message under ``inbound/<SES message id>``
in the mail bucket, then a receipt event naming the envelope recipients and the verdicts.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.dal.bcc import BccAddressStore, SenderAddressStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.contacts import ContactStore
from crmsync.dal.mail_bucket import MailBucket
from crmsync.dal.mail_log import MailLogStore
from crmsync.dal.never_log import NeverLogStore
from crmsync.dal.paging import encode_cursor
from crmsync.domain import Principal
from crmsync.domain.mail_records import LoggedMessage
from crmsync.errors import InvalidRequest
from crmsync.logic.bcc_settings import BccSettings
from crmsync.logic.contacts import Contacts
from crmsync.mail.inbound import MAX_CONTACTS, InboundMail, Outcome
from crmsync.mail.parse import parse_message
from crmsync.messaging.events import DomainEvent, EmailLogged
from tests.integration.test_bcc_address import connect_account
from tests.support.events import RecordingPublisher

pytestmark = pytest.mark.integration

DOMAIN = "log.test.example"
ALICE = Principal("tenant-a", "alice")  # mails from ada@example.com
BRUNO = Principal("tenant-b", "bruno")  # mails from bruno@corp.example
PASS = dict.fromkeys(("spam", "virus", "spf", "dkim", "dmarc"), "PASS")
#: Hand-written messages in the shapes real mailers send, all from or to ada@example.com.
SHAPES = Path(__file__).resolve().parent.parent / "fixtures" / "mail" / "messages"


def shape(name: str) -> bytes:
    return (SHAPES / name).read_bytes()


class Counts:
    def __init__(self) -> None:
        self.seen: Tally[str] = Tally()

    def count(self, name: str) -> None:
        self.seen[name] += 1


@dataclass
class World:
    settings: Settings
    s3: Any
    dynamodb: Any
    publisher: RecordingPublisher
    counts: Counts
    bcc: BccSettings
    contacts: Contacts

    def inbound(self, *, log_store: MailLogStore | None = None, publisher: Any = None) -> InboundMail:
        return InboundMail(
            addresses=BccAddressStore(),
            senders=SenderAddressStore(),
            connections=ConnectionStore(),
            contacts=ContactStore(),
            never_log=NeverLogStore(),
            log_store=log_store or MailLogStore(),
            bucket=MailBucket(self.settings.mail_bucket),
            parse=parse_message,
            publisher=publisher or self.publisher,
            logging_domain=DOMAIN,
            counter=self.counts,
        )

    def store(self, raw: bytes, ses_id: str | None = None) -> str:
        ses_id = ses_id or secrets.token_hex(20)
        self.s3.put_object(Bucket=self.settings.mail_bucket, Key=f"inbound/{ses_id}", Body=raw)
        return ses_id

    def deliver(
        self,
        raw: bytes,
        recipients: Sequence[str],
        verdicts: dict[str, str] | None = None,
        ses_id: str | None = None,
        inbound: InboundMail | None = None,
    ) -> list[Outcome]:
        ses_id = self.store(raw, ses_id)
        return (inbound or self.inbound()).handle(ses_event(ses_id, recipients, {**PASS, **(verdicts or {})}))

    def partition(self, principal: Principal) -> list[dict[str, Any]]:
        """Every item of the user's partition, as stored."""
        pk = f"T#{principal.tenant_id}#U#{principal.user_id}"
        answer = self.dynamodb.query(
            TableName=self.settings.connections_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )
        return sorted(answer["Items"], key=lambda i: i["sk"]["S"])

    def objects(self, prefix: str = "") -> list[str]:
        answer = self.s3.list_objects_v2(Bucket=self.settings.mail_bucket, Prefix=prefix)
        return sorted(o["Key"] for o in answer.get("Contents", []))

    def stored_content(self) -> list[str]:
        return [k for k in self.objects() if not k.startswith("inbound/")]

    def messages(self, principal: Principal) -> list[dict[str, Any]]:
        return [i for i in self.partition(principal) if i["sk"]["S"].startswith("MAIL#")]

    def emitted(self) -> list[EmailLogged]:
        return [e for e in self.publisher.events if isinstance(e, EmailLogged)]


def ses_event(ses_id: str, recipients: Sequence[str], verdicts: dict[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "Records": [
            {
                "eventSource": "aws:ses",
                "eventVersion": "1.0",
                "ses": {
                    "mail": {
                        "timestamp": now,
                        "source": "bounce@example.com",
                        "messageId": ses_id,
                        "destination": list(recipients),
                        "headersTruncated": False,
                        "headers": [],
                        "commonHeaders": {"returnPath": "bounce@example.com"},
                    },
                    "receipt": {
                        "timestamp": now,
                        "processingTimeMillis": 120,
                        "recipients": list(recipients),
                        **{f"{name}Verdict": {"status": status} for name, status in verdicts.items()},
                        "action": {
                            "type": "Lambda",
                            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:inbound",
                            "invocationType": "Event",
                        },
                    },
                },
            }
        ]
    }


def mail(
    sender: str = "Ada <ada@example.com>",
    to: Sequence[str] = ("Bob Client <bob@client.example>",),
    cc: Sequence[str] = (),
    subject: str = "Proposal",
    body: str = "Hello Bob,\n\nhere is the proposal.\n",
    message_id: str | None = "",
    date: datetime = datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
    html: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    if message_id is not None:
        message["Message-ID"] = message_id or make_msgid(domain="mail.example.com")
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        name, data = attachment
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return message.as_bytes()


@pytest.fixture
def world(service_env: dict[str, str], stack: Any) -> World:
    bucket = f"mail-{uuid.uuid4().hex[:12]}"
    s3 = stack.aws_client("s3")
    s3.create_bucket(Bucket=bucket)
    settings = Settings.from_env({**service_env, "LOGGING_DOMAIN": DOMAIN, "MAIL_BUCKET": bucket})
    world = World(
        settings=settings,
        s3=s3,
        dynamodb=stack.aws_client("dynamodb"),
        publisher=RecordingPublisher(),
        counts=Counts(),
        bcc=Graph(settings).bcc_settings,
        contacts=Graph(settings).contacts,
    )
    connect_account(ALICE, "ada@example.com")
    connect_account(BRUNO, "bruno@corp.example")
    return world


def contact_ids_by_email(world: World, principal: Principal) -> dict[str, str]:
    return {c.email: c.contact_id for c in world.contacts.page(principal, None, 100).items}


def conversation(world: World, principal: Principal, email: str) -> list[LoggedMessage]:
    return world.contacts.conversation(principal, contact_ids_by_email(world, principal)[email], None, 50).items


# ---------------------------------------------------------------------------------------- logged


def test_a_bcc_message_is_logged_to_each_recipient_contact(world: World) -> None:
    address = world.bcc.address(ALICE).address
    raw = mail(
        to=["Bob Client <bob@client.example>"],
        cc=["carol@other.example", f"ALICE'S LOG <{address}>"],
        html="<p>Hello <b>Bob</b><script>alert(1)</script></p>",
        attachment=("proposal.pdf", b"%PDF-1.4 tiny"),
    )
    [outcome] = world.deliver(raw, [address])
    assert outcome.status == "logged", outcome
    assert (outcome.tenant_id, outcome.user_id) == (ALICE.tenant_id, ALICE.user_id)

    contacts = {c.email: c for c in world.contacts.page(ALICE, None, 100).items}
    assert set(contacts) == {"bob@client.example", "carol@other.example"}  # never the user nor the BCC address
    # Two-way email sync (F8) does not exist yet: no contact claims to be synced.
    assert [(c.source, c.email_sync) for c in contacts.values()] == [("bcc", False), ("bcc", False)]
    assert contacts["bob@client.example"].name == "Bob Client"
    assert set(outcome.contact_ids) == {c.contact_id for c in contacts.values()}

    [entry] = conversation(world, ALICE, "bob@client.example")
    assert entry.direction == "outbound"
    assert entry.subject == "Proposal"
    assert entry.sender is not None
    assert entry.sender.email == "ada@example.com"
    assert [a.email for a in entry.to] == ["bob@client.example"]
    assert [a.email for a in entry.cc] == ["carol@other.example"]  # the BCC address is not shown
    assert entry.preview.startswith("Hello Bob, here is the proposal.")
    assert [(a.filename, a.size, bool(a.s3_key)) for a in entry.attachments] == [("proposal.pdf", 13, True)]
    assert conversation(world, ALICE, "carol@other.example")[0].message_key == entry.message_key

    content = world.contacts.message(ALICE, contacts["carol@other.example"].contact_id, entry.message_key)
    assert "here is the proposal." in content.text
    assert "<b>Bob</b>" in content.html
    assert "script" not in content.html

    [event] = world.emitted()
    assert (event.tenant_id, event.user_id, event.message_key) == (ALICE.tenant_id, ALICE.user_id, entry.message_key)
    assert set(event.contact_ids) == set(outcome.contact_ids)
    assert event.direction == "outbound"
    assert world.counts.seen == {"MailLogged": 1}
    assert world.messages(ALICE)[0]["event_published"] == {"BOOL": True}
    assert world.messages(BRUNO) == []


def test_the_same_delivery_twice_and_a_resend_log_once(world: World) -> None:
    address = world.bcc.address(ALICE).address
    raw = mail()
    ses_id = world.store(raw)
    event = ses_event(ses_id, [address], PASS)
    inbound = world.inbound()
    assert [o.status for o in inbound.handle(event)] == ["logged"]
    after_first = (world.partition(ALICE), world.stored_content())

    assert [o.status for o in inbound.handle(event)] == ["duplicate"]  # SES delivered twice
    assert [o.status for o in world.deliver(raw, [address])] == ["duplicate"]  # resent: a new SES message
    assert (world.partition(ALICE), world.stored_content()) == after_first
    assert len(world.messages(ALICE)) == 1
    assert len(world.emitted()) == 1
    assert world.counts.seen == {"MailLogged": 1, "MailDuplicate": 2}


def test_without_a_message_id_the_content_identifies_the_message(world: World) -> None:
    address = world.bcc.address(ALICE).address
    raw = mail(message_id=None)
    assert [o.status for o in world.deliver(raw, [address])] == ["logged"]
    assert [o.status for o in world.deliver(raw, [address])] == ["duplicate"]
    assert [o.status for o in world.deliver(mail(message_id=None, body="Another text"), [address])] == ["logged"]
    assert len(world.messages(ALICE)) == 2
    assert {m["message_key"]["S"][0] for m in world.messages(ALICE)} == {"h"}


class CrashBeforeCommit(MailLogStore):
    """The function dies after the bodies and contacts are written, before the transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes = 1

    def commit(self, principal: Principal, message: LoggedMessage) -> bool:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("injected crash before the transaction")
        return super().commit(principal, message)


def test_a_crash_before_the_transaction_then_a_retry_logs_exactly_one_complete_message(world: World) -> None:
    address = world.bcc.address(ALICE).address
    ses_id = world.store(mail(cc=["carol@other.example"]))
    event = ses_event(ses_id, [address], PASS)
    inbound = world.inbound(log_store=CrashBeforeCommit())

    with pytest.raises(RuntimeError, match="injected crash"):
        inbound.handle(event)  # raised: Lambda's async retry runs the event again
    assert world.messages(ALICE) == []
    assert not [i for i in world.partition(ALICE) if i["sk"]["S"].startswith("CONV#")]
    assert world.emitted() == []

    [outcome] = inbound.handle(event)
    assert outcome.status == "logged"
    assert len(world.messages(ALICE)) == 1
    assert len(contact_ids_by_email(world, ALICE)) == 2  # the contacts made before the crash were reused
    for email in ("bob@client.example", "carol@other.example"):
        assert [m.message_key for m in conversation(world, ALICE, email)] == [outcome.message_key]
    assert len(world.emitted()) == 1

    assert [o.status for o in inbound.handle(event)] == ["duplicate"]
    assert len(world.emitted()) == 1


class RacingLog(MailLogStore):
    """Never sees an earlier commit before writing, as when two deliveries race: the
    transaction's condition alone must keep the message single."""

    def get(self, principal: Principal, message_key: str) -> LoggedMessage | None:
        return None


def test_racing_deliveries_are_kept_single_by_the_transaction_condition(world: World) -> None:
    address = world.bcc.address(ALICE).address
    raw = mail(cc=["carol@other.example"])
    inbound = world.inbound(log_store=RacingLog())
    assert [o.status for o in world.deliver(raw, [address], inbound=inbound)] == ["logged"]
    after_first = world.partition(ALICE)
    assert [o.status for o in world.deliver(raw, [address], inbound=inbound)] == ["duplicate"]
    assert world.partition(ALICE) == after_first
    assert len(world.emitted()) == 1


class CrashingPublisher(RecordingPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.crashes = 1

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("injected crash before publishing")
        super().publish(events)


def test_a_crash_between_commit_and_publish_publishes_on_the_retry(world: World) -> None:
    address = world.bcc.address(ALICE).address
    ses_id = world.store(mail())
    event = ses_event(ses_id, [address], PASS)
    publisher = CrashingPublisher()
    inbound = world.inbound(publisher=publisher)
    with pytest.raises(RuntimeError, match="injected crash"):
        inbound.handle(event)
    assert len(world.messages(ALICE)) == 1  # committed
    assert [o.status for o in inbound.handle(event)] == ["duplicate"]
    assert len(publisher.events) == 1
    assert [o.status for o in inbound.handle(event)] == ["duplicate"]
    assert len(publisher.events) == 1  # published once, not per delivery


class StaleFirstRead(MailLogStore):
    """Its first read finds nothing, as when another delivery commits between the read and
    this delivery's transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.stale = 1

    def get(self, principal: Principal, message_key: str) -> LoggedMessage | None:
        if self.stale:
            self.stale -= 1
            return None
        return super().get(principal, message_key)


def texts(world: World, email: str) -> dict[str, str]:
    """Each logged message of a contact's conversation: subject → text, read back from storage."""
    contact = contact_ids_by_email(world, ALICE)[email]
    return {
        m.subject: world.contacts.message(ALICE, contact, m.message_key).text for m in conversation(world, ALICE, email)
    }


def test_two_different_messages_with_one_message_id_are_both_logged(world: World) -> None:
    """Broken mailers (mail merges) reuse a Message-ID: the second message was dropped as a
    duplicate. The key is the Message-ID plus the logged content; a redelivery stays one."""
    address = world.bcc.address(ALICE).address
    first = mail(subject="Offer", body="The offer.\n", message_id="<reused@mail.example.com>")
    second = mail(subject="Invoice", body="The invoice.\n", message_id="<reused@mail.example.com>")
    assert [o.status for o in world.deliver(first, [address])] == ["logged"]
    assert [o.status for o in world.deliver(second, [address])] == ["logged"]
    after = (world.partition(ALICE), world.stored_content())
    for raw in (first, second, second, first):  # SES or the user delivering again
        assert [o.status for o in world.deliver(raw, [address])] == ["duplicate"]
    assert (world.partition(ALICE), world.stored_content()) == after
    assert texts(world, "bob@client.example") == {"Offer": "The offer.", "Invoice": "The invoice."}
    assert len(world.emitted()) == 2


def test_another_message_racing_for_a_message_id_logs_without_overwriting_the_first(world: World) -> None:
    address = world.bcc.address(ALICE).address
    first = mail(subject="Offer", body="The offer.\n", message_id="<reused@mail.example.com>")
    second = mail(subject="Invoice", body="The invoice.\n", message_id="<reused@mail.example.com>")
    world.deliver(first, [address])
    # The second's first read misses the first (committed meanwhile): its transaction fails on
    # the Message-ID's key, and the content tells it apart.
    [outcome] = world.deliver(second, [address], inbound=world.inbound(log_store=StaleFirstRead()))
    assert outcome.status == "logged"
    assert texts(world, "bob@client.example") == {"Offer": "The offer.", "Invoice": "The invoice."}
    [outcome] = world.deliver(first, [address], inbound=world.inbound(log_store=StaleFirstRead()))
    assert outcome.status == "duplicate"
    assert len(world.messages(ALICE)) == 2


def test_a_message_logged_before_content_digests_still_dedupes(world: World) -> None:
    address = world.bcc.address(ALICE).address
    raw = mail(message_id="<before@mail.example.com>")
    [outcome] = world.deliver(raw, [address])
    [item] = world.messages(ALICE)
    world.dynamodb.update_item(  # as stored before the digest was recorded
        TableName=world.settings.connections_table,
        Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="REMOVE content_digest",
    )
    assert [o.status for o in world.deliver(raw, [address])] == ["duplicate"]
    # Its content is unknown, so another message with its Message-ID cannot be told apart.
    other = mail(subject="Other", body="Other text\n", message_id="<before@mail.example.com>")
    assert [o.status for o in world.deliver(other, [address])] == ["duplicate"]
    assert [m["message_key"]["S"] for m in world.messages(ALICE)] == [outcome.message_key]


# ---------------------------------------------------------------------------------------- refused


def assert_nothing_written(world: World, before: tuple[Any, ...], principal: Principal = ALICE) -> None:
    assert (world.partition(principal), world.stored_content()) == before
    assert world.emitted() == []


def test_a_spoofed_sender_is_refused_and_nothing_is_written(world: World) -> None:
    address = world.bcc.address(ALICE).address
    before = (world.partition(ALICE), world.stored_content())
    [outcome] = world.deliver(mail(sender="Ada <ada@example.com.evil.example>"), [address])
    assert (outcome.status, outcome.reason) == ("refused", "sender_not_own")
    [outcome] = world.deliver(mail(sender="Mallory <mallory@evil.example>"), [address])
    assert outcome.reason == "sender_not_own"
    assert_nothing_written(world, before)
    assert world.counts.seen == {"MailRefused": 2}


@pytest.mark.parametrize(
    ("verdicts", "reason"),
    [
        ({"spam": "FAIL"}, "spam"),
        ({"spam": "GRAY"}, "spam"),
        ({"virus": "FAIL"}, "virus"),
        ({"virus": "PROCESSING_FAILED"}, "virus"),
        ({"spf": "FAIL"}, "spf_fail"),
        ({"dkim": "FAIL"}, "dkim_fail"),
        ({"dmarc": "FAIL"}, "dmarc_fail"),
        ({"spf": "GRAY", "dkim": "GRAY", "dmarc": "GRAY"}, "unauthenticated"),
    ],
)
def test_a_failed_verdict_is_refused_and_nothing_is_written(
    world: World, verdicts: dict[str, str], reason: str
) -> None:
    address = world.bcc.address(ALICE).address
    before = (world.partition(ALICE), world.stored_content())
    [outcome] = world.deliver(mail(), [address], verdicts)
    assert (outcome.status, outcome.reason) == ("refused", reason)
    assert_nothing_written(world, before)


def test_an_unknown_or_rotated_address_logs_nothing(world: World) -> None:
    old = world.bcc.address(ALICE).address
    world.bcc.rotate(ALICE)
    before = (world.partition(ALICE), world.stored_content())
    [outcome] = world.deliver(mail(), [old])
    assert (outcome.status, outcome.reason, outcome.tenant_id) == ("refused", "unknown_recipient", None)
    [outcome] = world.deliver(mail(), [f"u{'a' * 26}@{DOMAIN}"])
    assert outcome.reason == "unknown_recipient"
    [outcome] = world.deliver(mail(), [f"postmaster@{DOMAIN}"])
    assert outcome.reason == "unknown_recipient"
    assert_nothing_written(world, before)


def test_a_malformed_event_or_a_missing_message_is_refused_without_a_crash(world: World) -> None:
    address = world.bcc.address(ALICE).address
    inbound = world.inbound()
    assert [(o.status, o.reason) for o in inbound.handle({"Records": [{"nope": 1}]})] == [
        ("refused", "malformed_event")
    ]
    [outcome] = inbound.handle(ses_event("never-stored", [address], PASS))
    assert outcome.reason == "raw_missing"
    [outcome] = world.deliver(b"\x00\xff garbage without headers", [address])
    assert outcome.status == "refused"
    assert world.messages(ALICE) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bounce-forwarded.eml", "bounce"),  # was logged from MAILER-DAEMON, a new contact
        ("auto-reply-forwarded.eml", "auto_reply"),  # was logged as Bob's mail to Ada
        ("bounce-report.eml", "bounce"),  # straight to the BCC address: was sender_not_own
        ("auto-reply.eml", "auto_reply"),
    ],
)
def test_bounces_and_auto_replies_are_refused_never_logged_from_a_person(world: World, name: str, reason: str) -> None:
    address = world.bcc.address(ALICE).address
    before = (world.partition(ALICE), world.stored_content())
    [outcome] = world.deliver(shape(name), [address])
    assert (outcome.status, outcome.reason) == ("refused", reason)
    assert_nothing_written(world, before)
    assert world.contacts.page(ALICE, None, 10).items == []
    assert world.counts.seen == {"MailRefused": 1}


def test_a_message_with_no_one_else_in_it_is_refused(world: World) -> None:
    address = world.bcc.address(ALICE).address
    [outcome] = world.deliver(mail(to=["ada@example.com"], cc=[address]), [address])
    assert outcome.reason == "no_contacts"
    assert world.messages(ALICE) == []


# ---------------------------------------------------------------------------------------- never log


def forward_of(original_sender: str, bcc: str) -> bytes:
    """Ada forwards (attached) a message she received from ``original_sender`` to her BCC address."""
    original = EmailMessage()
    original["From"] = original_sender
    original["To"] = "ada@example.com"
    original["Subject"] = "Dinner on Friday?"
    original["Date"] = format_datetime(datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    original["Message-ID"] = make_msgid(domain="home.example")
    original.set_content("Shall we book the usual place?\n")
    outer = EmailMessage()
    outer["From"] = "Ada <ada@example.com>"
    outer["To"] = bcc
    outer["Subject"] = "Fwd: Dinner on Friday?"
    outer["Message-ID"] = make_msgid(domain="example.com")
    outer.set_content("FYI\n")
    outer.add_attachment(original)
    return outer.as_bytes()


def test_mail_only_to_never_log_addresses_is_refused_and_nothing_is_written(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    address = world.bcc.address(ALICE).address
    never_log = NeverLogStore()
    never_log.add(ALICE, "partner@home.example")
    never_log.add(ALICE, "colleagues.example")  # a domain: its subdomains too
    before = (world.partition(ALICE), world.stored_content())
    raw = mail(to=["Partner <Partner@Home.example>"], cc=["Carl <carl@EU.Colleagues.example>", address])
    with caplog.at_level("INFO", logger="crmsync.mail.inbound"):
        [outcome] = world.deliver(raw, [address])
    assert (outcome.status, outcome.reason) == ("refused", "never_log")
    assert_nothing_written(world, before)
    assert world.contacts.page(ALICE, None, 10).items == []
    assert world.counts.seen == {"MailRefused": 1}
    # The outcome is logged with its reason only: no address (of the list or of the message).
    [record] = [r for r in caplog.records if r.getMessage() == "refused: never_log"]
    assert record.__dict__["reason"] == "never_log"
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records).lower()
    assert "home.example" not in logged
    assert "colleagues.example" not in logged
    # Bruno's list is his own: the same message sent by Ada into his CRM is not refused for it.
    assert NeverLogStore().get(BRUNO).entries == ()


def test_mail_to_never_log_and_other_addresses_is_logged_for_the_others_only(world: World) -> None:
    address = world.bcc.address(ALICE).address
    NeverLogStore().add(ALICE, "home.example")
    raw = mail(to=["Bob Client <bob@client.example>", "partner@home.example"], cc=["kid@school.home.example"])
    [outcome] = world.deliver(raw, [address])
    assert outcome.status == "logged", outcome
    contacts = contact_ids_by_email(world, ALICE)
    assert set(contacts) == {"bob@client.example"}  # never-log addresses never become contacts
    assert outcome.contact_ids == (contacts["bob@client.example"],)
    [entry] = conversation(world, ALICE, "bob@client.example")
    assert entry.contact_ids == (contacts["bob@client.example"],)  # nor are they linked
    conversations = {i["sk"]["S"].split("#")[1] for i in world.partition(ALICE) if i["sk"]["S"].startswith("CONV#")}
    assert conversations == {contacts["bob@client.example"]}
    [event] = world.emitted()
    assert event.contact_ids == [contacts["bob@client.example"]]


def test_a_forwarded_original_from_a_never_log_sender_is_refused(world: World) -> None:
    address = world.bcc.address(ALICE).address
    NeverLogStore().add(ALICE, "Partner@Home.Example")
    before = (world.partition(ALICE), world.stored_content())
    [outcome] = world.deliver(forward_of("Partner <partner@home.example>", address), [address])
    assert (outcome.status, outcome.reason) == ("refused", "never_log")
    assert_nothing_written(world, before)

    # The same forward from someone not on the list is logged from them.
    [outcome] = world.deliver(forward_of("Dave <dave@customer.example>", address), [address])
    assert outcome.status == "logged", outcome
    assert set(contact_ids_by_email(world, ALICE)) == {"dave@customer.example"}


def test_another_users_never_log_list_never_applies(world: World) -> None:
    """Bruno put Bob's domain on his list; Ada's mail to Bob is still logged in her CRM."""
    alice = world.bcc.address(ALICE).address
    NeverLogStore().add(BRUNO, "client.example")
    NeverLogStore().add(Principal(ALICE.tenant_id, "someone-else"), "client.example")
    [outcome] = world.deliver(mail(), [alice])
    assert outcome.status == "logged", outcome
    assert set(contact_ids_by_email(world, ALICE)) == {"bob@client.example"}


# ---------------------------------------------------------------------------------------- isolation


def test_an_address_of_user_a_never_logs_into_user_b(world: World) -> None:
    alice = world.bcc.address(ALICE).address
    bruno = world.bcc.address(BRUNO).address
    bruno_before = world.partition(BRUNO)

    # Ada mails with Bruno's address: Ada is not one of Bruno's senders.
    [outcome] = world.deliver(mail(), [bruno])
    assert (outcome.status, outcome.reason, outcome.user_id) == ("refused", "sender_not_own", "bruno")

    # One message carrying both users' addresses, sent by Ada: only Ada's CRM logs it.
    outcomes = world.deliver(mail(cc=[alice, bruno]), [alice, bruno])
    assert sorted((o.user_id, o.status, o.reason) for o in outcomes) == [
        ("alice", "logged", ""),
        ("bruno", "refused", "sender_not_own"),
    ]
    assert world.partition(BRUNO) == bruno_before
    assert len(world.messages(ALICE)) == 1
    assert not [k for k in world.stored_content() if "/tenant-b/" in k]


def test_one_message_to_two_users_logs_for_each_sender_independently(world: World) -> None:
    """Ada and Bruno both own the sending address (each verified it): each logs into their own CRM."""
    alice = world.bcc.address(ALICE).address
    bruno = world.bcc.address(BRUNO).address
    code_hash = "0" * 64
    SenderAddressStore().put_pending(BRUNO, "ada@example.com", code_hash)
    SenderAddressStore().mark_verified(BRUNO, "ada@example.com", code_hash)
    outcomes = world.deliver(mail(), [alice, bruno])
    assert sorted((o.user_id, o.status) for o in outcomes) == [("alice", "logged"), ("bruno", "logged")]
    assert len(world.messages(ALICE)) == len(world.messages(BRUNO)) == 1
    assert set(contact_ids_by_email(world, ALICE)) == set(contact_ids_by_email(world, BRUNO)) == {"bob@client.example"}


# ---------------------------------------------------------------------------------------- shapes


def test_a_forwarded_message_is_logged_as_inbound_from_its_original_sender(world: World) -> None:
    address = world.bcc.address(ALICE).address
    original = EmailMessage()
    original["From"] = "Dave Customer <dave@customer.example>"
    original["To"] = "ada@example.com"
    original["Subject"] = "Question about the offer"
    original["Date"] = format_datetime(datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    original["Message-ID"] = "<q-1@customer.example>"
    original.set_content("Is the price negotiable?\n")
    outer = EmailMessage()
    outer["From"] = "Ada <ada@example.com>"
    outer["To"] = address
    outer["Subject"] = "Fwd: Question about the offer"
    outer["Message-ID"] = make_msgid(domain="example.com")
    outer.set_content("FYI\n")
    outer.add_attachment(original)

    [outcome] = world.deliver(outer.as_bytes(), [address])
    assert outcome.status == "logged", outcome
    assert set(contact_ids_by_email(world, ALICE)) == {"dave@customer.example"}
    [entry] = conversation(world, ALICE, "dave@customer.example")
    assert entry.direction == "inbound"
    assert entry.sender is not None
    assert entry.sender.email == "dave@customer.example"
    assert entry.subject == "Question about the offer"
    assert entry.message_id == "q-1@customer.example"
    assert entry.date == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    [event] = world.emitted()
    assert event.direction == "inbound"


def test_a_message_whose_body_is_a_message_is_logged_as_a_forward(world: World) -> None:
    """Content-Type: message/rfc822 at the top: it was refused for want of contacts (Ada's own
    empty message to herself)."""
    [outcome] = world.deliver(shape("rfc822-body.eml"), [world.bcc.address(ALICE).address])
    assert outcome.status == "logged", outcome
    [entry] = conversation(world, ALICE, "dave@customer.example")
    assert (entry.direction, entry.subject, entry.message_id) == (
        "inbound",
        "Question about the offer",
        "q-2019@customer.example",
    )
    assert texts(world, "dave@customer.example") == {"Question about the offer": "Is the price negotiable?"}


def test_a_digest_is_logged_with_its_text_and_every_message_attached(world: World) -> None:
    """It was logged as its first message (from Carol), the rest dropped."""
    [outcome] = world.deliver(shape("digest.eml"), [world.bcc.address(ALICE).address])
    assert outcome.status == "logged", outcome
    assert set(contact_ids_by_email(world, ALICE)) == {"bob@client.example"}
    [entry] = conversation(world, ALICE, "bob@client.example")
    assert (entry.direction, entry.subject) == ("outbound", "The three messages about the offer")
    assert texts(world, "bob@client.example")[entry.subject] == "Bob, here are the three messages we talked about."
    assert [(a.filename, a.content_type, bool(a.s3_key)) for a in entry.attachments] == [
        (f"message-{n}.eml", "message/rfc822", True) for n in (1, 2, 3)
    ]


def test_mangled_headers_are_stored_and_returned_as_clean_text(world: World) -> None:
    """Undecodable header bytes were stored as literal "\\udcff" text, an undecodable encoded
    word as a contact named "=?utf-8?b?...?=", the subject and text with their NUL."""
    [outcome] = world.deliver(shape("header-bytes.eml"), [world.bcc.address(ALICE).address])
    assert outcome.status == "logged", outcome
    names = {c.email: c.name for c in world.contacts.page(ALICE, None, 10).items}
    assert names == {"bob@client.example": "Bad\ufffd\ufffdName", "carol@client.example": "Carol \ufffd\ufffd Client"}
    [entry] = conversation(world, ALICE, "bob@client.example")
    assert entry.subject == "Quote for caf\ufffd"
    assert [a.name for a in entry.to] == ["Bad\ufffd\ufffdName"]
    assert texts(world, "bob@client.example") == {
        "Quote for caf\ufffd": "Line one with a NUL and a bell\n\tindented line two \ufffd"
    }


def test_what_real_mailers_mangle_is_logged_in_full(world: World) -> None:
    """A NUL in a charset name was refused as unparseable; a cut-off boundary stored no text;
    a second To field lost its addresses."""
    address = world.bcc.address(ALICE).address
    outcomes = [world.deliver(shape(name), [address])[0] for name in ("charset-with-nul.eml", "boundary-cut-off.eml")]
    assert [o.status for o in outcomes] == ["logged", "logged"], outcomes
    assert texts(world, "bob@client.example") == {
        "Charset labels with a NUL": "Le café est prêt.",
        "A cut-off boundary": "The text that must not get lost.",
    }
    [outcome] = world.deliver(shape("two-to-fields.eml"), [address])
    assert outcome.status == "logged"
    everyone = {f"{name}@client.example" for name in ("bob", "carol", "dan", "eve")}
    assert set(contact_ids_by_email(world, ALICE)) == everyone
    assert len(outcome.contact_ids) == 4


def test_a_thousand_recipients_are_capped_and_the_message_still_logged(world: World) -> None:
    address = world.bcc.address(ALICE).address
    recipients = [f"person{n}@client{n % 7}.example" for n in range(1000)]
    [outcome] = world.deliver(mail(to=recipients), [address])
    assert outcome.status == "logged"
    assert len(outcome.contact_ids) == MAX_CONTACTS
    assert len(contact_ids_by_email(world, ALICE)) == MAX_CONTACTS
    [message] = world.messages(ALICE)
    notes = [n["S"] for n in message["notes"]["L"]]
    assert any(f"first {MAX_CONTACTS}" in n for n in notes), notes
    conv = [i for i in world.partition(ALICE) if i["sk"]["S"].startswith("CONV#")]
    assert len(conv) == MAX_CONTACTS


def test_contacts_are_matched_not_duplicated_across_messages(world: World) -> None:
    address = world.bcc.address(ALICE).address
    world.deliver(mail(subject="First", date=datetime(2025, 3, 1, tzinfo=UTC)), [address])
    world.deliver(mail(subject="Third", date=datetime(2025, 3, 9, tzinfo=UTC)), [address])
    world.deliver(mail(subject="Second", cc=["BOB@Client.Example"], date=datetime(2025, 3, 5, tzinfo=UTC)), [address])
    [bob] = contact_ids_by_email(world, ALICE).values()
    # Newest first, page by page.
    first = world.contacts.conversation(ALICE, bob, None, 2)
    assert [m.subject for m in first.items] == ["Third", "Second"]
    assert first.next_cursor is not None
    rest = world.contacts.conversation(ALICE, bob, first.next_cursor, 2)
    assert [m.subject for m in rest.items] == ["First"]
    assert rest.next_cursor is None


# ---------------------------------------------------------------------------------------- senders


def test_an_added_address_is_verified_by_mail_and_then_logs(world: World) -> None:
    address = world.bcc.address(ALICE).address
    verification = world.bcc.add_sender(ALICE, "ada.alias@other.example")
    alias = "Ada <ada.alias@other.example>"

    [outcome] = world.deliver(mail(sender=alias), [address])
    assert outcome.reason == "sender_not_own"  # pending: not yet one of hers

    [outcome] = world.deliver(mail(sender=alias, subject="Wrong CRM-AAAA-BBBB-CCCC"), [address])
    assert outcome.reason == "sender_not_own"

    [outcome] = world.deliver(mail(sender=alias, subject=f"Verify {verification.code}"), [address], {"dmarc": "GRAY"})
    assert outcome.reason == "verification_unauthenticated"  # DMARC must PASS: the domain vouches for the sender
    assert world.bcc.sender_addresses(ALICE)[-1].status.value == "pending"

    raw = mail(sender=alias, subject=f"Verify {verification.code.lower()}")
    [outcome] = world.deliver(raw, [address])
    assert outcome.status == "sender_verified"
    assert world.bcc.sender_addresses(ALICE)[-1].status.value == "verified"
    assert [o.status for o in world.deliver(raw, [address])] == ["sender_verified"]  # SES delivered it again
    assert world.messages(ALICE) == []  # the verification mail itself is never logged

    [outcome] = world.deliver(mail(sender=alias, subject="Real mail"), [address])
    assert outcome.status == "logged"

    world.bcc.remove_sender(ALICE, "ada.alias@other.example")
    [outcome] = world.deliver(mail(sender=alias, subject="After removal"), [address])
    assert outcome.reason == "sender_not_own"


def test_contacts_are_listed_page_by_page_and_cursors_are_checked(world: World) -> None:
    address = world.bcc.address(ALICE).address
    recipients = [f"r{n}@client.example" for n in range(5)]
    world.deliver(mail(to=recipients), [address])
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page = world.contacts.page(ALICE, cursor, 2)
        seen.extend(c.email for c in page.items)
        cursor = page.next_cursor
    assert cursor is None
    assert sorted(seen) == recipients
    assert world.contacts.page(BRUNO, None, 10).items == []

    [message] = world.messages(ALICE)
    foreign = encode_cursor(f"MAIL#{message['message_key']['S']}")  # a key outside the listing
    for bad in (foreign, "bm90IGpzb24", "%%%"):
        with pytest.raises(InvalidRequest):
            world.contacts.page(ALICE, bad, 2)


def test_contacts_stored_marked_for_email_sync_read_as_not_synced(world: World) -> None:
    """Logging mail never marks a contact for email sync (F8 is not built); contacts stored
    marked before (``email_sync: true`` in the table) read as not synced."""
    from crmsync.models.keys import user_pk
    from crmsync.models.mail import CONTACT_SK_PREFIX, ContactItem

    address = world.bcc.address(ALICE).address
    first, second = (mail(to=["bob@client.example"], cc=[address]) for _ in range(2))
    for raw in (first, second):  # created, then matched
        [outcome] = world.deliver(raw, [address])
        assert outcome.status == "logged", outcome
    [contact_id] = outcome.contact_ids
    stored = ContactItem.get(user_pk(ALICE.tenant_id, ALICE.user_id), CONTACT_SK_PREFIX + contact_id)
    assert stored.email_sync is False

    stored.update(actions=[ContactItem.email_sync.set(True)])  # as logged mail used to mark it

    assert [(c.contact_id, c.email_sync) for c in world.contacts.page(ALICE, None, 100).items] == [(contact_id, False)]
