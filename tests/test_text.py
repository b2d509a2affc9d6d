from __future__ import annotations

import sys
import unicodedata

from bot.text import clean_message


def test_controls_go_newlines_and_tabs_and_emoji_stay() -> None:
    cleaned = clean_message("a\x00b\x1b[0m\tc\r\nd\u200d👍\x7f", 100)
    assert cleaned.text == "ab[0m\tc\nd\u200d👍"
    assert not cleaned.cut


def test_cut_at_the_limit_and_say_so() -> None:
    cleaned = clean_message("word " * 100, 50)
    assert cleaned.cut and len(cleaned.text) <= 50


def test_bidi_overrides_go_so_a_message_reads_as_it_is_stored() -> None:
    # "pay bob" with an override that would show the name reversed: stored as typed, shown so.
    tricky = "pay \u202ebob\u202c and \u2067x\u2069, hello \u05e9\u05dc\u05d5\u05dd\u200f"
    cleaned = clean_message(tricky, 100)
    assert cleaned.text == "pay bob and x, hello \u05e9\u05dc\u05d5\u05dd\u200f"
    assert not any(ch in cleaned.text for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068")


def test_every_control_and_lone_surrogate_goes_and_every_other_character_stays() -> None:
    # Over all of Unicode: what goes is exactly the control characters (category Cc) other
    # than tab and newline, the lone surrogates (Cs) and the bidi embeddings, overrides and
    # isolates; letters, marks, joiners, private use and unassigned code points stay.
    bidi = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c) != "\r")
    expected = "".join(ch for ch in every if ch in "\t\n" or (
        unicodedata.category(ch) not in ("Cc", "Cs") and ch not in bidi))
    assert clean_message("x" + every + "x", len(every) + 2).text == "x" + expected + "x"
