"""Quick-reply sets more than one part of the dialogue offers."""

from __future__ import annotations

from bot.dialogue import catalogue
from channels.base import Option

MENU = ("book", "services", "my_bookings", "hours", "human")


def main_menu(locale: str) -> tuple[Option, ...]:
    """What the customer can do next: offered after answers and whenever the bot did not understand."""
    return tuple(Option(f"menu:{key}", catalogue.text(f"menu.{key}", locale)) for key in MENU)


def yes_no(locale: str) -> tuple[Option, ...]:
    return (Option("yes", catalogue.text("option.yes", locale)), Option("no", catalogue.text("option.no", locale)))
