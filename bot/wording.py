"""Wording shared by what membot says: counted nouns (one helper, so no answer reads "1
memories"), and a text shown on one line."""

from __future__ import annotations

__all__ = ["one_line", "plural"]

_IRREGULAR = {"memory": "memories", "is": "are", "was": "were"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun`` agreeing: ``plural(1, "page")`` is ``"1 page"``,
    ``plural(3, "memory")`` is ``"3 memories"``. ``many`` gives a plural the rules here do not
    know. Zero takes the plural, as in English ("0 messages")."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {many or _IRREGULAR.get(noun) or noun + 's'}"


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with its runs of whitespace (newlines included) made single spaces, and, past
    ``limit`` characters, cut with "…" (``limit`` characters in all)."""
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
