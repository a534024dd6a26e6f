"""Neutral provider errors. Adapters translate what their client library raises into these;
logic and sync branch on them, never on a provider's status codes or reason strings."""

from __future__ import annotations

from crmsync.errors import ProviderError, ReauthorizationRequired

__all__ = [
    "AuthRevoked",
    "CursorInvalid",
    "PreconditionFailed",
    "ProviderDuplicate",
    "ProviderError",
    "ProviderNotFound",
    "RateLimited",
]

#: The grant or password no longer works (Google ``invalid_grant``, a revoked app password,
#: Graph ``invalid_grant``): nothing works until the user connects the account again.
AuthRevoked = ReauthorizationRequired


class CursorInvalid(ProviderError):
    """The provider no longer accepts our sync cursor (Calendar 410 ``fullSyncRequired``,
    People ``EXPIRED_SYNC_TOKEN``, Gmail history 404, CalDAV ``valid-sync-token``, Graph
    ``syncStateNotFound``): sync in full."""

    slug = "sync-token-invalid"

    def __init__(self, detail: str = "The provider asks for a full synchronization.") -> None:
        super().__init__(detail, retryable=False, status=410)


class ProviderDuplicate(ProviderError):
    """The id is taken (Calendar 409 ``duplicate``): e.g. a retried insert that had succeeded."""

    slug = "provider-duplicate"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=False, status=409)


class ProviderNotFound(ProviderError):
    """The resource is gone at the provider (404, or 410 for a deleted one)."""

    slug = "provider-not-found"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=False, status=404)


class PreconditionFailed(ProviderError):
    """The resource changed since we read it (etag mismatch: 412, People
    ``failedPrecondition``): read it again and decide."""

    slug = "provider-precondition-failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=False, status=412)


class RateLimited(ProviderError):
    """The provider asks us to slow down (429, Google's rate-limit 403s); ``retry_after`` in
    seconds when it said how long."""

    slug = "provider-rate-limited"

    def __init__(self, detail: str, *, retry_after: float | None = None, status: int | None = 429) -> None:
        super().__init__(detail, retryable=True, status=status)
        self.retry_after = retry_after
