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
#: Attachments uploaded for mail sent from the CRM (a lifecycle rule removes them after a day).
UPLOADS_PREFIX = "uploads/"
_SES_MESSAGE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,256}$")


def valid_ses_message_id(value: str) -> bool:
    return bool(_SES_MESSAGE_ID.match(value)) and value not in (".", "..")


def upload_key(principal: Principal, upload_id: str) -> str:
    """Where a user's upload lands (the filename is metadata only, never part of a key)."""
    return f"{UPLOADS_PREFIX}{principal.tenant_id}/{principal.user_id}/{upload_id}"


def body_key(principal: Principal, message_key: str, content_digest: str, part: str) -> str:
    return f"bodies/{principal.tenant_id}/{principal.user_id}/{message_key}/{content_digest}/{part}"


def attachment_key(principal: Principal, message_key: str, content_digest: str, index: int) -> str:
    # The index, not the sender's filename: names are hostile input and may repeat.
    return f"attachments/{principal.tenant_id}/{principal.user_id}/{message_key}/{content_digest}/{index}"


@dataclass(frozen=True)
class StoredUpload:
    """An uploaded object as the bucket holds it: its real size and type, and the metadata
    the presigned PUT fixed."""

    size: int
    content_type: str
    metadata: dict[str, str]


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
            from botocore.config import Config

            # SigV4 everywhere: botocore would presign with SigV2 in some regions, which
            # signs neither Content-Length nor the region (upload limits rely on both).
            self._client = boto3.client("s3", config=Config(signature_version="s3v4"))
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

    def presign_put(
        self, key: str, *, size: int, content_type: str, metadata: dict[str, str], expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """A presigned PUT of exactly ``size`` bytes of ``content_type`` with ``metadata``
        (all signed: S3 refuses a request whose Content-Length, Content-Type or metadata
        differ), and the headers the client must send with it."""
        url = self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ContentLength": size,
                "ContentType": content_type,
                "Metadata": metadata,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        headers.update({f"x-amz-meta-{name}": value for name, value in metadata.items()})
        return url, headers

    def head(self, key: str) -> StoredUpload | None:
        """What is stored under ``key``; None when nothing is."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return StoredUpload(
            size=int(answer.get("ContentLength", 0)),
            content_type=str(answer.get("ContentType") or ""),
            metadata={str(k).lower(): str(v) for k, v in (answer.get("Metadata") or {}).items()},
        )

    def read_bytes(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes, or None when it is missing or larger than ``max_bytes``."""
        try:
            answer = self.client.get_object(Bucket=self._bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        body = answer["Body"]
        data = body.read(max_bytes + 1)
        body.close()
        return None if len(data) > max_bytes else data

    def read_text(self, key: str) -> str | None:
        try:
            answer = self.client.get_object(Bucket=self._bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        return answer["Body"].read().decode("utf-8", errors="replace")
