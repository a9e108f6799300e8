"""Settings: defaults < config.yaml < environment (``FRONTDESK_`` prefix, ``__`` nesting).

Loaded once in ``main``; nothing here reads the environment or a file at import time. YAML values
may reference environment variables as ``${NAME}``; secrets must be given that way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError, InvalidInput
from core.models import AdvanceMode, Assignment, parse_ranges, parse_week
from core.timezones import canonical_zone_name

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


class DialogueSettings(_Model):
    engine: Literal["auto", "rules", "claude"] = "auto"


class AnthropicSettings(_Model):
    model: str = "claude-sonnet-5-5"
    base_url: str | None = None
    api_key: SecretStr | None = None


class PaymentsSettings(_Model):
    model_config = ConfigDict(extra="allow")
    provider: Literal["local", "stripe", "razorpay"] = "local"
    hold_minutes: int = 15


class AlertsSettings(_Model):
    model_config = ConfigDict(extra="allow")


class LoggingSettings(_Model):
    level: str = "INFO"
    json_format: bool = Field(default=False, alias="json")


def _check_ranges(texts: list[str], where: str) -> list[str]:
    try:
        parse_ranges(texts)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return texts


class TimeOffConfig(_Model):
    start: datetime  # local wall-clock in the staff member's zone unless an offset is given
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> TimeOffConfig:
        if self.end <= self.start:
            raise ValueError("time off ends before it starts")
        return self


class StaffConfig(_Model):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str
    kind: Literal["person", "resource"] = "person"
    timezone: str | None = None  # defaults to the business's
    hours: dict[str, list[str]] = Field(default_factory=dict)
    breaks: dict[str, list[str]] = Field(default_factory=dict)
    overrides: dict[date, list[str]] = Field(default_factory=dict)  # [] = closed that day
    time_off: list[TimeOffConfig] = Field(default_factory=list)
    weight: int = Field(default=1, ge=1, le=100)

    @field_validator("hours", "breaks")
    @classmethod
    def _week(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        parse_week(value)
        return value

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, value: dict[date, list[str]]) -> dict[date, list[str]]:
        for day, texts in value.items():
            _check_ranges(texts, str(day))
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _zone_name(value)


class ServiceConfig(_Model):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str
    description: str = ""
    duration_minutes: int = Field(ge=1, le=1440)
    price: int = Field(default=0, ge=0)  # integer minor units of the business currency
    staff: list[str] = Field(min_length=1)
    interval_minutes: int | None = Field(default=None, ge=1, le=1440)
    buffer_before_minutes: int = Field(default=0, ge=0)
    buffer_after_minutes: int = Field(default=0, ge=0)
    min_notice_minutes: int = Field(default=0, ge=0)
    max_advance_days: int = Field(default=60, ge=0, le=730)
    advance_mode: AdvanceMode = AdvanceMode.CALENDAR_DAYS
    max_per_day: int | None = Field(default=None, ge=1)
    max_per_week: int | None = Field(default=None, ge=1)
    capacity: int = Field(default=1, ge=1)
    assignment: Assignment = Assignment.ANY
    buffers_within_hours: bool = False
    cancel_notice_hours: float = Field(default=0, ge=0)
    reschedule_notice_hours: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        if self.min_notice_minutes > (self.max_advance_days + 1) * 1440:
            raise ValueError("min_notice_minutes is longer than the max_advance_days window")
        if self.capacity > 1 and self.assignment is Assignment.COLLECTIVE:
            raise ValueError("a collective service cannot have seats")
        return self


class HolidayConfig(_Model):
    date: date
    name: str = "Holiday"


class AgentConfig(_Model):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str
    persona: str = ""
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)


class BusinessConfig(_Model):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str
    timezone: str
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    locale: str = "en"
    week_start: Literal["mon", "sun"] = "mon"
    address: str = ""
    phone: str = ""
    hours: dict[str, list[str]] = Field(default_factory=dict)  # default hours of staff without their own
    holidays: list[HolidayConfig] = Field(default_factory=list)
    faq: list[dict[str, str]] = Field(default_factory=list)
    staff: list[StaffConfig] = Field(default_factory=list)
    services: list[ServiceConfig] = Field(default_factory=list)
    agents: list[AgentConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone_name(value)

    @field_validator("hours")
    @classmethod
    def _week(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        parse_week(value)
        return value

    @model_validator(mode="after")
    def _references(self) -> BusinessConfig:
        staff = {s.slug for s in self.staff}
        problems = []
        for name, items in (("staff", self.staff), ("services", self.services), ("agents", self.agents)):
            slugs = [i.slug for i in items]
            dupes = sorted({s for s in slugs if slugs.count(s) > 1})
            if dupes:
                problems.append(f"duplicate {name} slug(s): {', '.join(dupes)}")
        for service in self.services:
            missing = [s for s in service.staff if s not in staff]
            if missing:
                problems.append(f"service {service.slug} names unknown staff: {', '.join(missing)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _zone_name(value: str) -> str:
    try:
        return canonical_zone_name(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTDESK_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    dialogue: DialogueSettings = Field(default_factory=DialogueSettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
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
        return {
            k: substitute(v, environ, f"{where}.{k}" if where else str(k), missing) for k, v in value.items()
        }
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
