"""What the writer skips as small talk, and what it must never skip."""

from __future__ import annotations

import pytest

from bot.smalltalk import worth_learning


@pytest.mark.parametrize("text", [
    "hi", "Hello!", "thanks", "Thank you so much!", "ok", "okay 👍", "lol", "yes", "cool, thanks",
    "Good morning!", "👍", "???", "42", "haha nice", "no problem", "see you later", "谢谢",
    "sure", "Vegetarian.",
])
def test_small_talk_and_one_word_answers_are_skipped(text: str) -> None:
    assert not worth_learning(text)


@pytest.mark.parametrize("text", [
    "I'm vegan", "moved to Oslo", "my dog is called Pixel", "thanks, my exam went well",
    "ok I start the new job on Monday", "hi, I'm Alice and I play the violin", "I love jazz",
    "我是素食者", "저는 채식주의자예요", "Je suis végétarien", "no, I hate coffee",
])
def test_a_message_with_a_fact_in_it_is_learned(text: str) -> None:
    assert worth_learning(text)
