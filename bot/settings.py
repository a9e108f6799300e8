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
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from channels.registry import CONFIGS as CHANNEL_CONFIGS
from channels.registry import config_errors
from core.automations import TRIGGERS, check_template
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


class InboxSettings(_Model):
    """The inbox worker: how many conversations one process runs at once, how long a claim lasts
    before another process may take over a dead one's conversation, how often rows are polled."""

    concurrency: int = Field(default=8, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)  # renewed every third of it while a turn runs
    poll_seconds: float = Field(default=0.5, gt=0)
    max_attempts: int = Field(default=5, ge=1)  # a row that crashed this many turns is set aside (failed)
    stale_after_minutes: int = Field(default=60, ge=1)  # older events are stored and shown, not answered


class OutboxSettings(_Model):
    """The outbox relay: exponential backoff with full jitter, capped; then the row is dead."""

    batch_size: int = Field(default=32, ge=1)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_seconds: float = Field(default=0.5, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_cap_seconds: float = Field(default=300.0, gt=0)
    request_timeout_seconds: float = Field(default=10.0, gt=0)


class TestingSettings(_Model):
    """Test-only switches (reliability tests): never set in production."""

    fault_at: str | None = None  # a crash point of bot/faults.py: the process SIGKILLs itself there
    workers: bool = True  # run the inbox worker and outbox relay in the background


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


class AlertRuleSettings(_Model):
    """One alert rule's tuning; see docs/operations.md for each rule's meaning of ``threshold``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    enabled: bool = True
    threshold: float
    min_volume: int = Field(default=0, ge=0, validation_alias=AliasChoices("min_volume", "min_ratings"))
    window_seconds: int = Field(default=3600, ge=1)
    baseline_seconds: int = Field(default=7 * 86400, ge=1)  # conversion drop / payment spike baseline
    baseline_factor: float = Field(default=3.0, gt=0)  # failed payments: rate > max(threshold, factor × baseline)
    for_seconds: int = Field(default=0, ge=0)
    keep_firing_for_seconds: int = Field(default=0, ge=0)
    severity: Literal["warning", "critical"] = "warning"
    repeat_interval_seconds: int | None = Field(default=None, ge=1)  # None: alerts.repeat_interval_seconds
    resolve_ratio: float = Field(default=1.0, gt=0, le=1)
    inhibits: list[str] = Field(default_factory=list)
    inhibit_equal: list[str] = Field(default_factory=lambda: ["channel"])


# The rules of reference/insights.md §6; config.yaml entries are laid over these key by key.
DEFAULT_ALERT_RULES: dict[str, dict[str, Any]] = {
    "slow_responses": {
        "threshold": 60,
        "min_volume": 10,
        "window_seconds": 1800,
        "for_seconds": 600,
        "keep_firing_for_seconds": 600,
        "resolve_ratio": 0.8,
        "severity": "warning",
        "repeat_interval_seconds": 4 * 3600,
    },
    "low_satisfaction": {
        "threshold": 3.0,
        "min_volume": 5,
        "window_seconds": 86400,
        "for_seconds": 0,
        "keep_firing_for_seconds": 3600,
        "severity": "warning",
        "repeat_interval_seconds": 86400,
    },
    "conversion_drop": {
        "threshold": 0.7,
        "min_volume": 20,
        "window_seconds": 86400,
        "baseline_seconds": 7 * 86400,
        "for_seconds": 3600,
        "keep_firing_for_seconds": 3600,
        "severity": "warning",
        "repeat_interval_seconds": 86400,
    },
    "failed_payments": {
        "threshold": 0.2,
        "baseline_factor": 3.0,
        "min_volume": 3,
        "window_seconds": 900,
        "baseline_seconds": 7 * 86400,
        "for_seconds": 300,
        "keep_firing_for_seconds": 900,
        "severity": "critical",
        "repeat_interval_seconds": 3600,
    },
    "sync_failure": {
        "threshold": 2,
        "min_volume": 0,
        "window_seconds": 86400,
        "for_seconds": 0,
        "keep_firing_for_seconds": 300,
        "severity": "critical",
        "repeat_interval_seconds": 3600,
    },
    "channel_down": {
        "threshold": 0.5,
        "min_volume": 4,
        "window_seconds": 600,
        "for_seconds": 300,
        "keep_firing_for_seconds": 600,
        "severity": "critical",
        "repeat_interval_seconds": 3600,
        "inhibits": ["slow_responses", "conversion_drop"],
        "inhibit_equal": ["channel"],
    },
}


class QuietHoursSettings(_Model):
    start: str = Field(default="22:00", pattern=r"^\d{2}:\d{2}$")
    end: str = Field(default="07:00", pattern=r"^\d{2}:\d{2}$")
    timezone: str = "UTC"
    bypass: list[Literal["warning", "critical"]] = Field(default_factory=lambda: ["critical"])  # type: ignore[arg-type]


class AlertTelegramSettings(_Model):
    bot_token: SecretStr | None = None
    api_base_url: str = "https://api.telegram.org"


class AlertAdmin(_Model):
    name: str
    telegram_chat_id: str | None = None
    phone: str | None = None  # E.164, for WhatsApp (template) and SMS
    channels: list[Literal["telegram", "whatsapp", "sms"]] = Field(
        default_factory=lambda: ["telegram", "whatsapp", "sms"]  # type: ignore[arg-type]
    )  # escalation order: an unacknowledged critical alert moves one step along
    businesses: list[str] = Field(default_factory=list)  # business slugs; empty = all of them
    quiet_hours: QuietHoursSettings | None = None  # this admin's own; None: alerts.quiet_hours


class AlertsSettings(_Model):
    enabled: bool = True
    evaluation_seconds: int = Field(default=60, ge=1)
    group_wait_seconds: int = Field(default=30, ge=0)
    group_interval_seconds: int = Field(default=300, ge=0)
    repeat_interval_seconds: int = Field(default=4 * 3600, ge=1)
    ack_timeout_seconds: int = Field(default=900, ge=1)
    quiet_hours: QuietHoursSettings | None = None
    telegram: AlertTelegramSettings = Field(default_factory=AlertTelegramSettings)
    # Same keys as an agent's channel config (channels/registry.py); ``template`` names the
    # approved WhatsApp utility template ("Alert: {{1}} {{2}}").
    whatsapp: dict[str, Any] | None = None
    sms: dict[str, Any] | None = None
    whatsapp_template: str = "admin_alert"
    admins: list[AlertAdmin] = Field(default_factory=list)
    rules: dict[str, AlertRuleSettings] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _rule_defaults(cls, data: Any) -> Any:
        """Every rule exists; a config entry only changes the keys it names."""
        if not isinstance(data, dict):
            return data
        given = data.get("rules") or {}
        if not isinstance(given, dict):
            return data
        unknown = sorted(set(given) - set(DEFAULT_ALERT_RULES))
        if unknown:
            raise ValueError(f"unknown alert rule(s): {', '.join(unknown)}; known: {', '.join(DEFAULT_ALERT_RULES)}")
        merged: dict[str, Any] = {}
        for name, defaults in DEFAULT_ALERT_RULES.items():
            entry = given.get(name) or {}
            if isinstance(entry, AlertRuleSettings):
                entry = entry.model_dump()
            if "min_ratings" in entry:
                entry = {k: v for k, v in entry.items() if k != "min_ratings"} | {"min_volume": entry["min_ratings"]}
            merged[name] = {**defaults, **entry}
        return {**data, "rules": merged}

    @model_validator(mode="after")
    def _telegram_token(self) -> AlertsSettings:
        if any(a.telegram_chat_id for a in self.admins) and self.telegram.bot_token is None:
            raise ValueError("alerts.telegram.bot_token is not set but an admin has a telegram_chat_id")
        return self


class SchedulerSettings(_Model):
    enabled: bool = True
    tick_seconds: float = Field(default=30.0, gt=0)
    lease_seconds: int = Field(default=120, ge=5)  # a claimed row is another process's again after this
    batch_size: int = Field(default=100, ge=1)


class RemindersSettings(_Model):
    enabled: bool = True
    offsets_minutes: list[int] = Field(default_factory=lambda: [1440, 60])
    # After downtime, a reminder more than this late is dropped (and recorded), never sent.
    stale_after_minutes: int = Field(default=30, ge=0)
    plan_ahead_hours: int = Field(default=72, ge=1)  # reminder rows are made for appointments this close


class OutcomesSettings(_Model):
    """Automatic completed / missed marking of appointments nobody marked by hand."""

    enabled: bool = True
    mark_after_minutes: int = Field(default=60, ge=0)  # after the appointment's end
    default: Literal["completed", "missed"] = "completed"  # what an unmarked appointment becomes
    lookback_hours: int = Field(default=72, ge=1)  # older unmarked appointments are left to people


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


class KeyProblems(ValueError):
    """Several keys under one model are wrong; ``_describe`` names each with its full path."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {problem}" for key, problem in problems))
        self.problems = problems


