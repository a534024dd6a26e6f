"""F9: log a message that reached users' BCC addresses, exactly once, or refuse it.

For each user whose address received the message, in this order:

1. **decide** — the recipient's owner, SES's verdicts, the raw message (fetched and parsed
   once for all users), the sender (one of the user's own addresses), the contacts (none on
   the user's never-log list). Nothing is written before everything is decided, so a refusal
   writes nothing.
2. **bodies and attachments** to the mail bucket under deterministic keys (a retry overwrites
   the same objects);
3. **contacts** matched or created (idempotent);
4. **one transaction**: the ``MAIL#`` item, on the condition that it does not exist, and the
   message's entry in every contact's conversation. The condition failing means the message
   (same user, same Message-ID and logged content, or same raw content without a Message-ID)
   was logged before: "duplicate". Another message that reuses a logged Message-ID (broken
   mailers do) is told apart by the digest of its logged content and keyed by both.
5. **EmailLogged** published, then marked published on the ``MAIL#`` item.

A crash between any two steps leaves either nothing visible (steps 2–3 make no message appear)
or the whole message (step 4 is atomic); the retry completes the rest. Powertools idempotency
would add nothing: it keys on the event, while a resent message arrives as a new event; the
conditional put keys on the message itself and commits atomically with the conversation entries.

Refusals are outcomes, never exceptions: SES's asynchronous retries would only repeat them.
Transient errors (DynamoDB, S3) raise, so Lambda retries the event. Each user is handled on
their own and writes only into their own partition.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from crmsync.dal.bcc import BccAddressStore, SenderAddressStore
from crmsync.dal.connections import ConnectionStore
from crmsync.dal.mail_bucket import MailBucket
from crmsync.dal.mail_log import TRANSACTION_LIMIT, MailLogStore
from crmsync.domain import Counter, NoCounter, Principal
from crmsync.domain.mail_records import Direction, LoggedMessage, SenderStatus
from crmsync.domain.message import Address, MailLimits, ParsedMail, Refusal
from crmsync.domain.never_log import NeverLog
from crmsync.mail import logbook
from crmsync.mail.addresses import codes_in, is_local_part, local_part_on, on_domain
from crmsync.mail.logbook import content_digest, message_keys
from crmsync.mail.receipt import Receipt, read_receipts
from crmsync.messaging.events import EmailLogged, EventPublisher
from crmsync.security.secrets import same, sha256_hex

log = logging.getLogger(__name__)

#: Contacts linked per message: the MAIL# item and one entry per contact must fit one
#: transaction (DynamoDB allows 100 actions); the rest are left out with a note.
MAX_CONTACTS = TRANSACTION_LIMIT - 2
CONTACT_SOURCE = "bcc"

Status = Literal["logged", "duplicate", "refused", "sender_verified"]
METRICS: dict[Status, str] = {
    "logged": "MailLogged",
    "duplicate": "MailDuplicate",
    "refused": "MailRefused",
    "sender_verified": "MailSenderVerified",
}
Parser = Callable[[bytes, MailLimits], ParsedMail | Refusal]
_EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,255}$")


@dataclass(frozen=True)
class Outcome:
    """What happened to the message for one user (or for no user: an unknown recipient)."""

    status: Status
    reason: str = ""
    tenant_id: str | None = None
    user_id: str | None = None
    message_key: str | None = None
    contact_ids: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"refused: {self.reason}" if self.status == "refused" else self.status.replace("_", " ")

    def summary(self) -> dict[str, Any]:
        return {
            "outcome": self.label,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "message_key": self.message_key,
            "contacts": len(self.contact_ids),
        }


@dataclass(frozen=True)
class _Plan:
    """What will be logged for one user, decided before anything is written."""

    mail: ParsedMail
    direction: Direction
    contacts: tuple[Address, ...]
    notes: tuple[str, ...]
    #: The keys the message may be logged under, in order (see :func:`message_keys`).
    keys: tuple[str, ...]
    digest: str
    message_key: str = ""


def own_addresses(connections: ConnectionStore, senders: SenderAddressStore, principal: Principal) -> set[str]:
    """The addresses a logged message may come from: connected accounts' and verified added ones."""
    return {c.email.lower() for c in connections.list(principal)} | senders.verified(principal)


