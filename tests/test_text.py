from __future__ import annotations

from bot.text import clean_message


def test_controls_go_newlines_and_tabs_and_emoji_stay() -> None:
    cleaned = clean_message("a\x00b\x1b[0m\tc\r\nd\u200d👍\x7f", 100)
    assert cleaned.text == "ab[0m\tc\nd\u200d👍"
    assert not cleaned.cut


def test_cut_at_the_limit_and_say_so() -> None:
    cleaned = clean_message("word " * 100, 50)
    assert cleaned.cut and len(cleaned.text) <= 50
