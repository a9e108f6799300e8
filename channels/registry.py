"""The provider channels by name: their adapter classes, their config models, and how to build one.

An explicit dict rather than discovery, so the set of channels is visible in one place. The web
chat is not here: it has no provider and is served by the app itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from channels.base import Channel
from channels.instagram import InstagramChannel, InstagramConfig
from channels.messenger import MessengerChannel, MessengerConfig
from channels.sms import SmsChannel, SmsConfig
from channels.telegram import TelegramChannel, TelegramConfig
from channels.whatsapp import WhatsAppChannel, WhatsAppConfig
from core.errors import ConfigError

ADAPTERS: dict[str, type[Any]] = {
    "whatsapp": WhatsAppChannel,
    "messenger": MessengerChannel,
    "instagram": InstagramChannel,
    "sms": SmsChannel,
    "telegram": TelegramChannel,
}
CONFIGS: dict[str, type[BaseModel]] = {
    "whatsapp": WhatsAppConfig,
    "messenger": MessengerConfig,
    "instagram": InstagramConfig,
    "sms": SmsConfig,
    "telegram": TelegramConfig,
}


def _blank(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or (isinstance(value, str) and not value.strip())


def config_errors(name: str, config: Mapping[str, Any] | None) -> list[str]:
    """``"<key>: <problem>"`` for each missing or invalid key of one channel's config; an enabled
    channel without a secret or id is an error, a disabled one only needs well-typed values."""
    model = CONFIGS.get(name)
    if model is None:
        return [f"unknown channel (known: {', '.join(sorted(CONFIGS))}, web)"]
    raw = {k: v for k, v in (config or {}).items() if v is not None}  # an unset ${VAR} arrives as None
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in err['loc']) or name}: {err['msg']}" for err in exc.errors()]
    if not getattr(parsed, "enabled", True):
        return []
    required: tuple[str, ...] = getattr(model, "required", ())
    return [f"{key}: required when the channel is enabled" for key in required if _blank(getattr(parsed, key))]


def build(
    name: str,
    config: Mapping[str, Any] | BaseModel,
    *,
    agent: str,
    http: httpx.AsyncClient,
    clock: Callable[[], datetime],
) -> Channel:
    """The adapter for ``name``; ``ConfigError`` naming every bad key when it cannot run."""
    if isinstance(config, BaseModel):
        config = config.model_dump()
    problems = config_errors(name, config)
    if problems:
        raise ConfigError("; ".join(f"channels.{name}.{p}" for p in problems))
    model = CONFIGS[name].model_validate({k: v for k, v in config.items() if v is not None})
    adapter: Channel = ADAPTERS[name](model, agent=agent, http=http, clock=clock)
    return adapter
