"""The rules engine's wording, kept in per-locale message catalogues instead of code.

``bot/dialogue/locales/<locale>/*.yaml`` are merged into one flat ``key → template`` table per
locale; templates use ``str.format`` fields. A key missing in a locale falls back to English, so a
partial translation never breaks a conversation.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

LOCALES = Path(__file__).with_name("locales")
FALLBACK = "en"


@cache
def _table(locale: str) -> dict[str, str]:
    folder = LOCALES / locale
    table: dict[str, str] = {}
    if folder.is_dir():
        for file in sorted(folder.glob("*.yaml")):
            loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            clash = table.keys() & loaded.keys()
            if clash:
                raise ValueError(f"{file}: keys defined twice in locale {locale}: {sorted(clash)}")
            table.update({str(k): str(v).rstrip("\n") for k, v in loaded.items()})
    return table


def language(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0].lower() or FALLBACK


def text(key: str, locale: str = FALLBACK, /, **params: Any) -> str:
    """The template for ``key`` in ``locale`` (else English), filled with ``params``."""
    template = _table(language(locale)).get(key)
    if template is None:
        template = _table(FALLBACK).get(key)
    if template is None:
        raise KeyError(f"no message {key!r} in the {FALLBACK} catalogue")
    return template.format(**params)


def has(key: str) -> bool:
    return key in _table(FALLBACK)
