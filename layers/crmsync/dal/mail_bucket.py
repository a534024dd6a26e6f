"""The mail bucket: raw messages SES received, and the bodies and attachments of logged mail.

Keys of logged content are deterministic (tenant, user, message key, content digest, part), so
a retried logging overwrites the same objects instead of leaving strays, and two different
messages under one message key (one Message-ID reused) never overwrite each other's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmsync.domain import Principal

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Where the SES receipt rule's S3 action writes each message (object key: prefix + SES message id).
INBOUND_PREFIX = "inbound/"
_SES_MESSAGE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,256}$")


def valid_ses_message_id(value: str) -> bool:
    return bool(_SES_MESSAGE_ID.match(value)) and value not in (".", "..")


def body_key(principal: Principal, message_key: str, content_digest: str, part: str) -> str:
    return f"bodies/{principal.tenant_id}/{principal.user_id}/{message_key}/{content_digest}/{part}"


def attachment_key(principal: Principal, message_key: str, content_digest: str, index: int) -> str:
    # The index, not the sender's filename: names are hostile input and may repeat.
    return f"attachments/{principal.tenant_id}/{principal.user_id}/{message_key}/{content_digest}/{index}"


@dataclass(frozen=True)
class RawMessage:
    size: int
    #: None when the message is larger than the caller accepts (it was not read).
    data: bytes | None


class MailBucket:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def raw_message(self, ses_message_id: str, max_bytes: int) -> RawMessage | None:
        """The message SES stored, read only if it is at most ``max_bytes``. None: no such object."""
        try:
            answer = self.client.get_object(Bucket=self._bucket, Key=INBOUND_PREFIX + ses_message_id)
        except self.client.exceptions.NoSuchKey:
            return None
        body = answer["Body"]
        size = int(answer.get("ContentLength", 0))
        if size > max_bytes:
            body.close()
            return RawMessage(size, None)
        data = body.read(max_bytes + 1)
        body.close()
        if len(data) > max_bytes:
            return RawMessage(len(data), None)
        return RawMessage(len(data), data)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        # Encryption at rest is the bucket's default (template.yaml).
        self.client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, keys: list[str]) -> None:
        """Delete these objects (missing ones are fine), 1,000 per request."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            self.client.delete_objects(
                Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )

    def read_text(self, key: str) -> str | None:
        try:
            answer = self.client.get_object(Bucket=self._bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        return answer["Body"].read().decode("utf-8", errors="replace")
