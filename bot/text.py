"""Cleaning what people type before anything is stored or sent to a model."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CleanText", "clean_message"]

# Dropped: control characters (category Cc, which Unicode fixes as U+0000-U+001F and
# U+007F-U+009F) but tab and newline, lone surrogates (Cs, U+D800-U+DFFF), and the
# bidirectional embeddings, overrides and isolates (LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI,
# PDI): unlike the marks (LRM, RLM), which only nudge neutral characters, they reorder what
# follows them, so a text can display as something other than what it holds ("Trojan Source",
# CVE-2021-42574). They are category Cf, so a control filter alone lets them through.
_DROPPED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True, slots=True)
class CleanText:
    """A message after cleaning: ``text`` is safe to store; ``cut`` says it was shortened."""

    text: str
    cut: bool


def clean_message(raw: str, max_chars: int) -> CleanText:
    """Strip control characters (newlines and tabs stay) and bidirectional overrides, embeddings
    and isolates, normalise line endings, trim, and cut to ``max_chars``. Never raises; an
    all-control or whitespace message becomes empty."""
    kept = _DROPPED.sub("", raw.replace("\r\n", "\n").replace("\r", "\n"))
    text = kept.strip()
    if len(text) <= max_chars:
        return CleanText(text, cut=False)
    return CleanText(text[:max_chars].rstrip(), cut=True)
