"""Mail sent from the CRM through the user's Gmail (F8, issue 14 deliverable 7).

``POST /v1/contacts/{id}/messages`` lands here. The message is built with the standard
library (RFC 5322, ``policy.SMTP``), sent by the mailbox the user syncs (Email settings) with
Gmail's ``messages.send``, logged at once in the conversations of its recipients who are
contacts, and announced with ``EmailSent``.

**Never twice.** The request's ``Idempotency-Key`` fixes the message's Message-ID
(:func:`outgoing_message_id`: a hash of tenant, user and key on the logging domain), and
with it the logged message's key. So a retry:

1. finds the message logged already → answers it, sends nothing;
2. else looks for that Message-ID among the mail the mailbox sent, trash and spam included
   (``MailPort.find_sent``; Gmail: ``rfc822msgid:<id> in:sent`` with ``includeSpamTrash``):
   Gmail accepted it before the answer was lost or the function died → logs it, sends
   nothing;
3. only then sends.

(The API's idempotency record replays a stored answer before any of this runs; these steps
cover a retry after that record was lost with the crash, or expired.)

**Threading.** A reply (``in_reply_to``: an entry of this contact's conversation) goes into
the entry's Gmail thread: ``threadId``, ``In-Reply-To`` = its Message-ID, ``References`` = its
references and its Message-ID, and the Subject ``Re: `` + its subject (unless it already
starts with a reply prefix), as Gmail's threading rule asks.

**Once in the conversation.** The logged record carries the Gmail ids (``GmailRef``), and
:meth:`MailLogStore.commit` writes the ``GMAIL#`` index in the same transaction, so the history
sync that later sees the message in Sent recognises it and logs nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Protocol
from urllib.parse import unquote

from crmsync.dal.connections import ConnectionStore
from crmsync.dal.contacts import ContactStore
from crmsync.dal.mail_bucket import MailBucket, upload_key
from crmsync.dal.mail_log import MailLogStore
from crmsync.dal.mail_sync import MailSyncStore
from crmsync.domain import Connection, ConnectionStatus, Counter, NoCounter, Principal
from crmsync.domain.mail_records import GmailRef, LoggedMessage
from crmsync.domain.mailbox import normalise_email
from crmsync.domain.message import Address, Attachment, ParsedMail
from crmsync.errors import Conflict, NotFound, Unprocessable
from crmsync.logic.contacts import MessageContent
from crmsync.logic.uploads import CONTENT_TYPE, FILENAME_META, MAX_UPLOAD_BYTES, SIZE_META, UPLOAD_ID
from crmsync.mail import logbook
from crmsync.messaging.events import EmailSent, EventPublisher
from crmsync.ports.errors import ProviderNotFound
from crmsync.ports.mail import MailAccess, OutgoingMessage, state_in_mailbox
from crmsync.security.secrets import sha256_hex

log = logging.getLogger(__name__)

MAX_SUBJECT_CHARS = 500
#: The API's bodies are at most 128 KiB; these keep each part well inside.
MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 100_000
#: To + Cc + Bcc (Gmail takes more; a CRM message to more people is a mailing).
MAX_RECIPIENTS = 100
MAX_ATTACHMENTS = 20
#: Contacts whose conversation gets the message (one transaction holds the message, its
#: Gmail index entry and one entry per contact).
MAX_CONTACTS = 97
#: How far back a retry looks for its Message-ID among the sent mail (the API keeps a key's
#: answer 24 hours; a retry later than this week sends anew).
SENT_LOOKBACK = timedelta(days=7)
#: Prefixes mail clients put before a reply's subject (``Re:``, Outlook's German ``AW:``,
#: Nordic ``SV:``/``VS:``, ``Antw:``, ``Réf.:``...), optionally counted (``Re[2]:``).
REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|vs|antw|odp|ref|réf\.?|rif|r)\s*(?:\[\d+\])?\s*:\s*", re.IGNORECASE)
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

OFF = "Email sync is off: choose a Gmail account on the Email settings page to send mail from the CRM."
NOT_CONNECTED = "The Gmail account {email} must be connected again before mail can be sent from it."
NO_SEND_SCOPE = (
    "Google does not let crmsync send mail as {email} (the gmail.send permission was not granted); "
    "enable Email sync again and allow sending."
)


class SendUnavailable(Conflict):
    """Mail cannot be sent now: sync is off, or its account lost its grant (409)."""

    slug = "mail-send-unavailable"


@dataclass(frozen=True)
class OutgoingDraft:
    """What the user wrote. ``to`` None: the contact's first email."""

    subject: str | None = None
    text: str = ""
    html: str = ""
    to: Sequence[str] | None = None
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    attachments: Sequence[str] = ()
    in_reply_to: str | None = None


class ScopeCheck(Protocol):
    def __call__(self, connection: Connection) -> bool: ...


