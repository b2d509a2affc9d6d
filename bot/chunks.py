"""Splitting a long answer into messages a platform accepts (Discord: 2,000 characters)."""

from __future__ import annotations

import re

__all__ = ["split_message"]

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
# Where a piece may end, best first: a paragraph, a line, a sentence, a word.
_BREAKS = ("\n\n", "\n", ". ", "! ", "? ", "; ", ", ", " ")


def _fence_state(text: str, state: tuple[str, str] | None) -> tuple[str, str] | None:
    """The code fence still open after ``text`` (its marker and info string), or None."""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if not match:
            continue
        marker, info = match[1], match[2].strip()
        if state is None:
            state = (marker, info)
        elif marker[0] == state[0][0] and len(marker) >= len(state[0]) and not info:
            state = None
    return state


def _cut(text: str, limit: int) -> int:
    """Where to end a piece of at most ``limit`` characters: at the best boundary in the later
    half of the window, else a hard cut."""
    if len(text) <= limit:
        return len(text)
    window = text[:limit]
    for mark in _BREAKS:
        at = window.rfind(mark)
        if at >= limit // 2:
            return at + len(mark)
    return limit


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters.

    Pieces end at a paragraph, line, sentence or word boundary where one is found in the later
    half of the window. A code block is never left open across pieces: a piece that ends inside
    one closes the fence, and the next piece reopens it with the same language. Empty or blank
    text gives no pieces. ``limit`` must leave room for a fence (at least 40).
    """
    if limit < 40:
        raise ValueError("limit must be at least 40 characters")
    pieces: list[str] = []
    rest = text.strip()
    fence: tuple[str, str] | None = None
    while rest:
        opener = f"{fence[0]}{fence[1]}\n" if fence else ""
        closer_room = 4 + (len(fence[0]) if fence else 3)  # "\n```" for a fence opened inside
        at = _cut(rest, limit - len(opener) - closer_room)
        body = rest[:at].rstrip()
        rest = rest[at:].lstrip("\n")  # blank lines go; a code line keeps its indentation
        fence = _fence_state(body, fence)
        piece = opener + body
        if fence and rest:
            piece += "\n" + fence[0]
        if piece.strip():
            pieces.append(piece)
    return pieces
