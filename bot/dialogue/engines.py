"""Which engine answers: ``dialogue.engine`` = rules | claude | auto (claude when a key is set)."""

from __future__ import annotations

from bot.dialogue.engine import Engine
from bot.dialogue.rules import RulesEngine
from bot.settings import Settings
from core.errors import ConfigError


def chosen_engine(settings: Settings) -> str:
    wanted = settings.dialogue.engine
    has_key = settings.anthropic.api_key is not None and bool(settings.anthropic.api_key.get_secret_value())
    if wanted == "claude" and not has_key:
        raise ConfigError("dialogue.engine is claude but ANTHROPIC_API_KEY is not set")
    if wanted == "auto":
        return "claude" if has_key else "rules"
    return wanted


def build_engines(settings: Settings) -> tuple[Engine, Engine | None]:
    """The engine and the one that answers when it cannot (over budget, API down)."""
    rules = RulesEngine()
    if chosen_engine(settings) == "rules":
        return rules, None
    from bot.dialogue.claude import ClaudeEngine  # the SDK is imported only when it is used

    return ClaudeEngine(settings), rules
