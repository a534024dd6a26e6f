"""Typed configuration, parsed once from the environment at the edge.

Logic never reads ``os.environ``; it receives a :class:`Settings`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


CsvTuple = Annotated[tuple[str, ...], BeforeValidator(_csv)]


class GoogleSettings(BaseModel):
    """Where Google is and who we are to it. Endpoints point at the emulator locally."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret_arn: str
    features: CsvTuple = ("calendar",)
    auth_uri: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_uri: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    revoke_uri: str = "https://oauth2.googleapis.com/revoke"
    certs_uri: str = "https://www.googleapis.com/oauth2/v1/certs"
    issuers: CsvTuple = ("https://accounts.google.com", "accounts.google.com")
    #: Root of the Google REST APIs; empty means the client library's defaults (Google).
    api_root: str = ""
    http_timeout_seconds: float = 10.0


class CalDavSettings(BaseModel):
    """Calendars reached with CalDAV and a password (iCloud, any standards CalDAV server)."""

    model_config = ConfigDict(frozen=True)

    #: Whether users may connect iCloud (and other CalDAV servers) here.
    enabled: bool = True
    #: Where accounts are found when the user names no server: iCloud (discovery starts at
    #: ``/.well-known/caldav`` on it); locally, Radicale.
    base_url: str = "https://caldav.icloud.com"
    #: Whether a server address a user types may be on loopback (the local stack only: in
    #: production it would let users make the backend call its own network).
    private_servers: bool = False


class MicrosoftSettings(BaseModel):
    """Where Microsoft's identity platform and Graph are, and who we are to them. The
    authority and Graph root point at the emulator locally. No client id: Microsoft is not
    offered here (an optional provider, like iCloud's ``enabled``)."""

    model_config = ConfigDict(frozen=True)

    client_id: str = ""
    client_secret_arn: str = ""
    #: ``common``: work and school accounts of any organisation, and personal accounts.
    authority: str = "https://login.microsoftonline.com/common"
    graph_root: str = "https://graph.microsoft.com/v1.0"
    http_timeout_seconds: float = 10.0

    @property
    def enabled(self) -> bool:
        """Whether users may sign in with Microsoft here (a client id and its secret are set)."""
        return bool(self.client_id and self.client_secret_arn)


