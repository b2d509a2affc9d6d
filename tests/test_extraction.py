"""Reading the extraction model's answer: what counts as "nothing to remember" and what is a
failure to retry."""

from __future__ import annotations

import pytest

from bot.extraction import ExtractionUnparseable, parse_extraction


@pytest.mark.parametrize("answer, memories", [
    ('{"memory": []}', []),
    ('{"memory": [{"text": "Has a beagle"}]}', [{"text": "Has a beagle"}]),
    ('```json\n{"memory": [{"text": "Has a beagle"}]}\n```', [{"text": "Has a beagle"}]),
    ('Sure. {"memory": [{"text": "Is a nurse"}]} Anything else?', [{"text": "Is a nurse"}]),
])
def test_answers_mem0_would_read_are_read_the_same_way(answer: str, memories: list[object]
                                                       ) -> None:
    assert parse_extraction(answer) == memories


@pytest.mark.parametrize("answer", [
    "",
    "   ",
    "The user is a nurse.",
    '{"memory": [{"text": "Is a nur',  # cut off by the token limit
    '{"facts": ["Is a nurse"]}',  # another key: Mem0 would read it as nothing
    '{"memory": "Is a nurse"}',
    '["Is a nurse"]',
])
def test_anything_else_is_a_failure_rather_than_nothing_learned(answer: str) -> None:
    with pytest.raises(ExtractionUnparseable):
        parse_extraction(answer)
