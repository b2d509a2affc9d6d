"""Splitting long answers: under the limit, at natural boundaries, code blocks kept whole."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chunks import split_message

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def content(text: str) -> str:
    """What a reader gets, ignoring white space and fence lines."""
    kept = [line for line in text.split("\n") if not FENCE.match(line)]
    return re.sub(r"\s+", "", "".join(kept))


def fences_balanced(piece: str) -> bool:
    return sum(1 for line in piece.split("\n") if FENCE.match(line)) % 2 == 0


def test_short_text_is_one_piece_and_blank_text_none() -> None:
    assert split_message("  hello  ", 2000) == ["hello"]
    assert split_message(" \n\t ", 2000) == []


def test_paragraphs_are_preferred_to_lines_and_sentences() -> None:
    text = "First paragraph. " * 5 + "\n\n" + "Second one. " * 5
    pieces = split_message(text, 120)
    assert pieces[0] == ("First paragraph. " * 5).strip()
    assert all(len(p) <= 120 for p in pieces)


def test_a_code_block_split_across_pieces_is_closed_and_reopened() -> None:
    code = "\n".join(f"    line_{n} = compute({n})" for n in range(60))
    text = f"Here is the code:\n\n```python\n{code}\n```\n\nThat is all."
    pieces = split_message(text, 500)
    assert len(pieces) > 2
    for piece in pieces:
        assert len(piece) <= 500
        assert fences_balanced(piece), piece
    assert pieces[1].startswith("```python\n    line_")  # reopened, indentation kept
    assert content("\n".join(pieces)) == content(text)


words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                min_size=1, max_size=12)
blocks = st.one_of(
    st.lists(words, min_size=1, max_size=60).map(" ".join),
    st.lists(words, min_size=1, max_size=30).map(lambda ws: "```py\n" + "\n".join(ws) + "\n```"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(blocks, min_size=1, max_size=12).map("\n\n".join), st.integers(40, 600))
def test_any_text_fits_loses_nothing_and_keeps_fences_balanced(text: str, limit: int) -> None:
    pieces = split_message(text, limit)
    assert all(len(piece) <= limit for piece in pieces)
    assert content("\n".join(pieces)) == content(text)
    if fences_balanced(text):
        assert all(fences_balanced(piece) for piece in pieces)
