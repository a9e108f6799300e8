"""The registry and the startup check: an enabled channel without its secrets stops the start (R13)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.settings import load_settings
from channels.registry import ADAPTERS, CONFIGS, build, config_errors
from core.errors import ConfigError
from tests.conftest import FrozenClock

FULL = {
    "whatsapp": {"phone_number_id": 106540352242922, "access_token": "t", "app_secret": "s", "verify_token": "v"},
    "messenger": {"page_id": "1", "page_access_token": "t", "app_secret": "s", "verify_token": "v"},
    "instagram": {"account_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"},
    "sms": {"account_sid": "AC1", "auth_token": "t", "from_number": "+1 (555) 010-0200"},
    "telegram": {"bot_token": "1:t", "secret_token": "s"},
}


@pytest.mark.parametrize("name", sorted(FULL))
async def test_build_every_channel(name: str, clock: FrozenClock) -> None:
    assert set(ADAPTERS) == set(CONFIGS) == set(FULL)
    assert config_errors(name, FULL[name]) == []
    async with httpx.AsyncClient() as http:
        channel = build(name, FULL[name], agent="sunrise", http=http, clock=clock)
    assert channel.name == name
    expected_target = {
        "whatsapp": "106540352242922",
        "messenger": "1",
        "instagram": "1",
        "sms": "+15550100200",
        "telegram": "sunrise",
    }[name]
    assert channel.target == expected_target


@pytest.mark.parametrize("name", sorted(FULL))
def test_every_secret_is_required_when_enabled(name: str) -> None:
    for key in FULL[name]:
        config = {k: v for k, v in FULL[name].items() if k != key}
        assert config_errors(name, config) == [f"{key}: required when the channel is enabled"]
        assert config_errors(name, {**config, key: ""}) == [f"{key}: required when the channel is enabled"]
        assert config_errors(name, {**config, "enabled": False}) == []


def test_invalid_and_unknown_keys() -> None:
    assert config_errors("sms", {**FULL["sms"], "from_number": "not a number"})[0].startswith("from_number:")
    assert config_errors("sms", {**FULL["sms"], "max_segments": 0})[0].startswith("max_segments:")
    assert config_errors("telegram", {**FULL["telegram"], "bot_tokn": "x"})[0].startswith("bot_tokn:")
    assert config_errors("fax", {})[0].startswith("unknown channel")


def test_build_refuses_with_the_key_named(clock: FrozenClock) -> None:
    with pytest.raises(ConfigError, match=r"channels\.whatsapp\.app_secret"):
        build("whatsapp", {**FULL["whatsapp"], "app_secret": None}, agent="a", http=httpx.AsyncClient(), clock=clock)


def _config(tmp_path: Path, channels: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "businesses:\n"
        "  - {slug: x, name: X, timezone: UTC, agents: [{slug: sunrise, name: Asha, channels: " + channels + "}]}\n"
    )
    return path


def test_startup_names_the_missing_secret(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        '{web: {enabled: true}, whatsapp: {phone_number_id: "1", access_token: "${WA_TOKEN}", '
        'app_secret: "${META_APP_SECRET}", verify_token: "v"}}',
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"WA_TOKEN": "t"})
    message = str(err.value)
    assert "businesses.0.agents.0.channels.whatsapp.app_secret" in message
    assert "businesses[0].agents[0].channels.whatsapp.app_secret (environment variable META_APP_SECRET is not set)" in (
        message
    )
    assert "access_token" not in message
    settings = load_settings(path, environ={"WA_TOKEN": "t", "META_APP_SECRET": "s"})
    assert settings.businesses[0].agents[0].channels["whatsapp"]["app_secret"] == "s"


def test_startup_refuses_an_unknown_channel_and_keeps_web(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"businesses\.0\.agents\.0\.channels\.fax: unknown channel"):
        load_settings(_config(tmp_path, "{web: {enabled: true}, fax: {}}"), environ={})
    assert load_settings(_config(tmp_path, "{web: {enabled: true}, sms: {enabled: false}}"), environ={})
