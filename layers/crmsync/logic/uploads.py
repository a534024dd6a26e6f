"""Attachments uploaded for mail sent from the CRM (F8): a presigned S3 PUT straight into the
mail bucket, so the file never passes through the API (whose bodies are small JSON).

The PUT is signed for exactly the declared size, type and filename (S3 refuses any other
Content-Length or Content-Type), lands under ``uploads/<tenant>/<user>/<upload id>`` and
expires after :data:`UPLOAD_TTL`. The filename is display only: it travels as percent-encoded
object metadata and never becomes part of a key. :class:`crmsync.logic.mail_send.MailSend`
reads the object back by the user's own prefix, so one user can never attach another's.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from crmsync.dal.mail_bucket import MailBucket, upload_key
from crmsync.domain import Principal
from crmsync.errors import Unprocessable
from crmsync.mail.sanitize import clean_line

#: Gmail's limit on a message's attachments.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
UPLOAD_TTL = timedelta(minutes=15)
MAX_FILENAME_CHARS = 255
#: ``type/subtype`` as RFC 6838 spells them (parameters are not taken).
CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$")
#: What :func:`new_upload_id` mints (and all an upload id may be).
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
FILENAME_META = "filename"
SIZE_META = "size"


@dataclass(frozen=True)
class UploadTicket:
    upload_id: str
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


def new_upload_id() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 random bits


class Uploads:
    def __init__(self, bucket: MailBucket, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._bucket = bucket
        self._clock = clock

    def start(self, principal: Principal, filename: str, content_type: str, size: int) -> UploadTicket:
        """A presigned PUT for one file. Unprocessable (422) for an empty or over-25-MB size,
        a content type that is not ``type/subtype``, or a filename that is empty once
        cleaned."""
        if size < 1:
            raise Unprocessable("An upload needs at least one byte.")
        if size > MAX_UPLOAD_BYTES:
            raise Unprocessable(
                f"The file is {size} bytes; Gmail takes at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB of attachments."
            )
        if not CONTENT_TYPE.fullmatch(content_type):
            raise Unprocessable("content_type must be a media type such as application/pdf.")
        name = clean_line(filename)[:MAX_FILENAME_CHARS]
        if not name:
            raise Unprocessable("filename is empty.")
        upload_id = new_upload_id()
        expires_at = self._clock() + UPLOAD_TTL
        url, headers = self._bucket.presign_put(
            upload_key(principal, upload_id),
            size=size,
            content_type=content_type.lower(),
            metadata={FILENAME_META: quote(name, safe=""), SIZE_META: str(size)},
            expires_in=int(UPLOAD_TTL.total_seconds()),
        )
        return UploadTicket(upload_id=upload_id, url=url, method="PUT", headers=headers, expires_at=expires_at)
