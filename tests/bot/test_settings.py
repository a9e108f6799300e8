from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import load_settings
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_loads_with_a_realistic_demo() -> None:
    settings = load_settings(REPO / "config.yaml", environ={})
    (clinic,) = settings.businesses
    assert len(clinic.staff) >= 3 and len(clinic.services) >= 3 and clinic.holidays
    assert len({repr(sorted(s.hours.items())) for s in clinic.staff}) > 1, "staff hours should differ"
    assert any(s.price > 0 for s in clinic.services) and len({s.duration_minutes for s in clinic.services}) > 1


def test_precedence_defaults_then_yaml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server: {port: 9000, host: 0.0.0.0}\n")
    assert load_settings(path, environ={}).server.port == 9000
    assert load_settings(path, environ={}).server.public_url == "http://localhost:8080"  # default kept
    monkeypatch.setenv("FRONTDESK_SERVER__PORT", "9100")
    settings = load_settings(path, environ={})
    assert settings.server.port == 9100 and settings.server.host == "0.0.0.0"


def test_env_references_are_substituted(tmp_path: Path) -> None:
    path = write(tmp_path, 'database: {url: "${DB_URL}"}\n')
    assert (
        load_settings(path, environ={"DB_URL": "sqlite+aiosqlite:///x.db"}).database.url == "sqlite+aiosqlite:///x.db"
    )


def test_missing_env_reference_is_named_in_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'database: {url: "${DB_URL}"}\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert "database.url" in str(err.value) and "DB_URL" in str(err.value)


def test_config_file_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path, "server: {port: 1111}\n")
    b = tmp_path / "b.yaml"
    b.write_text("server: {port: 2222}\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, environ={}).server.port == 1111  # ./config.yaml
    assert load_settings(None, environ={"FRONTDESK_CONFIG": str(b)}).server.port == 2222
    assert load_settings(a, environ={"FRONTDESK_CONFIG": str(b)}).server.port == 1111  # --config wins


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("server: {port: notanumber}\n", "server.port"),
        ("unknown_section: 1\n", "unknown_section"),
        ("businesses: [{slug: x, name: X, timezone: EST}]\n", "businesses.0.timezone"),
        (
            "businesses: [{slug: x, name: X, timezone: UTC, staff: [{slug: a, name: A, hours: {mon: ['9-5']}}]}]\n",
            "businesses.0.staff.0.hours",
        ),
        (
            "businesses: [{slug: x, name: X, timezone: UTC, services: [{slug: s, name: S, duration_minutes: 30,"
            " staff: [ghost]}]}]\n",
            "unknown staff: ghost",
        ),
        (
            "businesses: [{slug: x, name: X, timezone: UTC, staff: [{slug: a, name: A}], services: [{slug: s,"
            " name: S, duration_minutes: 30, staff: [a], min_notice_minutes: 99999, max_advance_days: 1}]}]\n",
            "min_notice_minutes",
        ),
        ("- just a list\n", "top level must be a mapping"),
        ("server: {port: [\n", "not valid YAML"),
    ],
)
def test_invalid_configuration_names_the_key(tmp_path: Path, yaml_text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, yaml_text), environ={})
    assert expected in str(err.value)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_anthropic_key_comes_from_the_environment_only(tmp_path: Path) -> None:
    path = write(tmp_path, "dialogue: {engine: auto}\n")
    settings = load_settings(path, environ={"ANTHROPIC_API_KEY": "sk-test-123456"})
    assert settings.anthropic.api_key is not None
    assert settings.anthropic.api_key.get_secret_value() == "sk-test-123456"
    assert "sk-test-123456" not in repr(settings)