class AgentConfig(_Model):
    slug: str = Field(pattern=SLUG)
    name: str
    persona: str = ""
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _channels(self) -> AgentConfig:
        """An unknown channel, or an enabled one without its secrets, stops the start."""
        problems: list[tuple[str, str]] = []
        for name, config in self.channels.items():
            if name == "web":
                continue
            if name not in CHANNEL_CONFIGS:
                problems.append((f"channels.{name}", f"unknown channel (known: {', '.join(CHANNEL_CONFIGS)}, web)"))
                continue
            for problem in config_errors(name, config):
                key, _, text = problem.partition(": ")
                problems.append((f"channels.{name}.{key}", text))
        if problems:
            raise KeyProblems(problems)
        return self


class AutomationConfig(_Model):
    """One trigger's action for one business: a message (``{{placeholders}}``, None = the locale's
    default wording), a calendar file where the channel allows, or nothing (``enabled: false``)."""

    enabled: bool = True
    message: str | None = None
    ics: bool = True
    template: str | None = None  # the approved WhatsApp template (outside the 24 h window); default: trigger name


class BusinessConfig(BusinessSpec):
    agents: list[AgentConfig] = Field(default_factory=list)
    # appointment.booked | .cancelled | .rescheduled | .no_show | .completed | .reminder
    automations: dict[str, AutomationConfig] = Field(default_factory=dict)
    video_link: str = ""  # {{video_link}} in automation messages
    location_details: str = ""  # {{location_details}}; the address when empty

    @field_validator("automations")
    @classmethod
    def _triggers(cls, value: dict[str, AutomationConfig]) -> dict[str, AutomationConfig]:
        for trigger, config in value.items():
            if trigger not in TRIGGERS:
                raise ValueError(f"unknown automation trigger {trigger!r}; known: {', '.join(TRIGGERS)}")
            if config.message is not None:
                check_template(config.message)
        return value

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
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    reminders: RemindersSettings = Field(default_factory=RemindersSettings)
    outcomes: OutcomesSettings = Field(default_factory=OutcomesSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    testing: TestingSettings = Field(default_factory=TestingSettings)
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
        error = (err.get("ctx") or {}).get("error")
        located = [(f"{loc}.{k}" if loc else k, m) for k, m in error.problems] if isinstance(error, KeyProblems) else []
        for where, message in located or [(loc, err["msg"])]:
            hint = next((u for u in unset if re.sub(r"\[(\d+)\]", r".\1", u.split(" ")[0]) == where), None)
            lines.append(f"  {where}: {hint or message}")
    return "\n".join(lines)
