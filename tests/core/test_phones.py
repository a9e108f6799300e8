"""Recipients as the dashboard shows them: recognisable, never readable back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.phones import masked


def test_masked_keeps_the_last_three_characters_only() -> None:
    assert masked("+14155550123") == "•••123"
    assert masked("718250041") == "•••041"  # a Telegram chat id
    assert masked("12345") == "•••"  # too short to show any of it


@given(st.text(min_size=0, max_size=40))
def test_masked_never_shows_more_than_three_characters(recipient: str) -> None:
    shown = masked(recipient).removeprefix("•••")
    assert len(shown) <= 3 and recipient.endswith(shown)
    assert len(masked(recipient)) <= 6
