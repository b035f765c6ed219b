"""Configuration from the environment.

Every setting has the environment name operators rely on (no prefix magic); a wrong or
missing value fails at start-up with a message that names the variable.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from journeys.bounce_policy import SoftBouncePolicy
from journeys.esp_feedback import InboundSource
from journeys.sales_team import SALES_TEAM
from journeys.send_policy import SendPolicy
from journeys.timezones import is_known_timezone


class Role(StrEnum):
    """What an API key may do."""

    MARKETING = "marketing"
    SALES = "sales"
    ADMIN = "admin"


class ApiKeyHolder(BaseModel):
    """Who presents an API key: a role and, for a sales rep's key, the rep's id."""

    model_config = ConfigDict(frozen=True)

    role: Role
    rep: str | None = None


class SettingsError(RuntimeError):
    """A configuration value is wrong or missing; the message names the variable."""


DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "nurture"


class Settings(BaseSettings):
    """All of Nurture's configuration, read from environment variables."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    temporal_address: str | None = Field(
        default=None,
        alias="TEMPORAL_ADDRESS",
        description="host:port of a Temporal frontend; unset starts an embedded dev server.",
    )
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE", min_length=1)
    task_queue: str = Field(default="nurture", alias="NURTURE_TASK_QUEUE", min_length=1)
    database_url: str | None = Field(
        default=None,
        alias="DATABASE_URL",
        description="SQLAlchemy URL; unset uses a SQLite file for the demo.",
    )
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, alias="NURTURE_DATA_DIR")
    smtp_host: str = Field(default="localhost", alias="SMTP_HOST", min_length=1)
    smtp_port: int = Field(default=1025, alias="SMTP_PORT", ge=1, le=65535)
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=False, alias="SMTP_STARTTLS")
    # Broadcasts: SMTP connections one batch sends over at once, and the first wait before a
    # recipient the server deferred (4xx) is tried again (doubling each time).
    broadcast_connections: int = Field(default=4, alias="BROADCAST_CONNECTIONS", ge=1, le=64)
    broadcast_retry_seconds: float = Field(
        default=60.0, alias="BROADCAST_RETRY_SECONDS", gt=0, le=3600
    )
    mail_from: str = Field(
        default="Nurture <nurture@localhost>", alias="MAIL_FROM", pattern=r"^[^\r\n]*@[^\r\n]*$"
    )
    bounce_domain: str | None = Field(
        default=None,
        alias="NURTURE_BOUNCE_DOMAIN",
        pattern=r"^[A-Za-z0-9.-]{1,253}$",
        description="Envelope sender bounce+<signed token>@<this domain> (VERP): a bounce "
        "names the message it is about. Unset: the From address.",
    )
    dkim_domain: str | None = Field(default=None, alias="DKIM_DOMAIN", pattern=r"^[A-Za-z0-9.-]+$")
    dkim_selector: str | None = Field(
        default=None, alias="DKIM_SELECTOR", pattern=r"^[A-Za-z0-9._-]+$"
    )
    dkim_private_key_file: Path | None = Field(default=None, alias="DKIM_PRIVATE_KEY_FILE")
    # Webhooks from an email provider (docs/deliverability.md); each unset = that endpoint off.
    ses_sns_topic_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        alias="SES_SNS_TOPIC_ARNS",
        description="SNS topics (ARNs, comma-separated) whose SES notifications are taken; "
        "any AWS account can sign an SNS message, only these topics are ours.",
    )
    ses_sns_signing_certificate: Path | None = Field(
        default=None,
        alias="SES_SNS_SIGNING_CERTIFICATE",
        description="A PEM certificate SNS signatures are checked against instead of "
        "fetching SigningCertURL (tests, air-gapped hosts); the URL rule still applies.",
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None,
        alias="SENDGRID_WEBHOOK_PUBLIC_KEY",
        description="The Signed Event Webhook's verification key (base64 DER, as shown).",
    )
    mailgun_webhook_signing_key: SecretStr | None = Field(
        default=None, alias="MAILGUN_WEBHOOK_SIGNING_KEY"
    )
    postmark_webhook_user: str | None = Field(
        default=None, alias="POSTMARK_WEBHOOK_USER", pattern=r"^[^:\s]{1,100}$"
    )
    postmark_webhook_password: SecretStr | None = Field(
        default=None, alias="POSTMARK_WEBHOOK_PASSWORD"
    )
    postal_address: str = Field(
        default="Nurture Inc., 1 Example Street, Springfield",
        alias="MAIL_POSTAL_ADDRESS",
        min_length=1,
        description="The sender's postal address, shown in every email's footer.",
    )
    public_base_url: str = Field(
        default="http://localhost:8000", alias="PUBLIC_BASE_URL", pattern=r"^https?://[^\s]+$"
    )
    # The company's website: the templates' named content links (`links.pricing` …) and
    # relative links resolve against it. Unset: PUBLIC_BASE_URL (the demo). Nurture's own
    # pages (preferences, unsubscribe, confirmation, tracking) stay on PUBLIC_BASE_URL.
    website_base_url: str | None = Field(
        default=None, alias="WEBSITE_BASE_URL", pattern=r"^https?://[^\s]+$"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        alias="NURTURE_SECRET_KEY",
        validation_alias=AliasChoices("NURTURE_SECRET_KEY", "secret_key"),
    )
    crm_adapter: Literal["builtin", "webhook"] = Field(
        default="builtin",
        alias="CRM_ADAPTER",
        description="Where MQLs go: the built-in CRM table, or a webhook to a real CRM.",
    )
    crm_webhook_url: str | None = Field(
        default=None, alias="CRM_WEBHOOK_URL", pattern=r"^https?://[^\s]+$"
    )
    crm_webhook_secret: SecretStr | None = Field(
        default=None,
        alias="CRM_WEBHOOK_SECRET",
        description="Signs outbound handovers and verifies inbound CRM status webhooks.",
    )
    effect_timeout_seconds: int = Field(
        default=60,
        alias="NURTURE_EFFECT_TIMEOUT",
        ge=1,
        le=3600,
        description="Bound on one attempt of an effect (email, CRM); a crashed worker's "
        "attempt is retried after it.",
    )
    local_bookkeeping: bool = Field(
        default=True,
        alias="NURTURE_LOCAL_BOOKKEEPING",
        description="Run a lead's rescoring and segment evaluation as local activities "
        "(fewer history events and round trips). The simulator turns it off: the Java "
        "time-skipping test server mishandles local activities next to timers.",
    )
    worker_max_cached_workflows: int = Field(
        default=1000,
        alias="NURTURE_WORKER_MAX_CACHED_WORKFLOWS",
        ge=0,
        le=1_000_000,
        description="Workflow runs a worker keeps in memory; a sleeping journey beyond it is "
        "evicted and replayed from history when it wakes (bounds worker memory).",
    )
    worker_max_concurrent_activities: int = Field(
        default=100,
        alias="NURTURE_WORKER_MAX_CONCURRENT_ACTIVITIES",
        ge=1,
        le=10_000,
        description="Activities (emails, CRM calls, scoring) one worker runs at once.",
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        default=100,
        alias="NURTURE_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS",
        ge=2,
        le=10_000,
        description="Workflow tasks one worker runs at once.",
    )
    database_pool_size: int = Field(
        default=20,
        alias="NURTURE_DATABASE_POOL_SIZE",
        ge=1,
        le=1000,
        description="PostgreSQL connections each API or worker process keeps open.",
    )
    quiet_hours: str = Field(
        default="21-8",
        alias="NURTURE_QUIET_HOURS",
        pattern=r"^(|([01]?\d|2[0-3])-([01]?\d|2[0-3]))$",
        description="Local hours in which no marketing email is sent, e.g. 21-8; empty: none.",
    )
    send_days: str = Field(
        default="mon-sun",
        alias="NURTURE_SEND_DAYS",
        description="Weekdays marketing email may go out: mon-fri, or mon,wed,fri.",
    )
    frequency_cap: str = Field(
        default="3/7d",
        alias="NURTURE_FREQUENCY_CAP",
        pattern=r"^(|\d{1,3}/\d{1,3}d)$",
        description="At most N marketing emails per D days per lead (N/Dd); empty: no cap.",
    )
    soft_bounces: str = Field(
        default="3/7d",
        alias="NURTURE_SOFT_BOUNCES",
        pattern=r"^[1-9]\d{0,2}/[1-9]\d{0,2}d$",
        description="Suppress an address after N messages to it bounced transiently "
        "(4.x.x) within D days (N/Dd).",
    )
    default_timezone: str = Field(
        default="UTC",
        alias="NURTURE_DEFAULT_TIMEZONE",
        min_length=1,
        max_length=64,
        description="IANA zone quiet hours use for a lead without a timezone whose country "
        "has no single one (e.g. US) or is unknown.",
    )
    consent_text_version: str = Field(
        default="2026-11", alias="NURTURE_CONSENT_TEXT_VERSION", min_length=1, max_length=64
    )
    api_keys: Annotated[dict[str, ApiKeyHolder], NoDecode] = Field(
        default_factory=dict,
        alias="NURTURE_API_KEYS",
        validation_alias=AliasChoices("NURTURE_API_KEYS", "api_keys"),
    )

    @field_validator(
        "temporal_address",
        "database_url",
        "smtp_username",
        "smtp_password",
        "secret_key",
        "crm_webhook_url",
        "crm_webhook_secret",
        "bounce_domain",
        "dkim_domain",
        "dkim_selector",
        "dkim_private_key_file",
        "ses_sns_signing_certificate",
        "sendgrid_webhook_public_key",
        "mailgun_webhook_signing_key",
        "postmark_webhook_user",
        "postmark_webhook_password",
        "website_base_url",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        # `FOO=` in an env file or compose file means "not set", not "the empty string".
        return None if value == "" else value

    @property
    def website_url(self) -> str:
        """Where named content links resolve (no trailing slash): WEBSITE_BASE_URL, else
        PUBLIC_BASE_URL."""
        return (self.website_base_url or self.public_base_url).rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        """Parse `role:key` and `sales:<rep>:key` pairs, comma-separated, into {key: holder}."""
        if not isinstance(value, str):
            return value
        keys: dict[str, ApiKeyHolder] = {}
        for pair in filter(None, (part.strip() for part in value.split(","))):
            role, sep, key = pair.partition(":")
            if not sep or not key:
                raise ValueError(f"expected role:key pairs separated by commas, got {pair!r}")
            if role not in {r.value for r in Role}:
                raise ValueError(f"unknown role {role!r} (roles: marketing, sales, admin)")
            rep = None
            if role == Role.SALES and ":" in key:
                rep, _, key = key.partition(":")
                known = sorted(r.id for r in SALES_TEAM.reps)
                if rep not in known:
                    raise ValueError(f"unknown sales rep {rep!r} (journeys/sales_team.py: {known})")
            if len(key) < 16:
                raise ValueError(f"the {role} key must be at least 16 characters")
            keys[key] = ApiKeyHolder(role=Role(role), rep=rep)
        return keys

    @field_validator("database_url")
    @classmethod
    def _database_url_has_a_known_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("postgresql+psycopg://", "postgresql://", "sqlite:///")):
            raise ValueError("expected postgresql+psycopg://user:pass@host/db or sqlite:///path")
        return value

    @property
    def effective_database_url(self) -> str:
        """The synchronous SQLAlchemy URL in use (a SQLite file when DATABASE_URL is unset)."""
        if self.database_url is None:
            return f"sqlite:///{self.data_dir / 'nurture.db'}"
        if self.database_url.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.database_url.removeprefix("postgresql://")
        return self.database_url

    def require_secret_key(self) -> str:
        """The signing key, or a SettingsError naming NURTURE_SECRET_KEY."""
        if self.secret_key is None:
            raise SettingsError(
                "NURTURE_SECRET_KEY is required: set it to a random string of at least 32 "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self.secret_key.get_secret_value()

    @model_validator(mode="after")
    def _webhook_adapter_has_a_target(self) -> Settings:
        if self.crm_adapter == "webhook" and not (self.crm_webhook_url and self.crm_webhook_secret):
            raise ValueError("CRM_ADAPTER=webhook needs CRM_WEBHOOK_URL and CRM_WEBHOOK_SECRET")
        return self

    @model_validator(mode="after")
    def _dkim_is_all_or_nothing(self) -> Settings:
        given = [self.dkim_domain, self.dkim_selector, self.dkim_private_key_file]
        if any(given) and not all(given):
            raise ValueError(
                "DKIM signing needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE together"
            )
        return self

    @field_validator("ses_sns_topic_arns", mode="before")
    @classmethod
    def _parse_topic_arns(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        arns = [part.strip() for part in value.split(",") if part.strip()]
        for arn in arns:
            if not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}", arn):
                raise ValueError(f"not an SNS topic ARN: {arn[:100]!r}")
        return arns

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _sendgrid_key_loads(cls, value: str | None) -> str | None:
        if value is not None:
            from starter.services.esp_signatures import sendgrid_public_key

            sendgrid_public_key(value)
        return value

    @model_validator(mode="after")
    def _postmark_is_user_and_password(self) -> Settings:
        if bool(self.postmark_webhook_user) != bool(self.postmark_webhook_password):
            raise ValueError("POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD go together")
        password = self.postmark_webhook_password
        if password is not None and len(password.get_secret_value()) < 16:
            raise ValueError("POSTMARK_WEBHOOK_PASSWORD must be at least 16 characters")
        return self

    @property
    def esp_webhooks(self) -> frozenset[InboundSource]:
        """The providers whose webhooks are configured (and whose echo headers go out)."""
        configured = {
            InboundSource.SES: bool(self.ses_sns_topic_arns),
            InboundSource.SENDGRID: self.sendgrid_webhook_public_key is not None,
            InboundSource.MAILGUN: self.mailgun_webhook_signing_key is not None,
            InboundSource.POSTMARK: self.postmark_webhook_password is not None,
        }
        return frozenset(source for source, on in configured.items() if on)

    @field_validator("send_days")
    @classmethod
    def _known_days(cls, value: str) -> str:
        _weekdays(value)
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if not is_known_timezone(value):
            raise ValueError(f"unknown timezone {value!r} (an IANA name, e.g. Europe/Berlin)")
        return value

    @property
    def send_policy(self) -> SendPolicy:
        """Quiet hours, send days and frequency cap as the email activity applies them."""
        quiet = [int(h) for h in self.quiet_hours.split("-")] if self.quiet_hours else [None, None]
        cap, period = (None, 7)
        if self.frequency_cap:
            count, days = self.frequency_cap.removesuffix("d").split("/")
            cap, period = int(count), int(days)
        return SendPolicy(
            quiet_from=quiet[0],
            quiet_until=quiet[1],
            weekdays=_weekdays(self.send_days),
            cap=cap,
            cap_period=timedelta(days=period),
            default_timezone=self.default_timezone,
        )

    @property
    def soft_bounce_policy(self) -> SoftBouncePolicy:
        """When transient bounces suppress an address (`NURTURE_SOFT_BOUNCES`)."""
        count, days = self.soft_bounces.removesuffix("d").split("/")
        return SoftBouncePolicy(limit=int(count), window=timedelta(days=int(days)))

    def require_crm_webhook_secret(self) -> bytes:
        """The CRM webhook secret, or a SettingsError naming CRM_WEBHOOK_SECRET."""
        if self.crm_webhook_secret is None:
            raise SettingsError("CRM_WEBHOOK_SECRET is required for CRM webhooks")
        return self.crm_webhook_secret.get_secret_value().encode()

    def require_api_keys(self) -> dict[str, ApiKeyHolder]:
        """The API keys, or a SettingsError naming NURTURE_API_KEYS."""
        if not self.api_keys:
            raise SettingsError(
                "NURTURE_API_KEYS is required: role:key pairs separated by commas, "
                "e.g. marketing:<key>,sales:<rep>:<key>,admin:<key>"
            )
        return self.api_keys


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekdays(spec: str) -> frozenset[int]:
    """`mon-fri` or `mon,wed,fri` → weekday numbers (0 = Monday)."""
    days: set[int] = set()
    for part in filter(None, (p.strip().lower() for p in spec.split(","))):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"unknown weekday in {part!r} (use mon … sun)")
        start, end = _DAYS.index(first), _DAYS.index(last or first)
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
        days.update(span)
    if not days:
        raise ValueError("at least one weekday is needed")
    return frozenset(days)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (overrides win); errors name the variable."""
    try:
        return Settings.model_validate(overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
