"""Settings: defaults < config.yaml < environment (``FRONTDESK_`` prefix, ``__`` nesting).

Loaded once in ``main``; nothing here reads the environment or a file at import time. YAML values
may reference environment variables as ``${NAME}``; secrets must be given that way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.catalog import SLUG, BusinessSpec
from core.errors import ConfigError

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Model):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://localhost:8080"
    max_body_bytes: int = 256 * 1024


class DatabaseSettings(_Model):
    url: str = "sqlite+aiosqlite:///frontdesk.db"
    echo: bool = False
    busy_timeout_ms: int = 10_000
    pool_size: int = 10


class RateLimitSettings(_Model):
    """Per-sender token bucket: ``burst`` messages at once, refilled at ``per_minute``."""

    burst: int = Field(default=10, ge=1)
    per_minute: float = Field(default=20.0, gt=0)


class DialogueSettings(_Model):
    engine: Literal["auto", "rules", "claude"] = "auto"
    turn_timeout_seconds: float = Field(default=30.0, gt=0)  # outer bound on one turn, whatever the engine
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    max_text_chars: int = Field(default=2000, ge=1)  # longer customer messages are cut before reading


class AnthropicSettings(_Model):
    model: str = "claude-sonnet-5-5"
    base_url: str | None = None
    api_key: SecretStr | None = None
    max_tokens: int = Field(default=1024, ge=1)
    request_timeout_seconds: float = Field(default=20.0, gt=0)
    max_retries: int = Field(default=1, ge=0)  # the SDK's retry layer; the only one
    max_tool_calls_per_turn: int = Field(default=6, ge=1)
    daily_token_budget: int = Field(default=2_000_000, ge=0)  # per business; over it the rules engine answers


class StripeSettings(_Model):
    secret_key: SecretStr | None = None  # sk_...
    webhook_secret: SecretStr | None = None  # whsec_... of the endpoint /webhooks/payments/stripe
    api_base_url: str = "https://api.stripe.com"
    tolerance_seconds: int = Field(default=300, ge=1)  # Stripe-Signature replay window


class RazorpaySettings(_Model):
    key_id: str | None = None
    key_secret: SecretStr | None = None  # API secret (basic auth)
    webhook_secret: SecretStr | None = None  # the dashboard's webhook secret, not the API secret
    api_base_url: str = "https://api.razorpay.com"


class LocalPaySettings(_Model):
    # Signs the built-in checkout's events; generated and kept in the database when unset.
    webhook_secret: SecretStr | None = None
    tolerance_seconds: int = Field(default=300, ge=1)


class PaymentsSettings(_Model):
    model_config = ConfigDict(extra="allow")
    provider: Literal["local", "stripe", "razorpay"] = "local"
    hold_minutes: int = Field(default=15, ge=1, le=24 * 60)
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    stripe: StripeSettings = Field(default_factory=StripeSettings)
    razorpay: RazorpaySettings = Field(default_factory=RazorpaySettings)
    local: LocalPaySettings = Field(default_factory=LocalPaySettings)

    @model_validator(mode="after")
    def _provider_secrets(self) -> PaymentsSettings:
        """The chosen provider cannot run without its keys: name the missing ones at startup."""
        needed: dict[str, dict[str, object]] = {
            "stripe": {"secret_key": self.stripe.secret_key, "webhook_secret": self.stripe.webhook_secret},
            "razorpay": {
                "key_id": self.razorpay.key_id,
                "key_secret": self.razorpay.key_secret,
                "webhook_secret": self.razorpay.webhook_secret,
            },
        }
        keys = needed.get(self.provider, {})
        missing = [f"payments.{self.provider}.{key}" for key, value in keys.items() if not value]
        if missing:
            raise ValueError(f"payments.provider is {self.provider} but {', '.join(missing)} is not set")
        return self


class AlertsSettings(_Model):
    model_config = ConfigDict(extra="allow")


class SecuritySettings(_Model):
    # Key for customers' self-service cancel/reschedule tokens. From the environment
    # (FRONTDESK_SECURITY__LINK_SECRET); when unset, one is generated and kept in the database.
    link_secret: SecretStr | None = None


class DashboardSettings(_Model):
    """Login sessions and the login rate limit of ``/dashboard``."""

    session_idle_minutes: int = Field(default=30, ge=1)
    session_hours: int = Field(default=12, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_ip: int = Field(default=20, ge=1)


class LoggingSettings(_Model):
    level: str = "INFO"
    json_format: bool = Field(default=False, alias="json")


class AgentConfig(_Model):
    slug: str = Field(pattern=SLUG)
    name: str
    persona: str = ""
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)


class BusinessConfig(BusinessSpec):
    agents: list[AgentConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_agents(self) -> BusinessConfig:
        slugs = [a.slug for a in self.agents]
        dupes = sorted({s for s in slugs if slugs.count(s) > 1})
        if dupes:
            raise ValueError(f"duplicate agents slug(s): {', '.join(dupes)}")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTDESK_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    dialogue: DialogueSettings = Field(default_factory=DialogueSettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    businesses: list[BusinessConfig] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init values are the (already substituted) YAML document: env beats it.
        return (env_settings, init_settings)


def config_path(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """``--config`` beats ``FRONTDESK_CONFIG`` beats ``./config.yaml``; None when none exists."""
    if explicit:
        return Path(explicit)
    if environ.get("FRONTDESK_CONFIG"):
        return Path(environ["FRONTDESK_CONFIG"])
    default = Path("config.yaml")
    return default if default.exists() else None


def substitute(value: Any, environ: Mapping[str, str], where: str, missing: list[str]) -> Any:
    """Replace ``${NAME}`` references; an unset variable makes the value None and is noted."""
    if isinstance(value, dict):
        return {k: substitute(v, environ, f"{where}.{k}" if where else str(k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, environ, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        names = _REF.findall(value)
        unset = [n for n in names if not environ.get(n)]
        if unset:
            missing.extend(f"{where} (environment variable {n} is not set)" for n in unset)
            return None
        return _REF.sub(lambda m: environ[m.group(1)], value)
    return value


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration, or raise :class:`ConfigError` naming every bad key."""
    env = dict(os.environ if environ is None else environ)
    file = config_path(str(path) if path else None, env)
    document: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping")
        document = loaded or {}
    unset: list[str] = []
    document = substitute(document, env, "", unset)
    if env.get("ANTHROPIC_API_KEY"):
        document.setdefault("anthropic", {})
        document["anthropic"] = {**(document["anthropic"] or {}), "api_key": env["ANTHROPIC_API_KEY"]}
    try:
        return Settings(**document)  # FRONTDESK_* overrides come from the process environment
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file, unset)) from None


def _describe(exc: ValidationError, file: Path | None, unset: list[str]) -> str:
    lines = [f"invalid configuration{f' in {file}' if file else ''}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        hint = next((u for u in unset if u.split(" ")[0] == loc), None)
        lines.append(f"  {loc}: {hint or err['msg']}")
    return "\n".join(lines)
