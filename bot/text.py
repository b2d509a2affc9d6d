"""Cleaning what people type before anything is stored or sent to a model."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["CleanText", "clean_message"]

_KEPT_CONTROLS = {"\n", "\t"}
# Bidirectional embeddings, overrides and isolates (LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI,
# PDI): unlike the marks (LRM, RLM), which only nudge neutral characters, they reorder what
# follows them, so a text can display as something other than what it holds ("Trojan Source",
# CVE-2021-42574). Category Cf, so the control filter alone lets them through.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True, slots=True)
class CleanText:
    """A message after cleaning: ``text`` is safe to store; ``cut`` says it was shortened."""

    text: str
    cut: bool


def clean_message(raw: str, max_chars: int) -> CleanText:
    """Strip control characters (newlines and tabs stay) and bidirectional overrides, embeddings
    and isolates, normalise line endings, trim, and cut to ``max_chars``. Never raises; an
    all-control or whitespace message becomes empty."""
    normalised = raw.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(
        ch
        for ch in normalised
        if ch in _KEPT_CONTROLS
        or (unicodedata.category(ch) not in ("Cc", "Cs") and ch not in _BIDI_CONTROLS)
    )
    text = kept.strip()
    if len(text) <= max_chars:
        return CleanText(text, cut=False)
    return CleanText(text[:max_chars].rstrip(), cut=True)