def outgoing_message_id(principal: Principal, idempotency_key: str, domain: str) -> str:
    """The Message-ID (without brackets) of the message sent for this request: the same for
    every retry with the key, another for every other user or key."""
    digest = sha256_hex(f"crmsync-send\n{principal.tenant_id}\n{principal.user_id}\n{idempotency_key}")
    return f"{digest[:40]}@{domain}"


def reply_subject(subject: str) -> str:
    """``Re: `` + the subject, unless it is already a reply's."""
    return subject if REPLY_PREFIX.match(subject) else f"Re: {subject}"


def _topic(subject: str) -> str:
    """The subject without its reply prefixes and outer space (what Gmail compares)."""
    while True:
        stripped = REPLY_PREFIX.sub("", subject, count=1)
        if stripped == subject:
            return " ".join(subject.split()).casefold()
        subject = stripped


class MailSend:
    def __init__(
        self,
        *,
        contacts: ContactStore,
        connections: ConnectionStore,
        sync: MailSyncStore,
        access: MailAccess,
        log_store: MailLogStore,
        bucket: MailBucket,
        publisher: EventPublisher,
        message_id_domain: str,
        scope_granted: ScopeCheck | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        counter: Counter | None = None,
    ) -> None:
        """``message_id_domain``: the right-hand side of the Message-IDs of sent mail (the
        deployment's logging domain). ``scope_granted``: whether a connection's grant lets
        crmsync send (Gmail's ``gmail.send``)."""
        self._contacts = contacts
        self._connections = connections
        self._sync = sync
        self._access = access
        self._log = log_store
        self._bucket = bucket
        self._publisher = publisher
        self._domain = message_id_domain
        self._scope_granted = scope_granted
        self._clock = clock
        self._counter = counter or NoCounter()

    def send(self, principal: Principal, contact_id: str, draft: OutgoingDraft, idempotency_key: str) -> MessageContent:
        """Send ``draft`` to the contact (and whoever else it names) and log it; the
        conversation entry as ``GET …/conversation/{key}`` shows it. NotFound (404): no such
        contact of this user; Unprocessable (422): the draft cannot be sent as written;
        SendUnavailable (409): no mailbox to send from; a provider error when Gmail failed."""
        contact = self._contacts.get(principal, contact_id)
        if contact is None:
            raise NotFound(f"No contact with id {contact_id!r}.")
        if draft.to is None:
            if not contact.fields.emails:
                raise Unprocessable("The contact has no email address; name the recipients in 'to'.")
            to = [contact.fields.emails[0]]
        else:
            to = _addresses("to", draft.to)
        cc, bcc = _addresses("cc", draft.cc), _addresses("bcc", draft.bcc)
        if not to:
            raise Unprocessable("A message needs at least one recipient in 'to'.")
        if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
            raise Unprocessable(f"A message may have at most {MAX_RECIPIENTS} recipients (to, cc and bcc).")
        parent = self._parent(principal, contact_id, draft.in_reply_to) if draft.in_reply_to else None
        subject = self._subject(draft.subject, parent)
        text, html = _bodies(draft.text, draft.html)

        state = self._sync.get(principal)
        if state.connection_id is None:
            raise SendUnavailable(OFF)
        stored = self._connections.get_stored(principal, state.connection_id)
        if stored is None:
            raise SendUnavailable(OFF)
        account = stored.connection
        if account.status is not ConnectionStatus.CONNECTED:
            raise SendUnavailable(NOT_CONNECTED.format(email=account.email))
        if self._scope_granted is not None and not self._scope_granted(account):
            raise SendUnavailable(NO_SEND_SCOPE.format(email=account.email))
        attachments = self._attachments(principal, draft.attachments)

        message_id = outgoing_message_id(principal, idempotency_key, self._domain)
        message_key = "m" + sha256_hex(logbook.normalise_message_id(message_id))
        logged = self._log.get(principal, message_key)
        if logged is not None:
            # Sent and logged by an earlier attempt with this key (which may have died before
            # its event went out).
            if not logged.event_published:
                self._publish(principal, logged)
            return self._content(logged)

        date = self._clock().astimezone(UTC).replace(microsecond=0)
        thread_id = None
        within = parent.gmail if parent is not None else None
        if within is not None and within.connection_id == account.connection_id and within.state != "deleted":
            thread_id = within.thread_id or None
        sender = Address(account.email.lower(), _one_line(account.display_name or "")[:200])
        mail = ParsedMail(
            sender=sender,
            to=tuple(Address(e, "") for e in to),
            cc=tuple(Address(e, "") for e in cc),
            subject=subject,
            date=date,
            message_id=message_id,
            in_reply_to=parent.message_id if parent is not None else "",
            references=(*parent.references, parent.message_id) if parent is not None else (),
            text=text,
            html=_sanitised(html),
            attachments=attachments,
            content_hash="",
        )
        raw = _rfc5322(mail, bcc=bcc, html=html, text_given=bool(draft.text.strip()))

        port = self._access.mail(stored)
        found = port.find_sent(message_id, since=date - SENT_LOOKBACK)
        recovered = found is not None
        if found is not None:
            ref = found
            # Gmail's copy is the one that went out: date the entry by it, and say where it
            # is now (the user may have binned it since).
            copies = port.get_messages([ref.message_id])
            internal = copies[0].internal_date if copies else date
            where = state_in_mailbox(copies[0] if copies else None)
            self._counter.count("MailSendRecovered")
        else:
            try:
                ref = port.send(OutgoingMessage(raw, thread_id))
            except ProviderNotFound:
                if thread_id is None:
                    raise
                # The thread was deleted since (Gmail refuses the threadId): the reply, its
                # headers intact, starts a thread of its own rather than failing.
                log.info("reply's gmail thread is gone; sending it in a new thread", extra={"message_key": message_key})
                ref = port.send(OutgoingMessage(raw, None))
            internal, where = date, "live"
        gmail = GmailRef(account.connection_id, ref.message_id, ref.thread_id, internal, where)
        record = self._record(principal, contact_id, mail, message_key, gmail, bcc)
        if not self._log.commit(principal, record):
            # A concurrent attempt with the same key logged it first.
            existing = self._log.get(principal, message_key)
            return self._content(existing or record)
        self._publish(principal, record)
        log.info(
            "mail sent from the crm",
            extra={"message_key": message_key, "connection_id": account.connection_id, "recovered": recovered},
        )
        return MessageContent(record, mail.text, mail.html)

    # ------------------------------------------------------------------ checks
    def _parent(self, principal: Principal, contact_id: str, key: str) -> LoggedMessage:
        parent = self._log.get(principal, key) if 0 < len(key) <= 80 and key.isascii() and key.isalnum() else None
        if parent is None or contact_id not in parent.contact_ids:
            raise Unprocessable("in_reply_to names no message of this contact's conversation.")
        if not parent.message_id:
            raise Unprocessable("That message has no Message-ID, so a reply to it cannot be threaded.")
        return parent

    @staticmethod
    def _subject(given: str | None, parent: LoggedMessage | None) -> str:
        if given is not None:
            if _LINE_CONTROLS.search(given):
                raise Unprocessable("subject must be one line, without control characters.")
            if len(given) > MAX_SUBJECT_CHARS:
                raise Unprocessable(f"subject is longer than {MAX_SUBJECT_CHARS} characters.")
        if parent is None:
            if given is None or not given.strip():
                raise Unprocessable("A new message needs a subject.")
            return " ".join(given.split())
        # Gmail threads a reply only when the subjects match (a reply prefix aside).
        subject = reply_subject(" ".join(parent.subject.split()))
        if given is not None and given.strip() and _topic(given) != _topic(subject):
            raise Unprocessable(
                "A reply keeps its conversation's subject (Gmail threads it only then); leave subject out."
            )
        return subject

    def _attachments(self, principal: Principal, upload_ids: Sequence[str]) -> tuple[Attachment, ...]:
        wanted = list(dict.fromkeys(upload_ids))
        if len(wanted) > MAX_ATTACHMENTS:
            raise Unprocessable(f"A message may have at most {MAX_ATTACHMENTS} attachments.")
        out: list[Attachment] = []
        total = 0
        for index, upload_id in enumerate(wanted):
            if not UPLOAD_ID.fullmatch(upload_id):
                raise Unprocessable(f"attachments[{index}] is not an upload id.")
            key = upload_key(principal, upload_id)
            head = self._bucket.head(key)
            if head is None:
                raise Unprocessable(f"attachments[{index}]: no such upload (or its file was not uploaded yet).")
            declared = head.metadata.get(SIZE_META)
            if head.size > MAX_UPLOAD_BYTES or (declared is not None and declared != str(head.size)):
                raise Unprocessable(f"attachments[{index}]: the uploaded file is not the size it was announced with.")
            total += head.size
            if total > MAX_UPLOAD_BYTES:
                raise Unprocessable(f"The attachments exceed Gmail's {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
            content = self._bucket.read_bytes(key, MAX_UPLOAD_BYTES)
            if content is None:
                raise Unprocessable(f"attachments[{index}]: no such upload (or its file was not uploaded yet).")
            content_type = head.content_type.lower() if CONTENT_TYPE.fullmatch(head.content_type) else ""
            if not content_type or content_type.split("/")[0] in ("message", "multipart"):
                content_type = "application/octet-stream"
            filename = _one_line(unquote(head.metadata.get(FILENAME_META, "")))[:255] or f"attachment-{index + 1}"
            out.append(Attachment(filename, content_type, len(content), hashlib.sha256(content).hexdigest(), content))
        return tuple(out)

    # ------------------------------------------------------------------ logging
    def _record(
        self,
        principal: Principal,
        contact_id: str,
        mail: ParsedMail,
        message_key: str,
        gmail: GmailRef,
        bcc: list[str],
    ) -> LoggedMessage:
        from crmsync.mail.inbound import content_digest

        own = mail.sender.email if mail.sender else ""
        emails = [a.email for a in (*mail.to, *mail.cc)] + bcc
        owners = self._contacts.owners(principal, [e for e in dict.fromkeys(emails) if e != own])
        contact_ids = tuple(dict.fromkeys([contact_id, *(owners[e] for e in emails if e in owners)]))[:MAX_CONTACTS]
        digest = content_digest(mail)
        parts = logbook.store_parts(self._bucket, principal, message_key, digest, mail)
        return logbook.record(
            mail,
            key=message_key,
            digest=digest,
            direction="outbound",
            parts=parts,
            contact_ids=contact_ids,
            notes=(),
            date=mail.date or gmail.internal_date,
            to=mail.to,
            cc=mail.cc,
            source="crm",
            gmail=gmail,
        )

    def _publish(self, principal: Principal, message: LoggedMessage) -> None:
        user = sha256_hex(f"{principal.tenant_id}\n{principal.user_id}")[:16]
        self._publisher.publish(
            [
                EmailSent(
                    event_id=f"email:{user}:{message.message_key}",
                    tenant_id=principal.tenant_id,
                    user_id=principal.user_id,
                    message_key=message.message_key,
                    contact_ids=list(message.contact_ids),
                    subject=message.subject,
                    thread_id=message.gmail.thread_id if message.gmail else "",
                    gmail_id=message.gmail.message_id if message.gmail else "",
                )
            ]
        )
        self._log.mark_published(principal, message.message_key)
        self._counter.count("MailSent")

    def _content(self, message: LoggedMessage) -> MessageContent:
        text = self._bucket.read_text(message.text_key) if message.text_key else None
        html = self._bucket.read_text(message.html_key) if message.html_key else None
        return MessageContent(message, text or "", html or "")


def _addresses(field: str, values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for index, value in enumerate(values):
        email = normalise_email(value) if not _LINE_CONTROLS.search(value) else None
        if email is None:
            raise Unprocessable(f"{field}[{index}] is not an email address.")
        out.append(email)
    return list(dict.fromkeys(out))


def _bodies(text: str, html: str) -> tuple[str, str]:
    if len(text) > MAX_TEXT_CHARS:
        raise Unprocessable(f"text is longer than {MAX_TEXT_CHARS} characters.")
    if len(html) > MAX_HTML_CHARS:
        raise Unprocessable(f"html is longer than {MAX_HTML_CHARS} characters.")
    text = _BODY_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    html = _BODY_CONTROLS.sub("", html)
    if not text.strip() and not html.strip():
        raise Unprocessable("A message needs text or html.")
    if not text.strip():
        from crmsync.mail.sanitize import html_to_text

        text = html_to_text(html)
    return text, html


def _sanitised(html: str) -> str:
    if not html.strip():
        return ""
    from crmsync.mail.sanitize import sanitise_html

    return sanitise_html(html, MAX_HTML_CHARS * 2)[0]


def _one_line(value: str) -> str:
    return " ".join(_LINE_CONTROLS.sub(" ", value).split())


def _bracketed(message_id: str) -> str:
    return f"<{message_id}>"


def _rfc5322(mail: ParsedMail, *, bcc: list[str], html: str, text_given: bool) -> bytes:
    """The message as sent. Headers are set through ``policy.SMTP``, which refuses a value
    with a line break (no header can be injected); values were checked before anyway."""
    message = EmailMessage(policy=SMTP)
    assert mail.sender is not None
    message["From"] = HeaderAddress(display_name=mail.sender.name, addr_spec=mail.sender.email)
    message["To"] = ", ".join(a.email for a in mail.to)
    if mail.cc:
        message["Cc"] = ", ".join(a.email for a in mail.cc)
    if bcc:
        # Gmail takes Bcc from the message and removes it from what recipients get.
        message["Bcc"] = ", ".join(bcc)
    message["Subject"] = mail.subject
    assert mail.date is not None
    message["Date"] = format_datetime(mail.date)
    message["Message-ID"] = _bracketed(mail.message_id)
    if mail.in_reply_to:
        message["In-Reply-To"] = _bracketed(mail.in_reply_to)
        message["References"] = " ".join(_bracketed(r) for r in mail.references[-logbook.MAX_REFERENCES :])
    if text_given:
        message.set_content(mail.text)
        if html.strip():
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        assert attachment.content is not None
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message.as_bytes()