class CoreSettings(BaseModel):
    """What every function needs to know about its deployment: its tables, queue, key and
    public address. A function that talks to no provider (the Calendar webhook) reads only
    these."""

    model_config = ConfigDict(frozen=True)

    stage: str = "dev"
    public_base_url: str
    connections_table: str
    oauth_states_table: str
    token_key_id: str
    sync_queue_url: str
    jwt_tenant_claim: str = "tenant_id"
    jwt_user_claim: str = "sub"
    oauth_state_ttl_seconds: int = Field(default=600, gt=0, le=600)
    #: The EventBridge bus domain events go to (AppointmentCreated, EmailLogged, ...).
    event_bus_name: str = ""
    #: The BCC logging domain (F9) and the bucket SES writes received mail to.
    logging_domain: str = ""
    mail_bucket: str = ""
    #: Where the API keeps the answers of creates sent with an Idempotency-Key (24 h, TTL).
    idempotency_table: str = ""
    #: The mass-deletion guard: a sync's deletions wait for the user's confirmation when
    #: they are at least ``mass_deletion_minimum`` items and empty the mirror, or (full syncs)
    #: exceed ``mass_deletion_share`` of it.
    mass_deletion_share: float = Field(default=0.5, gt=0, le=1)
    mass_deletion_minimum: int = Field(default=20, ge=1)
    #: The region phone numbers without a country code are read in (ISO 3166-1 alpha-2), for
    #: tenants that set none (``PUT /v1/settings/contacts``).
    default_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    #: The JWT claim that makes a user an admin of their tenant (tenant-wide settings).
    jwt_admin_claim: str = "crm_admin"
    #: The Google contact group CRM contacts are pushed into (F10: "named after the CRM").
    contacts_group_name: str = Field(default="CRM", min_length=1, max_length=50)
    #: Two-way mail sync (F8): the Pub/Sub topic Gmail publishes mailbox changes to
    #: (``projects/<project>/topics/<topic>``; empty: no watch, the schedule's safety net only),
    #: and what the push subscription's OIDC tokens must say: their audience and the service
    #: account that signs them; Google's keys for those tokens.
    gmail_topic: str = Field(default="", max_length=255)
    gmail_push_audience: str = Field(default="", max_length=2048)
    gmail_push_service_account: str = Field(default="", max_length=320)
    pubsub_certs_uri: str = "https://www.googleapis.com/oauth2/v1/certs"

    @property
    def calendar_webhook_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/webhooks/google/calendar"

    @property
    def graph_notification_url(self) -> str:
        """Where Graph subscriptions send change notifications (graph_webhook)."""
        return f"{self.public_base_url.rstrip('/')}/webhooks/microsoft/calendar"

    @property
    def graph_lifecycle_url(self) -> str:
        """Where Graph subscriptions send lifecycle notifications (graph_webhook)."""
        return f"{self.public_base_url.rstrip('/')}/webhooks/microsoft/lifecycle"

    @property
    def settings_page_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/settings/integrations"

    @property
    def cookie_secure(self) -> bool:
        return self.public_base_url.startswith("https://")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Self:
        return cls.model_validate(cls._fields_from(dict(os.environ if env is None else env)))

    @classmethod
    def _fields_from(cls, e: dict[str, str]) -> dict[str, Any]:
        return {
            "stage": e.get("STAGE", "dev"),
            "public_base_url": e.get("PUBLIC_BASE_URL"),
            "connections_table": e.get("CONNECTIONS_TABLE"),
            "oauth_states_table": e.get("OAUTH_STATES_TABLE"),
            "token_key_id": e.get("TOKEN_KEY_ID"),
            "sync_queue_url": e.get("SYNC_QUEUE_URL"),
            "jwt_tenant_claim": e.get("JWT_TENANT_CLAIM", "tenant_id"),
            "jwt_user_claim": e.get("JWT_USER_CLAIM", "sub"),
            "event_bus_name": e.get("EVENT_BUS_NAME", ""),
            "logging_domain": e.get("LOGGING_DOMAIN", ""),
            "mail_bucket": e.get("MAIL_BUCKET", ""),
            "idempotency_table": e.get("IDEMPOTENCY_TABLE", ""),
            "jwt_admin_claim": e.get("JWT_ADMIN_CLAIM", "crm_admin"),
            **{
                k: v
                for k, v in {
                    "mass_deletion_share": e.get("MASS_DELETION_SHARE"),
                    "mass_deletion_minimum": e.get("MASS_DELETION_MINIMUM"),
                    "default_phone_region": e.get("DEFAULT_PHONE_REGION"),
                    "contacts_group_name": e.get("CONTACTS_GROUP_NAME"),
                    "gmail_topic": e.get("GMAIL_TOPIC"),
                    "gmail_push_audience": e.get("GMAIL_PUSH_AUDIENCE"),
                    "gmail_push_service_account": e.get("GMAIL_PUSH_SERVICE_ACCOUNT"),
                    "pubsub_certs_uri": e.get("PUBSUB_CERTS_URI"),
                }.items()
                if v
            },
        }


class Settings(CoreSettings):
    """Everything a function that talks to providers needs: the core, Google, CalDAV and Microsoft."""

    google: GoogleSettings
    caldav: CalDavSettings = CalDavSettings()
    microsoft: MicrosoftSettings = MicrosoftSettings()

    @property
    def google_redirect_uri(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/oauth/google/callback"

    @property
    def microsoft_redirect_uri(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/oauth/microsoft/callback"

    @classmethod
    def _fields_from(cls, e: dict[str, str]) -> dict[str, Any]:
        return {
            **super()._fields_from(e),
            "google": {
                k: v
                for k, v in {
                    "client_id": e.get("GOOGLE_CLIENT_ID"),
                    "client_secret_arn": e.get("GOOGLE_CLIENT_SECRET_ARN"),
                    "features": e.get("GOOGLE_FEATURES"),
                    "auth_uri": e.get("GOOGLE_AUTH_URI"),
                    "token_uri": e.get("GOOGLE_TOKEN_URI"),
                    "revoke_uri": e.get("GOOGLE_REVOKE_URI"),
                    "certs_uri": e.get("GOOGLE_CERTS_URI"),
                    "issuers": e.get("GOOGLE_ISSUERS"),
                    "api_root": e.get("GOOGLE_API_ROOT"),
                }.items()
                if v is not None
            },
            "caldav": {
                k: v
                for k, v in {
                    "enabled": e.get("CALDAV_ENABLED"),
                    "base_url": e.get("CALDAV_BASE_URL"),
                    "private_servers": e.get("CALDAV_PRIVATE_SERVERS"),
                }.items()
                if v
            },
            "microsoft": {
                k: v
                for k, v in {
                    "client_id": e.get("MICROSOFT_CLIENT_ID"),
                    "client_secret_arn": e.get("MICROSOFT_CLIENT_SECRET_ARN"),
                    "authority": e.get("MICROSOFT_AUTHORITY"),
                    "graph_root": e.get("MICROSOFT_GRAPH_ROOT"),
                }.items()
                if v
            },
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, parsed on first use (not at import: imports stay side-effect free)."""
    return Settings.from_env()
