"""The terminal: plain text, quick replies as numbered lines; a typed number selects one."""

from __future__ import annotations

from channels.base import Capabilities, Option, OutboundMessage

CAPABILITIES = Capabilities(max_text=100_000, max_buttons=0, button_label_max=200, max_list_rows=0, links=True)


def render(message: OutboundMessage, speaker: str) -> str:
    lines = [f"{speaker}: {message.text}"]
    for number, option in enumerate(message.options, start=1):
        extra = f" — {option.description}" if option.description else ""
        lines.append(f"  {number}. {option.label}{extra}")
    if message.link:
        lines.append(f"  {message.link.label}: {message.link.url}")
    return "\n".join(lines)


def pick(text: str, options: tuple[Option, ...]) -> Option | None:
    """The option a typed number refers to, if it is one."""
    stripped = text.strip().rstrip(".")
    if stripped.isdigit() and 1 <= int(stripped) <= len(options):
        return options[int(stripped) - 1]
    return None
