"""Fitting neutral text into a provider's limits: splitting long replies, truncating labels.

Providers measure differently (WhatsApp and Telegram in UTF-16 code units, Instagram in UTF-8
bytes, SMS in segments), so every function takes the ``measure`` the adapter uses. Cuts never land
inside a surrogate pair, nor before a combining mark, zero-width joiner or variation selector, so an
emoji or an accented letter is never torn in two.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence

from channels.base import Link, Option

Measure = Callable[[str], int]

ELLIPSIS = "…"


def utf16_len(text: str) -> int:
    """Length as Java/JavaScript count it (Telegram, Meta): astral characters count twice."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _glued(char: str) -> bool:
    """Characters that belong to the one before them: cutting before them breaks a grapheme."""
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or code in (0x200D, 0x20E3)  # zero-width joiner, combining enclosing keycap
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (flag sequences)
        or 0xDC00 <= code <= 0xDFFF  # a low surrogate left over in a string
    )


def _longest_prefix(text: str, limit: int, measure: Measure) -> int:
    """The largest ``n`` with ``measure(text[:n]) <= limit`` (``measure`` grows with the prefix)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _safe_cut(text: str, cut: int) -> int:
    """Move a hard cut left until it does not split a grapheme (but never to 0)."""
    position = cut
    while 0 < position < len(text) and _glued(text[position]):
        position -= 1
    return position if position > 0 else cut


def split(text: str, limit: int, measure: Measure = len) -> list[str]:
    """Parts each within ``limit``: cut at a paragraph, else a line, else a word, else a character
    boundary. Whitespace at the cuts is dropped; an empty text is one empty part."""
    if limit < 1:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text.strip()
    while measure(rest) > limit:
        fit = _longest_prefix(rest, limit, measure)
        if fit == 0:  # one character does not fit (cannot happen with sane limits): send it alone
            fit = 1
        window = rest[:fit]
        cut = 0
        for separator in ("\n\n", "\n", " "):
            found = window.rfind(separator)
            if found > 0 and (separator == " " or found >= fit // 3):  # no tiny first parts
                cut = found
                break
        if cut <= 0:
            cut = _safe_cut(rest, fit)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if head:
            parts.append(head)
    if rest or not parts:
        parts.append(rest)
    return parts


def truncate(label: str, limit: int, measure: Measure = len) -> str:
    """``label`` cut to ``limit`` with an ellipsis when it had to be cut; graphemes stay whole."""
    label = " ".join(label.split())
    if measure(label) <= limit:
        return label
    fit = _longest_prefix(label, limit - measure(ELLIPSIS), measure)
    cut = _safe_cut(label, fit) if fit else 0
    return label[:cut].rstrip() + ELLIPSIS


def numbered(options: Sequence[Option]) -> str:
    """Options as lines ``1. Label`` for channels without buttons; a bare digit reply selects one."""
    lines = []
    for number, option in enumerate(options, start=1):
        extra = f" — {option.description}" if option.description else ""
        lines.append(f"{number}. {option.label}{extra}")
    return "\n".join(lines)


def link_line(link: Link) -> str:
    """A link written into the text, for channels without link buttons."""
    label = link.label.strip()
    return link.url if not label or label == link.url else f"{label}: {link.url}"


def with_tail(text: str, tail: str, limit: int, measure: Measure = len) -> list[str]:
    """``text`` split to fit, with ``tail`` (options, a link) kept whole on the last part, or sent
    as a part of its own when the last part has no room for it."""
    if not tail:
        return split(text, limit, measure)
    if not text.strip():
        return split(tail, limit, measure)
    parts = split(text, limit, measure)
    joined = f"{parts[-1]}\n\n{tail}"
    if measure(joined) <= limit:
        parts[-1] = joined
        return parts
    return parts + split(tail, limit, measure)
