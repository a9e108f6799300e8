"""Splitting and truncation: never beyond the limit, never through a grapheme, nothing lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.text import split, truncate, utf8_len, utf16_len, with_tail


def test_paragraphs_then_words() -> None:
    text = "First paragraph here.\n\nSecond one is a bit longer than the first."
    assert split(text, 40) == ["First paragraph here.", "Second one is a bit longer than the", "first."]


def test_a_word_longer_than_the_limit_is_cut() -> None:
    assert split("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_emoji_sequences_are_not_torn() -> None:
    family = "👩\u200d👩\u200d👧"  # three people joined by zero-width joiners
    for part in split(family * 5, 6):
        assert not part.startswith("\u200d") and not part.endswith("\u200d")
    flag_and_skin = "👍🏽" * 10
    assert all(not p.startswith("🏽") for p in split(flag_and_skin, 3))


def test_truncate() -> None:
    assert truncate("9:30", 20) == "9:30"
    assert truncate("General consultation with a doctor", 20) == "General consultatio…"
    assert truncate("e\u0301" * 30, 10).endswith("…")  # the combining accent stays with its letter
    assert not truncate("e\u0301" * 30, 10)[:-1].endswith("e")
    assert utf16_len(truncate("😀" * 30, 20, utf16_len)) <= 20


def test_with_tail_keeps_the_tail_whole() -> None:
    parts = with_tail("word " * 30, "1. A\n2. B", 50)
    assert parts[-1].endswith("1. A\n2. B") and all(len(p) <= 50 for p in parts)
    assert with_tail("", "1. A", 50) == ["1. A"]
    assert with_tail("short", "", 50) == ["short"]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=600), st.integers(min_value=4, max_value=120), st.sampled_from([len, utf16_len, utf8_len]))
def test_split_properties(text: str, limit: int, measure: object) -> None:
    assert callable(measure)
    parts = split(text, limit, measure)
    assert parts and all(measure(p) <= limit or len(p) == 1 for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())  # only whitespace is dropped
