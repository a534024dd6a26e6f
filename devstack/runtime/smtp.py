"""The SMTP front of the local SES (aiosmtpd on 127.0.0.1).

Like SES's inbound endpoint it refuses, at RCPT TO, every recipient no enabled receipt rule
matches (550) and hands each accepted message to `LocalSes.receive` at the end of DATA; the
reply carries the SES message id. TLS is not offered: a rule's `TlsPolicy: Require` is not
enforced locally.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller

from devstack.dynamodb_local import free_port
from devstack.runtime.ses import LocalSes

__all__ = ["MAX_MESSAGE_BYTES", "SmtpServer"]

#: SES refuses messages over 40 MB (headers included) for rules with an S3 action.
MAX_MESSAGE_BYTES = 40 * 1024 * 1024


class _SesHandler:
    """aiosmtpd handler hooks (called on the server's event loop thread)."""

    def __init__(self, ses: LocalSes, log: Callable[[str], None]) -> None:
        self.ses = ses
        self.log = log

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if not self.ses.accepts(address):
            self.log(f"SMTP RCPT TO <{address}> refused: no receipt rule matches it")
            return "550 5.1.1 Requested action not taken: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        receive = functools.partial(
            self.ses.receive,
            bytes(raw),
            envelope.mail_from or "",
            list(envelope.rcpt_tos),
            helo=session.host_name or "unknown",
            peer_ip=str(session.peer[0]) if session.peer else "127.0.0.1",
        )
        try:
            # S3 and the invoke queue are blocking calls: keep them off the SMTP event loop.
            received = await asyncio.get_running_loop().run_in_executor(None, receive)
        except ValueError as exc:
            return f"554 5.6.0 {exc}"
        except Exception as exc:  # noqa: BLE001 - a local failure is a temporary SMTP failure, as for SES
            self.log(f"SMTP message from <{envelope.mail_from}> failed: {exc!r}")
            return "451 4.3.0 Local SES failure; try again"
        return f"250 Ok {received.message_id}"


class SmtpServer:
    """An SMTP server on loopback that feeds a `LocalSes`."""

    def __init__(self, ses: LocalSes, log: Callable[[str], None], port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._controller = Controller(
            _SesHandler(ses, log),
            hostname=host,
            port=self.port,
            server_hostname=f"inbound-smtp.{ses.region}.amazonaws.com",
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
        )
        self._started = False

    def start(self) -> SmtpServer:
        """Start serving (returns once the server answers)."""
        self._controller.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._started:
            self._started = False
            self._controller.stop()
