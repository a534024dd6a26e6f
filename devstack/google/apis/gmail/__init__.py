"""Gmail v1 for the Google emulator.

Served methods: users.getProfile, users.watch, users.stop, labels.list/get,
messages.list/get/send (also the media upload path)/modify/delete/trash/untrash,
messages.attachments.get, drafts.create/get/list/update/delete/send, threads.get,
history.list, and the batch endpoint ``POST /batch/gmail/v1``. Gmail's per-user rate limit
(:mod:`.quota`) is enforced when switched on. Control routes live under
``/_emulator/gmail/`` and a page at ``/_emulator/ui/gmail?email=...``.

Modules: :mod:`.mime` (RFC 2822 ↔ Gmail payload), :mod:`.store` (mailboxes, history,
threading, drafts), :mod:`.quota` (per-user rate limit), :mod:`.query` (``q``),
:mod:`.paging` (page tokens), :mod:`.pubsub` (watch and Pub/Sub pushes), :mod:`.service` (API
methods), :mod:`.batch`, :mod:`.control`.
"""

from __future__ import annotations

from devstack.google.apis.gmail.batch import BATCH_PATH, BatchEndpoint
from devstack.google.apis.gmail.control import GmailControl
from devstack.google.apis.gmail.service import GmailApi
from devstack.google.apis.gmail.store import GmailStore
from devstack.google.server import Route

__all__ = ["GmailService", "GmailStore"]


class GmailService(GmailApi):
    """The Gmail API plus its batch endpoint, control routes and page."""

    def routes(self) -> list[Route]:
        """API methods, ``POST /batch/gmail/v1``, and the ``/_emulator/gmail`` control surface."""
        batch = BatchEndpoint(self)
        return [
            *super().routes(),
            Route(BATCH_PATH, ("POST",), batch.handle),
            *GmailControl(self).routes(),
        ]
