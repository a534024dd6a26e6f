"""Domain exceptions. Logic raises these; exactly one place maps them to HTTP (``api.problems``).

Each carries the fields needed to explain the failure, never a secret.
"""

from __future__ import annotations


class CrmSyncError(Exception):
    """Base of every domain error."""

    #: Short machine-readable slug, used as the last segment of the problem ``type``.
    slug = "error"
    #: The sign-in intent whose step refused (the OAuth callback returns to its page).
    intent: str | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extra(self) -> dict[str, object]:
        """Members added to the problem document (none by default)."""
        return {}


class NotFound(CrmSyncError):
    slug = "not-found"


class InvalidRequest(CrmSyncError):
    slug = "invalid-request"


class Unprocessable(CrmSyncError):
    """Well-formed, but it cannot be done with what it names (e.g. a read-only calendar)."""

    slug = "unprocessable"


class ScopeNotGranted(Unprocessable):
    """The user's consent at the provider left out the scope a feature needs (e.g. they
    unticked contacts): ``feature`` names it."""

    slug = "scope-not-granted"

    def __init__(self, detail: str, feature: str) -> None:
        super().__init__(detail)
        self.feature = feature

    def extra(self) -> dict[str, object]:
        return {"feature": self.feature}


class CredentialsRefused(Unprocessable):
    """The provider refused the account name and password the user typed (a wrong Apple ID,
    an Apple ID password where an app-specific password is needed, a typo)."""

    slug = "credentials-refused"


class Forbidden(CrmSyncError):
    """The user is who they say, but may not do this (e.g. a tenant setting, admins only)."""

    slug = "forbidden"


class Conflict(CrmSyncError):
    slug = "conflict"


class DuplicateContact(Conflict):
    """An email or phone already belongs to another of the user's contacts (each belongs to
    one): ``contact_id`` names it."""

    slug = "duplicate-contact"

    def __init__(self, detail: str, contact_id: str) -> None:
        super().__init__(detail)
        self.contact_id = contact_id

    def extra(self) -> dict[str, object]:
        return {"contact_id": self.contact_id}


class BookingConflict(Conflict):
    """The requested time overlaps busy time (F5). ``conflicts``: the busy intervals."""

    slug = "booking-conflict"

    def __init__(self, detail: str, conflicts: list[dict[str, str | None]]) -> None:
        super().__init__(detail)
        self.conflicts = conflicts

    def extra(self) -> dict[str, object]:
        return {"conflicts": self.conflicts}


class OAuthStateError(CrmSyncError):
    """The OAuth ``state`` could not be accepted. ``reason`` is one of the values below."""

    slug = "oauth-state"
    UNKNOWN = "state_unknown"  # never issued, already used, or purged
    EXPIRED = "state_expired"
    MISMATCH = "state_mismatch"  # issued to another browser session
    MISSING = "state_missing"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class AuthorizationDenied(CrmSyncError):
    """The user (or the provider: Google, Microsoft) ended the consent without a grant."""

    slug = "authorization-denied"

    def __init__(self, error: str) -> None:
        super().__init__(f"The provider answered {error!r}; nothing was connected.")
        self.error = error


class ProviderError(CrmSyncError):
    """A provider call failed. ``retryable`` says whether trying again may help."""

    slug = "provider-error"

    def __init__(self, detail: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(detail)
        self.retryable = retryable
        self.status = status


class ReauthorizationRequired(ProviderError):
    """The provider answered ``invalid_grant``: the grant is gone until the user reconnects."""

    slug = "reauthorization-required"

    def __init__(self, detail: str = "The account must be connected again.") -> None:
        super().__init__(detail, retryable=False)


class TokenExchangeFailed(ProviderError):
    slug = "token-exchange-failed"
