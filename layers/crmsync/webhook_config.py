"""What the webhooks (google_webhook, graph_webhook) need of their configuration, read from
the environment without pydantic.

pydantic and the schemas of :mod:`crmsync.config` cost the webhooks about a fifth of their
cold start, for six strings. :class:`WebhookSettings` reads those six as
:class:`crmsync.config.CoreSettings` reads them (same variables, defaults and limits);
tests/unit/test_problems_and_config.py checks the two agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Self

#: CoreSettings' default for PUBSUB_CERTS_URI.
PUBSUB_CERTS_URI = "https://www.googleapis.com/oauth2/v1/certs"
#: CoreSettings' limits of the Gmail push settings.
_LIMITS = {"gmail_push_audience": 2048, "gmail_push_service_account": 320}


@dataclass(frozen=True)
class WebhookSettings:
    connections_table: str
    oauth_states_table: str
    sync_queue_url: str
    gmail_push_audience: str = ""
    gmail_push_service_account: str = ""
    pubsub_certs_uri: str = PUBSUB_CERTS_URI

    def __post_init__(self) -> None:
        for name in ("connections_table", "oauth_states_table", "sync_queue_url"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: a string is required")
        for name, high in _LIMITS.items():
            if len(getattr(self, name)) > high:
                raise ValueError(f"{name}: at most {high} characters")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Self:
        e = dict(os.environ if env is None else env)
        return cls(
            connections_table=e.get("CONNECTIONS_TABLE"),  # type: ignore[arg-type]  # checked above
            oauth_states_table=e.get("OAUTH_STATES_TABLE"),  # type: ignore[arg-type]
            sync_queue_url=e.get("SYNC_QUEUE_URL"),  # type: ignore[arg-type]
            gmail_push_audience=e.get("GMAIL_PUSH_AUDIENCE") or "",
            gmail_push_service_account=e.get("GMAIL_PUSH_SERVICE_ACCOUNT") or "",
            pubsub_certs_uri=e.get("PUBSUB_CERTS_URI") or PUBSUB_CERTS_URI,
        )
