"""Acting as a Gmail user and their correspondents in the emulator (its control API, over
HTTP): mail received and sent, labels changed, messages deleted, history expired."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import requests


def message(
    sender: str,
    to: Sequence[str],
    subject: str = "Hello",
    text: str = "Hi there",
    *,
    cc: Sequence[str] = (),
    message_id: str | None = None,
    in_reply_to: str | None = None,
    date: datetime | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    if cc:
        mail["Cc"] = ", ".join(cc)
    mail["Subject"] = subject
    mail["Date"] = format_datetime(date or datetime.now(UTC))
    mail["Message-ID"] = message_id or make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">"))
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(text)
    if attachment is not None:
        mail.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
    return mail


class GmailUser:
    def __init__(self, base_url: str, email: str) -> None:
        self.base = base_url.rstrip("/")
        self.email = email

    def _post(self, path: str, **body: Any) -> dict[str, Any]:
        answer = requests.post(f"{self.base}/_emulator/gmail/{path}", json={"email": self.email, **body}, timeout=10)
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    def receive(self, mail: EmailMessage, labels: Sequence[str] | None = None, thread_of: str | None = None) -> str:
        """The message arrives in the mailbox (``labels``: INBOX by default); its Gmail id."""
        body: dict[str, Any] = {"raw": base64.urlsafe_b64encode(bytes(mail)).decode().rstrip("=")}
        if labels is not None:
            body["labelIds"] = list(labels)
        if thread_of is not None:
            body["threadOf"] = thread_of
        return str(self._post("messages", **body)["id"])

    def label(self, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        self._post(f"messages/{message_id}/labels", add=list(add), remove=list(remove))

    def delete(self, message_id: str) -> None:
        self._post(f"messages/{message_id}/delete")

    def expire_history(self) -> None:
        self._post("expire-history")

    def lapse_watch(self) -> None:
        """Gmail stops publishing this mailbox's changes, as when a watch lapsed unrenewed."""
        assert self._post("lapse-watch")["lapsed"] is True

    def mailbox(self) -> dict[str, Any]:
        answer = requests.get(f"{self.base}/_emulator/gmail/mailbox", params={"email": self.email}, timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def draft(self, to: str, subject: str, thread_of: str | None = None) -> str:
        """The user saves a draft (as drafts.create); its message's Gmail id."""
        body: dict[str, Any] = {"to": to, "subject": subject, "text": "not sent yet"}
        if thread_of is not None:
            body["threadOf"] = thread_of
        return str(self._post("drafts", **body)["id"])

    def quota(self, units_per_second: int | None) -> None:
        """Gmail's per-user rate limit for this mailbox: on at ``units_per_second``, or off."""
        answer = requests.post(
            f"{self.base}/_emulator/gmail/quota",
            json={
                "email": self.email,
                "enabled": units_per_second is not None,
                "units_per_second": units_per_second or 250,
            },
            timeout=10,
        )
        assert answer.status_code < 300, answer.text