class ContactMatcher(Protocol):
    """Finds or makes the contact of each address: the contacts use case
    (:meth:`crmsync.logic.contacts.Contacts.match_or_create`), so a contact made by logging is
    made like any other (one per email, its domain event published)."""

    def match_or_create(self, principal: Principal, addresses: Iterable[Address], source: str) -> dict[str, str]: ...


class NeverLogSource(Protocol):
    """The users' never-log lists (:class:`crmsync.dal.never_log.NeverLogStore`)."""

    def get(self, principal: Principal) -> NeverLog: ...


class InboundMail:
    def __init__(
        self,
        *,
        addresses: BccAddressStore,
        senders: SenderAddressStore,
        connections: ConnectionStore,
        contacts: ContactMatcher,
        never_log: NeverLogSource,
        log_store: MailLogStore,
        bucket: MailBucket,
        parse: Parser,
        publisher: EventPublisher,
        logging_domain: str,
        limits: MailLimits | None = None,
        counter: Counter | None = None,
    ) -> None:
        self._addresses = addresses
        self._senders = senders
        self._connections = connections
        self._contacts = contacts
        self._never_log = never_log
        self._log = log_store
        self._bucket = bucket
        self._parse = parse
        self._publisher = publisher
        self._domain = logging_domain
        self._limits = limits or MailLimits()
        self._counter = counter or NoCounter()

    def handle(self, event: Mapping[str, Any]) -> list[Outcome]:
        """Every outcome of an SES receipt event, each logged once and counted."""
        receipts = read_receipts(event)
        if isinstance(receipts, Refusal):
            return [self._report(Outcome("refused", receipts.reason), None, receipts.detail)]
        return [outcome for receipt in receipts for outcome in self._receipt(receipt)]

    # ------------------------------------------------------------------ decide

    def _receipt(self, receipt: Receipt) -> list[Outcome]:
        outcomes: list[Outcome] = []
        owners: list[Principal] = []
        for recipient in receipt.recipients:
            local = local_part_on(recipient, self._domain)
            if local is None:
                continue  # not ours (the receipt rule may cover other recipients)
            owner = self._addresses.owner_of(local) if is_local_part(local) else None
            if owner is None:
                outcomes.append(self._report(Outcome("refused", "unknown_recipient"), receipt))
            elif owner not in owners:
                owners.append(owner)
        if not owners:
            if not outcomes:
                outcomes.append(self._report(Outcome("refused", "no_logging_recipient"), receipt))
            return outcomes

        refusal = receipt.verdicts.refusal()
        parsed = Refusal(refusal) if refusal is not None else self._fetch_and_parse(receipt)
        if isinstance(parsed, Refusal):
            return outcomes + [self._refuse(o, parsed.reason, receipt, parsed.detail) for o in owners]
        return outcomes + [self._for_user(owner, receipt, parsed) for owner in owners]

    def _fetch_and_parse(self, receipt: Receipt) -> ParsedMail | Refusal:
        raw = self._bucket.raw_message(receipt.ses_message_id, self._limits.max_message_bytes)
        if raw is None:
            return Refusal("raw_missing", "no stored message for this receipt")
        if raw.data is None:
            return Refusal("too_large", f"{raw.size} bytes")
        try:
            return self._parse(raw.data, self._limits)
        except Exception as exc:  # hostile input must never make SES retry a message forever
            log.exception("mail parser failed", extra={"ses_message_id": receipt.ses_message_id})
            return Refusal("unparseable", type(exc).__name__)

    def _for_user(self, principal: Principal, receipt: Receipt, parsed: ParsedMail) -> Outcome:
        own = own_addresses(self._connections, self._senders, principal)
        sender = parsed.sender.email.lower() if parsed.sender else ""
        codes = codes_in(parsed.subject)
        if sender and codes:
            verification = self._verification(principal, receipt, sender, codes)
            if verification is not None:
                return verification
        if not sender or sender not in own:
            return self._refuse(principal, "sender_not_own", receipt)
        plan = self._plan(parsed, own, self._never_log.get(principal))
        if isinstance(plan, str):
            return self._refuse(principal, plan, receipt)
        return self._log_once(principal, receipt, plan)

    def _log_once(self, principal: Principal, receipt: Receipt, plan: _Plan) -> Outcome:
        """Logged under the first of the plan's keys that is free, unless one holds this very
        message (same digest, or logged before digests were recorded): then a duplicate."""
        for index, key in enumerate(plan.keys):
            last = index == len(plan.keys) - 1
            existing = self._log.get(principal, key)
            if existing is None:
                logged = self._write(principal, receipt, replace(plan, message_key=key))
                if logged is not None:
                    return logged
                # A concurrent delivery committed first; if it was this message, it publishes.
                existing = self._log.get(principal, key)
                if existing is None or last or existing.content_digest in (None, plan.digest):
                    return self._report(self._outcome("duplicate", principal, key), receipt)
            elif last or existing.content_digest in (None, plan.digest):
                self._publish_if_missed(principal, existing)
                return self._report(self._outcome("duplicate", principal, key), receipt)
        raise AssertionError("unreachable: the last key always ends the loop")

    def _verification(self, principal: Principal, receipt: Receipt, sender: str, codes: list[str]) -> Outcome | None:
        """A mail from an added address with its code in the subject verifies the address (and
        is not logged). None: the mail is not a verification mail for this user."""
        challenge = self._senders.challenge(principal, sender)
        if challenge is None or not any(same(sha256_hex(c), challenge.code_hash) for c in codes):
            return None
        if challenge.status is SenderStatus.PENDING:
            if not receipt.verdicts.all_pass:
                return self._refuse(principal, "verification_unauthenticated", receipt)
            verified = self._senders.mark_verified(principal, sender, challenge.code_hash)
            # Not verified by us: removed meanwhile (refuse) or verified by a concurrent delivery.
            if not verified and self._senders.status(principal, sender) is not SenderStatus.VERIFIED:
                return self._refuse(principal, "sender_not_own", receipt)
        return self._report(self._outcome("sender_verified", principal), receipt)

    def _plan(self, parsed: ParsedMail, own: set[str], never_log: NeverLog) -> _Plan | str:
        notes = list(parsed.notes)
        mail = parsed
        direction: Direction = "outbound"
        candidates: list[Address] = [*parsed.to, *parsed.cc]
        if parsed.forwarded is not None:
            mail = parsed.forwarded
            notes.extend(mail.notes)
            origin = mail.sender.email.lower() if mail.sender else ""
            if origin and origin not in own:
                direction, candidates = "inbound", [mail.sender] if mail.sender else []
            else:  # the user forwarded their own message: log it as what it was
                candidates = [*mail.to, *mail.cc]
        contacts = self._contact_addresses(candidates, own)
        if not contacts:
            return "no_contacts"
        # Never-log addresses and domains get no contact and no conversation entry; a message
        # with nobody else (a forward from a never-log sender too) is not logged at all.
        contacts = [a for a in contacts if not never_log.blocks(a.email)]
        if not contacts:
            return "never_log"
        if len(contacts) > MAX_CONTACTS:
            notes.append(
                f"Linked to the first {MAX_CONTACTS} of {len(contacts)} recipients; the others were not linked."
            )
            contacts = contacts[:MAX_CONTACTS]
        digest = content_digest(mail)
        return _Plan(mail, direction, tuple(contacts), tuple(notes), message_keys(mail, digest), digest)

    def _contact_addresses(self, candidates: Iterable[Address], own: set[str]) -> list[Address]:
        seen: set[str] = set()
        out: list[Address] = []
        for address in candidates:
            email = address.email.lower()
            if email in seen or email in own or not _EMAIL.match(email) or on_domain(email, self._domain):
                continue
            seen.add(email)
            out.append(Address(email, address.name[:200]))
        return out

    # ------------------------------------------------------------------ write

    def _write(self, principal: Principal, receipt: Receipt, plan: _Plan) -> Outcome | None:
        """Logs the message under ``plan.message_key``; None when a message is already logged
        there (nothing changed)."""
        mail, key = plan.mail, plan.message_key
        parts = logbook.store_parts(self._bucket, principal, key, plan.digest, mail)
        ids = self._contacts.match_or_create(principal, plan.contacts, CONTACT_SOURCE)
        contact_ids = tuple(dict.fromkeys(ids[a.email] for a in plan.contacts))
        message = logbook.record(
            mail,
            key=key,
            digest=plan.digest,
            direction=plan.direction,
            parts=parts,
            contact_ids=contact_ids,
            notes=plan.notes,
            date=_aware(mail.date) or receipt.received_at,
            to=logbook.shown(mail.to, self._domain),
            cc=logbook.shown(mail.cc, self._domain),
        )
        if not self._log.commit(principal, message):
            return None
        self._publish(principal, message)
        return self._report(self._outcome("logged", principal, key, contact_ids), receipt)

    def _publish_if_missed(self, principal: Principal, message: LoggedMessage) -> None:
        """A retry after a crash between commit and publish: the event has not gone out yet."""
        if not message.event_published:
            self._publish(principal, message)

    def _publish(self, principal: Principal, message: LoggedMessage) -> None:
        # Message keys are per user (two users may log the same Message-ID): the user is in the id.
        user = sha256_hex(f"{principal.tenant_id}\n{principal.user_id}")[:16]
        event_id = f"email:{user}:{message.message_key}"
        self._publisher.publish(
            [
                EmailLogged(
                    event_id=event_id,
                    tenant_id=principal.tenant_id,
                    user_id=principal.user_id,
                    message_key=message.message_key,
                    contact_ids=list(message.contact_ids),
                    direction=message.direction,
                    subject=message.subject,
                )
            ]
        )
        self._log.mark_published(principal, message.message_key)

    # ------------------------------------------------------------------ report

    def _outcome(
        self, status: Status, principal: Principal, key: str | None = None, contact_ids: tuple[str, ...] = ()
    ) -> Outcome:
        return Outcome(status, "", principal.tenant_id, principal.user_id, key, contact_ids)

    def _refuse(self, principal: Principal, reason: str, receipt: Receipt, detail: str = "") -> Outcome:
        return self._report(Outcome("refused", reason, principal.tenant_id, principal.user_id), receipt, detail)

    def _report(self, outcome: Outcome, receipt: Receipt | None, detail: str = "") -> Outcome:
        """One log line and one metric per outcome. Never an address (BCC addresses are
        secrets) nor any content: ids, the reason and counts."""
        extra: dict[str, Any] = {
            "tenant_id": outcome.tenant_id,
            "user_id": outcome.user_id,
            "ses_message_id": receipt.ses_message_id if receipt else None,
        }
        if outcome.status == "refused":
            extra["reason"] = outcome.reason
            if detail:
                extra["detail"] = detail[:200]
        else:
            extra["message_key"] = outcome.message_key
            extra["contacts"] = len(outcome.contact_ids)
        log.log(logging.WARNING if outcome.status == "refused" else logging.INFO, outcome.label, extra=extra)
        self._counter.count(METRICS[outcome.status])
        return outcome


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
