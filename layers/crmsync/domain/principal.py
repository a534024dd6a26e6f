"""Who a request acts for: the one domain object the webhooks need, apart from the rest so
that they need not load the rest (see the package)."""

from __future__ import annotations

from dataclasses import dataclass

from crmsync.domain.ids import check_id


@dataclass(frozen=True)
class Principal:
    """The CRM user a request acts for, from the authorizer's JWT claims."""

    tenant_id: str
    user_id: str

    def __post_init__(self) -> None:
        check_id("tenant", self.tenant_id)
        check_id("user", self.user_id)
