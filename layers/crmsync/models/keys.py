"""Key builders. Separators cannot appear in ids (ids are validated at the edge)."""

from __future__ import annotations

from crmsync.domain.ids import check_id

__all__ = ["check_id", "user_pk"]


def user_pk(tenant_id: str, user_id: str) -> str:
    return f"T#{check_id('tenant', tenant_id)}#U#{check_id('user', user_id)}"
